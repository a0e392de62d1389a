package session

import (
	"context"
	"time"
)

// A ToolResultStore keeps each tool result of an open turn as soon as the
// call returns, so that a retry of the turn after a crash reuses it
// instead of calling the tool again: a tool that sent an email or charged
// a card must not do it twice because a process died (see #8). It is an
// optional ability of a [Store]; callers check for it with a type
// assertion.
//
// Results live in the session: Begin returns them in State.ToolResults,
// the next Commit (checkpoint or final) drops them, and Delete and the
// session's TTL remove them.
type ToolResultStore interface {
	// SaveToolResult stores result (a tool_result content block) under
	// toolUseID if token still holds the session's lease, else it returns
	// ErrLeaseLost and stores nothing: a turn that lost its session cannot
	// write into the next holder's turn. Saving an id again replaces its
	// result. One round trip; safe to call from many goroutines at once.
	SaveToolResult(ctx context.Context, id, token, toolUseID string, result []byte) error
}

// A KV keeps small values that belong to the deployment rather than to a
// session, such as the Mcp-Session-Id of each MCP server, which every
// process (every Lambda instance) should continue rather than start anew
// (see #8). It is an optional ability of a [Store]; callers check for it
// with a type assertion. Keys share the store's namespace (its prefix)
// but never collide with sessions.
type KV interface {
	// Get returns the value under key, or nil and no error when there is
	// none or it expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl; zero or negative means no
	// expiry. One round trip.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

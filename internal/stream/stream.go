package stream

import (
	"context"
	"errors"
	"time"
)

// Event names (see #15). TurnEnd and Error end a stream.
const (
	TurnStart  = "turn_start"
	TextDelta  = "text_delta"
	Thinking   = "thinking"
	ToolUse    = "tool_use"
	ToolResult = "tool_result"
	TurnEnd    = "turn_end"
	Error      = "error"
)

// Terminal reports whether an event of this name ends its stream.
func Terminal(name string) bool { return name == TurnEnd || name == Error }

// An Event is one server-sent event of a stream.
type Event struct {
	// Seq numbers the events of a stream from 1; it is the SSE id.
	Seq int64
	// Name is the SSE event name, one of the constants above.
	Name string
	// Data is the event's JSON.
	Data []byte
}

// ErrNotFound means no stream exists under the id (never written, expired,
// or another tenant's).
var ErrNotFound = errors.New("stream: not found")

// A Log keeps streams. Implementations are safe for concurrent use. Ids
// are store ids (session.Scope of tenant and stream id).
type Log interface {
	// Append adds events, whose Seq the caller assigned in increasing
	// order, and sets the producer's liveness mark to expire in alive;
	// alive <= 0 removes the mark (the stream is finished). A nil events
	// only refreshes the mark. Every call also refreshes the stream's
	// TTL. One round trip.
	Append(ctx context.Context, id string, events []Event, alive time.Duration) error
	// Read returns up to a batch of events with Seq > after, waiting up to
	// wait for the first one when there is none yet; no events and no
	// error when the wait ends empty. One round trip.
	Read(ctx context.Context, id string, after int64, wait time.Duration) ([]Event, error)
	// State reports the last Seq written (0 and ErrNotFound when the
	// stream does not exist) and whether the producer's mark is live.
	// One round trip.
	State(ctx context.Context, id string) (last int64, live bool, err error)
}

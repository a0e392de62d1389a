package session

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// MaxIDLen is the longest session ID accepted.
const MaxIDLen = 128

// ValidID reports whether id may name a session: 1 to [MaxIDLen] bytes of
// ASCII letters, digits, '-', '_', '.', ':' or '@'. Braces are excluded
// because the Redis store wraps the ID in a cluster hash tag.
func ValidID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidID, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':' || c == '@':
		default:
			return fmt.Errorf("%w: byte %q at %d not allowed (use letters, digits and -_.:@)", ErrInvalidID, c, i)
		}
	}
	return nil
}

// DefaultTenant is the tenant of a request that names none (a deployment
// without tenants, or data from before them).
const DefaultTenant = "default"

// Scope returns the store ID of the session id of tenant: every key a
// store keeps for a session (history, lease, idempotency records, tool
// results) derives from it, so two tenants' sessions of the same id never
// meet (see #13). The default tenant's sessions keep their bare id, so
// data written before tenants existed keeps working. Other tenants' ids
// are "tenant/id": '/' is in neither a tenant's nor a session id's
// alphabet, so the mapping cannot collide. id must pass [ValidID] and
// tenant must be a valid tenant name (internal/auth.ValidTenant).
func Scope(tenant, id string) string {
	if tenant == "" || tenant == DefaultTenant {
		return id
	}
	return tenant + "/" + id
}

// Unscope splits a store ID made by [Scope] into its tenant and id.
func Unscope(storeID string) (tenant, id string) {
	if i := strings.IndexByte(storeID, '/'); i >= 0 {
		return storeID[:i], storeID[i+1:]
	}
	return DefaultTenant, storeID
}

// ValidStoreID reports whether id is a store ID made by [Scope]: a valid
// session id, optionally after a tenant of 1 to 64 bytes of letters,
// digits, '-', '_' or '.' and a '/'. Stores check it; the HTTP API checks
// the client's id with [ValidID] before scoping it.
func ValidStoreID(id string) error {
	tenant, sid := Unscope(id)
	if strings.IndexByte(id, '/') >= 0 {
		if tenant == "" || len(tenant) > 64 {
			return fmt.Errorf("%w: tenant part must be 1 to 64 bytes", ErrInvalidID)
		}
		for i := 0; i < len(tenant); i++ {
			c := tenant[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
				return fmt.Errorf("%w: byte %q of the tenant part not allowed", ErrInvalidID, c)
			}
		}
	}
	return ValidID(sid)
}

// BeginRequest is what a turn asks of [Store.Begin].
type BeginRequest struct {
	// ID names the session; see [ValidID].
	ID string
	// LeaseToken is a random value chosen by the caller. It proves ownership
	// to Renew, Release and Commit.
	LeaseToken string
	// LeaseTTL is how long the lease lasts unless renewed. Required.
	LeaseTTL time.Duration
	// IdempotencyKey, if set, makes the turn run at most once: a stored
	// answer under this key is returned in [State.Replay] instead of a lease.
	IdempotencyKey string
	// RequestHash identifies the request body sent with IdempotencyKey, so
	// a reuse of the key for another request is caught
	// ([ErrIdempotencyMismatch]).
	RequestHash string
}

// State is a session as Begin or Load read it.
type State struct {
	// Version counts the messages committed so far, all of them (not only
	// those in Messages); Commit must present it. An unknown session has
	// Version 0 and no messages.
	Version int64
	// Turns counts completed turns.
	Turns int64
	// Messages is the history, oldest first, each the raw JSON of one
	// Messages API message object. They are read-only: a store may hand out
	// views of its own buffers, and the stores of this module hand out
	// views of one buffer holding the whole history, comma-joined, so
	// that [Joined] of any run of them costs no copy. A view's capacity
	// runs into the next message: never append to one. Turn boundaries
	// are where a user message that is not only tool results starts.
	Messages []json.RawMessage
	// First is the absolute index of Messages[0] in the history: Begin of
	// a session with a stored cut ([Commit.Cut]) returns the history from
	// the cut on, so Messages[i] is message First+i. Zero when Messages
	// start at the beginning, which Load always returns, and Begin does
	// without a cut or on a store that ignores cuts.
	First int64
	// FirstStarts counts the turn starts (user messages that answer no
	// tool call) before First: [Cut.Starts] of the stored cut.
	FirstStarts int64
	// HistoryBytes is the size of the whole stored history, the sum of
	// its messages' lengths, including those before First: a cap on a
	// session's size is about all of it, not the part a turn reads.
	HistoryBytes int64
	// Counters are the running sums committed through [Commit.Counters]
	// (token usage, cost). Nil when there are none.
	Counters map[string]int64
	// Replay, when non-nil, is the answer stored under the request's
	// idempotency key. Begin took no lease and the turn must not run.
	Replay []byte
	// Pending is the mark of an unfinished turn: Commit.Pending as the
	// last checkpoint stored it, until a commit with Release clears it.
	// A turn checkpoints before it runs tools, so a non-empty Pending
	// after Begin means a turn died between its tools and its end (see
	// #8). Empty when no turn is open. Begin and Load return it.
	Pending string
	// ToolResults are the results saved with [ToolResultStore] since the
	// last commit, by tool_use id. Begin returns them (Load need not);
	// nil when there are none. Read-only, like Messages.
	ToolResults map[string]json.RawMessage
	// Pinned is what the session's first commit pinned (Commit.Pinned):
	// opaque bytes the store keeps for the session's life. Begin and Load
	// return it; nil when none was pinned. Read-only, like Messages.
	Pinned []byte
}

// Commit is what a turn writes with [Store.Commit].
type Commit struct {
	ID         string
	LeaseToken string
	// Version is State.Version as Begin returned it (or as the previous
	// checkpoint commit returned it).
	Version int64
	// Messages are appended to the history in order.
	Messages []json.RawMessage
	// Turns is added to State.Turns: 1 for a completed turn, 0 for a
	// checkpoint in the middle of one.
	Turns int64
	// Counters are added to the session's running sums.
	Counters map[string]int64
	// Release ends the lease with the commit. A checkpoint keeps it.
	Release bool
	// IdempotencyKey, RequestHash and Response, when the key is set, store
	// the turn's answer so a repeat gets it back byte for byte. Set them
	// only on a turn's final commit: a record stored by a checkpoint would
	// replay a partial answer.
	IdempotencyKey string
	RequestHash    string
	Response       []byte
	// Pending, when set on a commit without Release (a checkpoint), marks
	// the session's open turn; Begin returns it in State.Pending until a
	// commit with Release clears it. The store keeps it as opaque bytes.
	// A checkpoint with Pending empty leaves the mark as it is.
	Pending string
	// Pinned, when set, is stored with the session if it has nothing
	// pinned yet, and ignored if it has: a session pins once, at its first
	// commit, and keeps it for its life (State.Pinned). The agent pins the
	// system prompt and tools a conversation started with, so that every
	// request of it sends the same prefix (see #14). Opaque bytes; it
	// costs no round trip of its own.
	Pinned []byte
	// Record, when set, is the turn's record for display (its usage, cost,
	// latency and upstream request id; see #18): a store that is a
	// [Catalog] keeps it among the session's records when a commit with
	// Release (a turn's final commit) succeeds, and [Catalog.Records] returns them. Opaque bytes; it
	// costs no round trip of its own, and a store that is no Catalog
	// ignores it.
	Record []byte
	// Cut, when set, moves the session's cut forward: later Begins return
	// the history from it on (State.First), because the turn's strategy
	// will never send what lies before it again (see #14). A store keeps
	// it only if it lies past the stored one (a cut never goes back) and
	// before the history's end, counted after this commit's messages;
	// otherwise it is ignored. A store may ignore cuts altogether and
	// return everything, First 0: cuts only spare reading.
	Cut *Cut
}

// A Cut is where the history a session's later turns need starts.
type Cut struct {
	// Index is the absolute index of the first message later turns need:
	// always a user message, so the history from it on still starts with
	// the user.
	Index int64
	// Starts counts the turn starts (user messages that answer no tool
	// call) before Index, so that a turn reading from the cut still knows
	// absolute turn numbers (the window strategy steps by them).
	Starts int64
}

// A Store keeps sessions. Implementations are safe for concurrent use by
// many goroutines and many processes sharing the same backend.
//
// Each method is one round trip to the backend. Transport failures are
// wrapped with [ErrUnavailable]; nothing is half-written by a failure.
//
// Besides the turn's own calls, a Store saves tool results as they return
// ([ToolResultStore]) and keeps deployment-wide values ([KV]): every store
// can do both, so a decorator has one type to write and the contract suite
// (storetest) checks them on every store.
type Store interface {
	ToolResultStore
	KV

	// Begin takes the session's lease and reads it: its history from the
	// stored cut on (see [Commit.Cut]), or all of it. An unknown session is
	// an empty State, not an error. If another lease is live Begin returns
	// a *[BusyError] and takes nothing. If req.IdempotencyKey has a stored
	// answer Begin returns it in State.Replay without taking the lease,
	// or ErrIdempotencyMismatch if the stored RequestHash differs.
	Begin(ctx context.Context, req BeginRequest) (*State, error)

	// Commit appends c.Messages if c.LeaseToken still holds the lease
	// (else ErrLeaseLost) and the version is still c.Version (else
	// ErrConflict), stores the idempotency record, refreshes the session's
	// TTL and, if c.Release, ends the lease. It returns the new version.
	// It drops the saved tool results (see [ToolResultStore]): they are
	// in the committed messages now, or the turn is over. With c.Release
	// it clears State.Pending; without, it sets it to c.Pending if set.
	Commit(ctx context.Context, c Commit) (version int64, err error)

	// Renew extends a held lease to ttl from now, or returns ErrLeaseLost.
	Renew(ctx context.Context, id, token string, ttl time.Duration) error

	// Release ends a held lease without writing anything. Releasing a
	// lease that is not held by token is not an error.
	Release(ctx context.Context, id, token string) error

	// Load reads a session without taking its lease (for display): its
	// whole history, whatever its cut (State.First is 0).
	Load(ctx context.Context, id string) (*State, error)

	// Delete removes a session: its history, lease, counters, pending mark, cut,
	// saved tool results and idempotency records. Deleting an unknown session is not an
	// error. A turn in flight then fails its Commit with ErrLeaseLost.
	Delete(ctx context.Context, id string) error
}

// A ToolResultStore keeps each tool result of an open turn as soon as the
// call returns, so that a retry of the turn after a crash reuses it
// instead of calling the tool again: a tool that sent an email or charged
// a card must not do it twice because a process died (see #8). It is part
// of [Store], named so that code needing only this part can say so.
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
// (see #8). It is part of [Store], named so that code needing only this
// part can say so. Keys share the store's namespace (its prefix) but
// never collide with sessions.
type KV interface {
	// Get returns the value under key, or nil and no error when there is
	// none or it expired.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl; zero or negative means no
	// expiry. One round trip.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

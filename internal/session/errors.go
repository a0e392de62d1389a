package session

import (
	"fmt"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// Sentinels. Each carries its own kind, status and client message
// ([apierr.Sentinel]), so apierr.From classifies it without knowing this
// package; errors.Is works on them as on any sentinel.
var (
	// ErrConflict means another writer committed after our Begin; nothing of
	// ours was kept.
	ErrConflict = apierr.Sentinel("session: version conflict", conflict)
	// ErrLeaseLost means the lease given by Begin expired or was taken by
	// another turn before Commit; nothing of ours was kept.
	ErrLeaseLost = apierr.Sentinel("session: lease lost", conflict)
	// ErrIdempotencyMismatch means an idempotency key was reused with a
	// different request body.
	ErrIdempotencyMismatch = apierr.Sentinel("session: idempotency key reused with a different request", apierr.Error{
		Kind: apierr.IdempotencyMismatch, Message: "this Idempotency-Key was used with a different request"})
	// ErrInvalidID means a session ID is empty, too long or has characters
	// outside [ValidID]'s alphabet. Its client message is the error's own
	// text, which says what is wrong with the ID.
	ErrInvalidID = apierr.Sentinel("session: invalid session id", apierr.Error{Kind: apierr.InvalidRequest})
	// ErrUnavailable means the store could not be reached; the caller may
	// retry later. Stores wrap their transport errors with it.
	ErrUnavailable = apierr.Sentinel("session: store unavailable", apierr.Error{
		Kind: apierr.StoreUnavailable, Message: "the session store is unavailable; nothing was saved, retry", RetryAfter: time.Second})
)

// conflict is how ErrConflict and ErrLeaseLost look to a client: the same
// thing happened, another turn got in first.
var conflict = apierr.Error{Kind: apierr.Conflict, Message: "the session changed while the turn ran; nothing was saved, retry", RetryAfter: time.Second}

// A BusyError is returned by Begin when another turn holds the session's
// lease. The caller may wait and call Begin again.
type BusyError struct {
	// RetryAfter is how long the current lease has left; zero if unknown.
	RetryAfter time.Duration
	// SameKey reports whether the turn in flight carries the same
	// idempotency key as the caller: the request is a repeat still running.
	SameKey bool
}

func (e *BusyError) Error() string {
	if e.SameKey {
		return fmt.Sprintf("session: same request in progress (lease free in %v)", e.RetryAfter)
	}
	return fmt.Sprintf("session: busy with another turn (lease free in %v)", e.RetryAfter)
}

// APIError makes a BusyError a 409 session_busy with Retry-After (at least
// a second): the client should come back when the lease is free.
func (e *BusyError) APIError() *apierr.Error {
	msg := "another turn of this session is in progress; retry later"
	if e.SameKey {
		msg = "a request with this idempotency key is in progress; retry later for its answer"
	}
	return &apierr.Error{Kind: apierr.SessionBusy, Message: msg, RetryAfter: max(e.RetryAfter, time.Second)}
}

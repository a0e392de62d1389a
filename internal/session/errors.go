package session

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrConflict means another writer committed after our Begin; nothing of
	// ours was kept.
	ErrConflict = errors.New("session: version conflict")
	// ErrLeaseLost means the lease given by Begin expired or was taken by
	// another turn before Commit; nothing of ours was kept.
	ErrLeaseLost = errors.New("session: lease lost")
	// ErrIdempotencyMismatch means an idempotency key was reused with a
	// different request body.
	ErrIdempotencyMismatch = errors.New("session: idempotency key reused with a different request")
	// ErrInvalidID means a session ID is empty, too long or has characters
	// outside [ValidID]'s alphabet.
	ErrInvalidID = errors.New("session: invalid session id")
	// ErrUnavailable means the store could not be reached; the caller may
	// retry later. Stores wrap their transport errors with it.
	ErrUnavailable = errors.New("session: store unavailable")
)

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

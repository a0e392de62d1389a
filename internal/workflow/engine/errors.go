package engine

import (
	"fmt"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

var (
	// ErrNotFound means no run (or no workflow) of that name exists for
	// the tenant.
	ErrNotFound = apierr.Sentinel("workflow: not found", apierr.Error{Kind: apierr.NotFound})
	// ErrLeaseLost means another advancer took the run: nothing of ours
	// was written, and this advancer stops.
	ErrLeaseLost = apierr.Sentinel("workflow: run lease lost", apierr.Error{Kind: apierr.Conflict, Message: "the run was taken by another worker"})
	// ErrCanceled means the run was canceled while it was advanced.
	ErrCanceled = apierr.Sentinel("workflow: run canceled", apierr.Error{Kind: apierr.Conflict, Message: "the run was canceled"})
	// ErrFinished means an event or a cancel came for a run that ended.
	ErrFinished = apierr.Sentinel("workflow: run already ended", apierr.Error{Kind: apierr.Conflict})
	// ErrUnavailable wraps a store's transport failures.
	ErrUnavailable = apierr.Sentinel("workflow: store unavailable", apierr.Error{
		Kind: apierr.StoreUnavailable, Message: "the workflow store is unavailable; retry", RetryAfter: time.Second})
)

// A BusyError is Acquire's answer while another advancer holds the run.
type BusyError struct {
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("workflow: run busy (lease free in %v)", e.RetryAfter)
}

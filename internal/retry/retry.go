// Package retry runs an operation again after transient failures, with
// capped exponential backoff and full jitter.
//
// There is one retry policy in lambdagent: the Anthropic SDK's own retries
// are turned off (see internal/claude), so attempts never stack. A wait
// honours the server's retry-after hint however long it is (see #14: a
// rate limit that resets in a minute is not helped by a retry in 20 s),
// never runs past the context's deadline (it gives up at once with a
// [*DeadlineError] carrying the wait instead of sleeping into a timeout),
// and stops at once when the context is done.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Defaults for a zero [Policy].
const (
	DefaultAttempts = 5
	DefaultBase     = 500 * time.Millisecond
	DefaultCap      = 20 * time.Second
)

// Policy says how often and how long to retry. A zero field means its
// default. A Policy is safe for concurrent use.
type Policy struct {
	// Attempts is the most times the operation runs, first try included.
	// Zero means DefaultAttempts; 1 disables retries.
	Attempts int
	// Base is the ceiling of the first backoff; it doubles per attempt.
	Base time.Duration
	// Cap bounds a single backoff. It does not bound a server's
	// retry-after hint, which is waited in full if the context's deadline
	// allows it.
	Cap time.Duration
	// OnRetry, if set, is called before each wait (for metrics and logs).
	OnRetry func(attempt int, wait time.Duration, err error)
}

// A Retryable error says whether another attempt may succeed. Errors that
// don't implement it are not retried.
type Retryable interface {
	Retryable() bool
}

// A Hinted error carries the server's advice on how long to wait.
type Hinted interface {
	RetryAfter() time.Duration
}

// Do calls op until it succeeds, returns an error that is not retryable,
// runs out of attempts, or the context ends. It returns op's last error.
func (p Policy) Do(ctx context.Context, op func(ctx context.Context) error) error {
	attempts, base, ceiling := p.Attempts, p.Base, p.Cap
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	if base <= 0 {
		base = DefaultBase
	}
	if ceiling <= 0 {
		ceiling = DefaultCap
	}
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil || attempt >= attempts || !retryable(err) {
			return err
		}
		wait := Backoff(attempt, base, ceiling)
		var h Hinted
		if errors.As(err, &h) && h.RetryAfter() > wait {
			wait = h.RetryAfter()
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			// Waiting would outlive the caller: fail now, saying how
			// long the server asked for.
			return &DeadlineError{Wait: wait, Left: max(time.Until(dl), 0), Err: err}
		}
		if p.OnRetry != nil {
			p.OnRetry(attempt, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// A DeadlineError is returned, at once, when the wait before the next
// attempt would run past the context's deadline. It wraps the last
// attempt's error, so that what classifies that error (a 429 with its
// retry-after, say) still sees it.
type DeadlineError struct {
	// Wait is the wait that did not fit: the server's hint or the backoff.
	Wait time.Duration
	// Left is what remained of the deadline.
	Left time.Duration
	// Err is the last attempt's error.
	Err error
}

func (e *DeadlineError) Error() string {
	return fmt.Sprintf("retry: next attempt due in %v, after the deadline in %v: %v", e.Wait.Round(time.Millisecond), e.Left.Round(time.Millisecond), e.Err)
}

func (e *DeadlineError) Unwrap() error { return e.Err }

// RetryAfter is the wait that did not fit, so that an answer to our own
// caller can pass it on as its retry-after.
func (e *DeadlineError) RetryAfter() time.Duration { return e.Wait }

// Backoff is the full-jitter wait before retry number attempt (1-based):
// uniform in [0, min(ceiling, base·2^(attempt-1))].
func Backoff(attempt int, base, ceiling time.Duration) time.Duration {
	d := ceiling
	if attempt < 32 {
		if b := base << (attempt - 1); b > 0 && b < ceiling {
			d = b
		}
	}
	return rand.N(d + 1)
}

func retryable(err error) bool {
	var r Retryable
	return errors.As(err, &r) && r.Retryable()
}

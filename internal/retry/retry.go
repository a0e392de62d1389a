// Package retry runs an operation again after transient failures, with
// capped exponential backoff and full jitter.
//
// There is one retry policy in lambdagent: the Anthropic SDK's own retries
// are turned off (see internal/claude), so attempts never stack. A wait
// honours the server's retry-after hint, never runs past the context's
// deadline (it gives up early with the last error instead of sleeping into
// a timeout), and stops at once when the context is done.
package retry

import (
	"context"
	"errors"
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
	// Cap bounds a single wait, retry-after hints included.
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
			wait = min(h.RetryAfter(), ceiling)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return err // waiting would outlive the caller: fail now, cleanly
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

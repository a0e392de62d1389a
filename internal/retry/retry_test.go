package retry

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

type testErr struct {
	retry bool
	after time.Duration
}

func (e *testErr) Error() string             { return "test error" }
func (e *testErr) Retryable() bool           { return e.retry }
func (e *testErr) RetryAfter() time.Duration { return e.after }

func TestDo(t *testing.T) {
	transient := &testErr{retry: true}
	permanent := &testErr{retry: false}
	tests := []struct {
		name      string
		errs      []error // returned by successive attempts; nil after the list
		policy    Policy
		timeout   time.Duration
		wantCalls int
		wantErr   error
	}{
		{name: "first try", errs: nil, wantCalls: 1},
		{name: "transient then ok", errs: []error{transient, transient}, wantCalls: 3},
		{name: "permanent stops", errs: []error{permanent, transient}, wantCalls: 1, wantErr: permanent},
		{name: "plain error stops", errs: []error{errors.New("x")}, wantCalls: 1, wantErr: errors.New("x")},
		{name: "attempts exhausted", errs: []error{transient, transient, transient, transient}, policy: Policy{Attempts: 3}, wantCalls: 3, wantErr: transient},
		{name: "no wait past deadline", errs: []error{&testErr{retry: true, after: time.Minute}}, policy: Policy{Cap: time.Hour}, timeout: 10 * time.Second, wantCalls: 1, wantErr: transient},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				if tc.timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.timeout)
					defer cancel()
				}
				calls := 0
				err := tc.policy.Do(ctx, func(context.Context) error {
					calls++
					if calls <= len(tc.errs) {
						return tc.errs[calls-1]
					}
					return nil
				})
				if calls != tc.wantCalls {
					t.Errorf("calls = %d, want %d", calls, tc.wantCalls)
				}
				if (err == nil) != (tc.wantErr == nil) {
					t.Errorf("err = %v, want %v", err, tc.wantErr)
				}
			})
		})
	}
}

func TestDoHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		calls := 0
		err := Policy{Base: time.Millisecond}.Do(t.Context(), func(context.Context) error {
			calls++
			if calls == 1 {
				return &testErr{retry: true, after: 7 * time.Second}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < 7*time.Second {
			t.Errorf("waited %v, want at least the 7s retry-after", waited)
		}
	})
}

// A hint longer than Cap is waited in full (#14): Cap bounds backoff only.
func TestDoWaitsLongHintBeyondCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		calls := 0
		err := Policy{Base: time.Millisecond, Cap: time.Second}.Do(ctx, func(context.Context) error {
			calls++
			if calls == 1 {
				return &testErr{retry: true, after: 90 * time.Second}
			}
			return nil
		})
		if err != nil || calls != 2 {
			t.Fatalf("err = %v after %d calls, want success after 2", err, calls)
		}
		if waited := time.Since(start); waited != 90*time.Second {
			t.Errorf("waited %v, want the 90s retry-after, past the 1s cap", waited)
		}
	})
}

// A wait past the deadline fails at once with the wait and what was left,
// wrapping the last error.
func TestDoDeadlineError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		last := &testErr{retry: true, after: time.Minute}
		start := time.Now()
		err := Policy{}.Do(ctx, func(context.Context) error { return last })
		if d := time.Since(start); d != 0 {
			t.Errorf("returned after %v, want at once", d)
		}
		de, ok := errors.AsType[*DeadlineError](err)
		if !ok {
			t.Fatalf("err = %v, want *DeadlineError", err)
		}
		if de.Wait != time.Minute || de.Left != 10*time.Second || !errors.Is(err, last) {
			t.Errorf("DeadlineError = %+v, want Wait 1m, Left 10s, wrapping the last error", de)
		}
		if got, want := err.Error(), "retry: next attempt due in 1m0s, after the deadline in 10s: test error"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
	})
}

func TestDoStopsOnCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(time.Second); cancel() }()
		calls := 0
		start := time.Now()
		err := Policy{Attempts: 100, Base: 10 * time.Second, Cap: 10 * time.Second}.Do(ctx, func(context.Context) error {
			calls++
			return &testErr{retry: true, after: 10 * time.Second}
		})
		if err == nil || calls != 1 {
			t.Errorf("err = %v after %d calls, want the transient error after 1", err, calls)
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("returned after %v, want 1s (at cancel)", d)
		}
	})
}

func TestBackoffBounds(t *testing.T) {
	for attempt := 1; attempt < 70; attempt++ {
		for range 50 {
			d := Backoff(attempt, 100*time.Millisecond, 3*time.Second)
			if d < 0 || d > 3*time.Second {
				t.Fatalf("Backoff(%d) = %v, outside [0, 3s]", attempt, d)
			}
			if attempt == 1 && d > 100*time.Millisecond {
				t.Fatalf("Backoff(1) = %v > base", d)
			}
		}
	}
}

package ratelimit_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// outcome is what one Reserve said, reduced to what tests compare.
type outcome struct {
	OK    bool
	Kind  string
	Scope ratelimit.Scope
	Wait  time.Duration
}

func reserve(t *testing.T, l *ratelimit.Limiter, k ratelimit.Key, est ratelimit.Tokens) (outcome, *ratelimit.Reservation) {
	t.Helper()
	r, wait, err := l.Reserve(t.Context(), k, est)
	if r != nil {
		return outcome{OK: true}, r
	}
	var le *ratelimit.LimitError
	if !errors.As(err, &le) {
		t.Fatalf("Reserve(%+v, %+v): %v", k, est, err)
	}
	if le.RetryAfter != wait {
		t.Errorf("LimitError.RetryAfter %v != wait %v", le.RetryAfter, wait)
	}
	return outcome{Kind: le.Kind, Scope: le.Scope, Wait: wait}, nil
}

// TestWindows fills rate windows and checks what the next call is told.
// Under synctest the clock stands still during Redis round trips, so the
// waits are exact.
func TestWindows(t *testing.T) {
	addr := redistest.Start(t)
	acme := ratelimit.Key{Model: sonnet, Tenant: "acme"}
	tests := []struct {
		name  string
		cfg   ratelimit.Config
		calls []ratelimit.Tokens // made one second apart, all admitted
		key   ratelimit.Key
		next  ratelimit.Tokens
		want  outcome
	}{
		{"requests", ratelimit.Config{Model: ratelimit.Limits{Requests: 2}},
			[]ratelimit.Tokens{{1, 1}, {1, 1}}, acme, ratelimit.Tokens{1, 1},
			outcome{Kind: "requests", Scope: "model", Wait: 59 * time.Second}},
		{"input tokens", ratelimit.Config{Model: ratelimit.Limits{InputTokens: 1000}},
			[]ratelimit.Tokens{{300, 0}, {300, 0}, {300, 0}}, acme, ratelimit.Tokens{200, 0},
			outcome{Kind: "input_tokens", Scope: "model", Wait: 58 * time.Second}},
		{"input tokens fit exactly", ratelimit.Config{Model: ratelimit.Limits{InputTokens: 1000}},
			[]ratelimit.Tokens{{300, 0}, {300, 0}}, acme, ratelimit.Tokens{400, 0},
			outcome{OK: true}},
		{"two entries must leave", ratelimit.Config{Model: ratelimit.Limits{InputTokens: 1000}},
			[]ratelimit.Tokens{{300, 0}, {300, 0}, {300, 0}}, acme, ratelimit.Tokens{500, 0},
			outcome{Kind: "input_tokens", Scope: "model", Wait: 59 * time.Second}},
		{"output tokens", ratelimit.Config{Model: ratelimit.Limits{OutputTokens: 100}},
			[]ratelimit.Tokens{{0, 60}}, acme, ratelimit.Tokens{0, 50},
			outcome{Kind: "output_tokens", Scope: "model", Wait: 60 * time.Second}},
		{"tenant", ratelimit.Config{Tenant: ratelimit.Limits{Requests: 1}},
			[]ratelimit.Tokens{{1, 1}}, acme, ratelimit.Tokens{1, 1},
			outcome{Kind: "requests", Scope: "tenant", Wait: 60 * time.Second}},
		{"another tenant is not limited by acme", ratelimit.Config{Tenant: ratelimit.Limits{Requests: 1}},
			[]ratelimit.Tokens{{1, 1}}, ratelimit.Key{Model: sonnet, Tenant: "other"}, ratelimit.Tokens{1, 1},
			outcome{OK: true}},
		{"another model is not limited by sonnet", ratelimit.Config{Model: ratelimit.Limits{Requests: 1}},
			[]ratelimit.Tokens{{1, 1}}, ratelimit.Key{Model: "claude-opus-5-5", Tenant: "acme"}, ratelimit.Tokens{1, 1},
			outcome{OK: true}},
		{"per-model override", ratelimit.Config{Model: ratelimit.Limits{Requests: 1}, Models: map[string]ratelimit.Limits{sonnet: {Requests: 3}}},
			[]ratelimit.Tokens{{1, 1}}, acme, ratelimit.Tokens{1, 1},
			outcome{OK: true}},
		{"model before tenant", ratelimit.Config{Model: ratelimit.Limits{Requests: 1}, Tenant: ratelimit.Limits{Requests: 1}},
			[]ratelimit.Tokens{{1, 1}}, acme, ratelimit.Tokens{1, 1},
			outcome{Kind: "requests", Scope: "model", Wait: 60 * time.Second}},
		{"an estimate above the limit is cut to it", ratelimit.Config{Model: ratelimit.Limits{InputTokens: 1000}},
			nil, acme, ratelimit.Tokens{5000, 0},
			outcome{OK: true}},
		{"and then runs alone", ratelimit.Config{Model: ratelimit.Limits{InputTokens: 1000}},
			[]ratelimit.Tokens{{5000, 0}}, acme, ratelimit.Tokens{1, 0},
			outcome{Kind: "input_tokens", Scope: "model", Wait: 60 * time.Second}},
		{"no limits", ratelimit.Config{},
			[]ratelimit.Tokens{{1e9, 1e9}, {1e9, 1e9}}, acme, ratelimit.Tokens{1e9, 1e9},
			outcome{OK: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			redistest.Bubble(t, func(t *testing.T) {
				l := newLimiter(t, addr, tc.cfg)
				for i, est := range tc.calls {
					if i > 0 {
						time.Sleep(time.Second)
					}
					if got, _ := reserve(t, l, acme, est); !got.OK {
						t.Fatalf("call %d: %+v", i, got)
					}
				}
				got, _ := reserve(t, l, tc.key, tc.next)
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("next call (-want +got):\n%s", diff)
				}
			})
		})
	}
}

// TestReconcile checks that a reservation's estimate gives way to what the
// call used, and that the entry then counts from the call's end.
func TestReconcile(t *testing.T) {
	addr := redistest.Start(t)
	redistest.Bubble(t, func(t *testing.T) {
		l := newLimiter(t, addr, ratelimit.Config{Model: ratelimit.Limits{InputTokens: 1000, OutputTokens: 1000}})
		k := ratelimit.Key{Model: sonnet, Tenant: "acme", SessionID: "s1"}
		_, r := reserve(t, l, k, ratelimit.Tokens{Input: 900, Output: 900})
		if got, _ := reserve(t, l, k, ratelimit.Tokens{Input: 200}); got.OK {
			t.Fatal("200 more fit beside 900 of 1000")
		}
		// The call took 30 s and used 100 input (cache writes included)
		// and 50 output tokens; cache reads do not count.
		time.Sleep(30 * time.Second)
		// The model client priced the reply; the limiter sums that figure.
		cost := (60*2 + 40*2.5 + 5000*0.2 + 50*10) / 1e6
		if err := r.Reconcile(t.Context(), claude.Usage{InputTokens: 60, CacheCreationInputTokens: 40, CacheReadInputTokens: 5000, OutputTokens: 50, CostUSD: cost}, nil); err != nil {
			t.Fatal(err)
		}
		if got, _ := reserve(t, l, k, ratelimit.Tokens{Input: 900, Output: 950}); !got.OK {
			t.Fatalf("after reconciling to 100/50, 900/950 more do not fit: %+v", got)
		}
		// The window now holds 100 (from 30 s) and 900 (from 30 s):
		// another 100 must wait until both have left, 60 s after the
		// call ended, not after it started.
		want := outcome{Kind: "input_tokens", Scope: "model", Wait: 60 * time.Second}
		if got, _ := reserve(t, l, k, ratelimit.Tokens{Input: 100}); got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
		u, err := l.Usage(t.Context(), ratelimit.ScopeSession, "s1", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		wantU := ratelimit.DayUsage{Scope: "session", ID: "s1", Tenant: "default", Day: "2000-01-01", ModelCalls: 1, InputTokens: 60, OutputTokens: 50,
			CacheCreationInputTokens: 40, CacheReadInputTokens: 5000, CostUSD: 0.00172}
		if diff := cmp.Diff(wantU, u); diff != "" {
			t.Errorf("session usage (-want +got):\n%s", diff)
		}
	})
}

// TestCancelAndHold checks how a failed call's reservation ends: refused
// by the API, its tokens are released; outcome unknown, the estimate
// stays, counted from the failure.
func TestCancelAndHold(t *testing.T) {
	addr := redistest.Start(t)
	redistest.Bubble(t, func(t *testing.T) {
		l := newLimiter(t, addr, ratelimit.Config{Model: ratelimit.Limits{Requests: 3, InputTokens: 1000}})
		k := ratelimit.Key{Model: sonnet}
		_, r := reserve(t, l, k, ratelimit.Tokens{Input: 800})
		if err := r.Cancel(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		_, r = reserve(t, l, k, ratelimit.Tokens{Input: 800})
		time.Sleep(20 * time.Second)
		if err := r.Hold(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := outcome{Kind: "input_tokens", Scope: "model", Wait: 60 * time.Second}
		if got, _ := reserve(t, l, k, ratelimit.Tokens{Input: 800}); got != want {
			t.Errorf("after Hold: got %+v, want %+v", got, want)
		}
		// The canceled call still counts as a request.
		if got, _ := reserve(t, l, k, ratelimit.Tokens{Input: 100}); !got.OK {
			t.Fatalf("got %+v", got)
		}
		want = outcome{Kind: "requests", Scope: "model", Wait: 40 * time.Second}
		if got, _ := reserve(t, l, k, ratelimit.Tokens{Input: 1}); got != want {
			t.Errorf("fourth request: got %+v, want %+v", got, want)
		}
	})
}

// TestWait checks that Wait sleeps when the wait fits the deadline and
// MaxWait, and fails at once otherwise.
func TestWait(t *testing.T) {
	addr := redistest.Start(t)
	tests := []struct {
		name     string
		deadline time.Duration // 0: none
		maxWait  time.Duration
		wantErr  bool
	}{
		{"fits the deadline", 2 * time.Minute, 0, false},
		{"no deadline", 0, 0, false},
		{"past the deadline", 30 * time.Second, 0, true},
		{"past MaxWait", 0, 10 * time.Second, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			redistest.Bubble(t, func(t *testing.T) {
				l := newLimiter(t, addr, ratelimit.Config{Model: ratelimit.Limits{Requests: 1}, MaxWait: tc.maxWait})
				k := ratelimit.Key{Model: sonnet}
				if _, err := l.Wait(t.Context(), k, ratelimit.Tokens{}); err != nil {
					t.Fatal(err)
				}
				ctx := t.Context()
				if tc.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.deadline)
					defer cancel()
				}
				start := time.Now()
				r, err := l.Wait(ctx, k, ratelimit.Tokens{})
				waited := time.Since(start)
				var le *ratelimit.LimitError
				switch {
				case tc.wantErr:
					if !errors.As(err, &le) || le.RetryAfter != time.Minute || waited != 0 {
						t.Errorf("got %v after %v, want a LimitError with RetryAfter 1m at once", err, waited)
					}
				case err != nil || r == nil:
					t.Errorf("Wait: %v", err)
				case waited < time.Minute || waited > time.Minute+time.Minute/8+2*time.Millisecond:
					t.Errorf("waited %v, want a minute plus at most an eighth of jitter", waited)
				}
			})
		})
	}
}

// TestWaitCanceled checks that a waiting call stops when its context
// ends.
func TestWaitCanceled(t *testing.T) {
	addr := redistest.Start(t)
	redistest.Bubble(t, func(t *testing.T) {
		l := newLimiter(t, addr, ratelimit.Config{Model: ratelimit.Limits{Requests: 1}})
		k := ratelimit.Key{Model: sonnet}
		if _, err := l.Wait(t.Context(), k, ratelimit.Tokens{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(10*time.Second, cancel)
		_, err := l.Wait(ctx, k, ratelimit.Tokens{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func near(a, b float64) bool { return a-b < 1e-12 && b-a < 1e-12 }

func TestNewRejects(t *testing.T) {
	rdb := redistest.Client(t, redistest.Start(t))
	tests := []struct {
		name string
		cfg  ratelimit.Config
		want string
	}{
		{"brace in prefix", ratelimit.Config{Prefix: "a{b}:"}, "brace"},
		{"negative window", ratelimit.Config{Window: -time.Second}, "negative Window"},
		{"tiny window", ratelimit.Config{Window: time.Microsecond}, "under a millisecond"},
		{"negative limit", ratelimit.Config{Tenant: ratelimit.Limits{InputTokens: -1}}, "negative Tenant limits"},
		{"negative model override", ratelimit.Config{Models: map[string]ratelimit.Limits{"m": {Requests: -1}}}, "negative Models[m] limits"},
		{"negative budget", ratelimit.Config{TenantBudget: ratelimit.Budget{USDPerDay: -1}}, "negative TenantBudget.USDPerDay"},
		{"slow below 1", ratelimit.Config{SlowBelow: 1}, "not below 1"},
		{"short slot", ratelimit.Config{SlotTTL: time.Millisecond}, "too short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ratelimit.New(rdb, tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := ratelimit.New(nil, ratelimit.Config{}); err == nil {
		t.Error("New accepted a nil client")
	}
}

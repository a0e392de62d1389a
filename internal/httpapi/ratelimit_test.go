package httpapi_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

// limitedServer wires the API over an agent whose model calls and turns
// go through a real Limiter on the Redis at addr.
func limitedServer(t *testing.T, addr string, cfg ratelimit.Config) (string, *ratelimit.Limiter) {
	t.Helper()
	cfg.Prefix = redistest.Prefix(t)
	lim, err := ratelimit.New(redistest.Client(t, addr), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := stacktest.Start(t, stacktest.Options{
		Retry: retry.Policy{Attempts: 1},
		Wrap: stacktest.Decorators{
			Model:  func(m agent.Model) agent.Model { return ratelimit.WrapModel(m, lim) },
			Turner: func(t httpapi.Turner) httpapi.Turner { return ratelimit.WrapTurner(t, lim) },
		},
	})
	return s.URL, lim
}

// TestLimitErrors checks how the limiter's refusals reach the client: a
// real Limiter is brought to each refusal, then a turn is asked for.
func TestLimitErrors(t *testing.T) {
	addr := redistest.Start(t)
	tests := []struct {
		name string
		cfg  ratelimit.Config
		// setup brings the limiter to refuse the turn of session "s".
		setup      func(t *testing.T, srv string, lim *ratelimit.Limiter)
		status     int
		typ        string
		retryAfter time.Duration // the least Retry-After; 0: none
	}{
		{"stopped session", ratelimit.Config{}, func(t *testing.T, _ string, lim *ratelimit.Limiter) {
			if err := lim.Stop(t.Context(), ratelimit.ScopeSession, "s"); err != nil {
				t.Fatal(err)
			}
		}, 403, "stopped", 0},
		{"stopped tenant", ratelimit.Config{}, func(t *testing.T, _ string, lim *ratelimit.Limiter) {
			if err := lim.Stop(t.Context(), ratelimit.ScopeTenant, ratelimit.DefaultTenant); err != nil {
				t.Fatal(err)
			}
		}, 403, "stopped", 0},
		{"budget spent", ratelimit.Config{TenantBudget: ratelimit.Budget{TokensPerDay: 1}}, firstTurn, 402, "budget_exceeded", time.Second},
		{"rate limited", ratelimit.Config{Model: ratelimit.Limits{Requests: 1}, MaxWait: time.Millisecond}, firstTurn, 429, "rate_limited", 59 * time.Second},
		{"too many turns", ratelimit.Config{MaxTurns: 1, MaxWait: time.Millisecond}, func(t *testing.T, _ string, lim *ratelimit.Limiter) {
			slot, err := lim.Acquire(t.Context(), "", "other")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(slot.Release)
		}, 429, "too_many_turns", time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, lim := limitedServer(t, addr, tc.cfg)
			tc.setup(t, url, lim)
			r := do(t, url, "POST", "/agent", `{"session_id":"s","message":"hi"}`)
			if r.status != tc.status || errType(t, r) != tc.typ {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.typ)
			}
			ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
			if got := time.Duration(ra) * time.Second; tc.retryAfter > 0 && got < tc.retryAfter {
				t.Errorf("Retry-After = %q, want at least %v", r.header.Get("Retry-After"), tc.retryAfter)
			}
		})
	}
}

// firstTurn runs one turn of another session, to spend a budget or fill
// a window.
func firstTurn(t *testing.T, url string, _ *ratelimit.Limiter) {
	if r := do(t, url, "POST", "/agent", `{"session_id":"first","message":"hi"}`); r.status != 200 {
		t.Fatalf("first turn: %d %s", r.status, r.body)
	}
}

// TestLimiterUnavailable checks that when the limiter's Redis is down the
// turn is refused with 503, not let through unlimited.
func TestLimiterUnavailable(t *testing.T) {
	redis := redistest.StartServer(t)
	url, _ := limitedServer(t, redis.Addr, ratelimit.Config{})
	redis.Kill()
	r := do(t, url, "POST", "/agent", `{"session_id":"s","message":"hi"}`)
	if r.status != 503 || errType(t, r) != "store_unavailable" || r.header.Get("Retry-After") == "" {
		t.Errorf("got %d %s, want 503 store_unavailable with Retry-After", r.status, r.body)
	}
}

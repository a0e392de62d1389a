package ratelimit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session"
)

// TestTenantsSameSessionID runs turns of two tenants that name the same
// session id: each session has its own usage, budget and kill switch, so
// nothing tenant A spends counts for tenant B and stopping A's session
// leaves B's running (see #13).
func TestTenantsSameSessionID(t *testing.T) {
	addr := redistest.Start(t)
	_, url := startSim(t, claudesim.Config{})
	in := newInstance(t, addr, url, instanceConfig{limits: ratelimit.Config{
		SessionBudget: ratelimit.Budget{USDPerDay: 1e-6}, // the first call spends it
		MaxTurns:      10,                                // so that turns go through WrapTurner
	}})
	ctx := t.Context()
	run := func(tenant string) error {
		_, err := in.turns.Run(ctx, agent.Request{Tenant: tenant, SessionID: "s1", Message: "hi"})
		return err
	}
	if err := run("tenant-a"); err != nil {
		t.Fatal(err)
	}
	var be *ratelimit.BudgetError
	if err := run("tenant-a"); !errors.As(err, &be) || be.ID != session.Scope("tenant-a", "s1") {
		t.Fatalf("A's second turn: err = %v; want A's s1 over its budget", err)
	}
	// B's s1 and the default tenant's have budgets of their own.
	for _, tenant := range []string{"tenant-b", ""} {
		if err := run(tenant); err != nil {
			t.Errorf("tenant %q's s1 after A spent the budget of its s1: %v", tenant, err)
		}
	}
	now := time.Now()
	for _, tc := range []struct {
		tenant string
		calls  int64
	}{{"tenant-a", 1}, {"tenant-b", 1}, {"", 1}, {"tenant-c", 0}} {
		u, err := in.lim.Usage(ctx, ratelimit.ScopeSession, session.Scope(tc.tenant, "s1"), now)
		if err != nil {
			t.Fatal(err)
		}
		tenant := tc.tenant
		if tenant == "" {
			tenant = session.DefaultTenant
		}
		got := []any{u.ID, u.Tenant, u.ModelCalls}
		if diff := cmp.Diff([]any{"s1", tenant, tc.calls}, got); diff != "" {
			t.Errorf("usage of tenant %q's s1 (-want +got):\n%s", tc.tenant, diff)
		}
	}

	// The kill switch of A's s1 stops neither B's s1 nor the default's.
	if err := in.lim.Stop(ctx, ratelimit.ScopeSession, session.Scope("tenant-a", "s1")); err != nil {
		t.Fatal(err)
	}
	var se *ratelimit.StoppedError
	if err := run("tenant-a"); !errors.As(err, &se) {
		t.Errorf("A's stopped s1: err = %v; want a StoppedError", err)
	}
	for _, tenant := range []string{"tenant-b", ""} {
		// Over budget, as every session here after a call, but not stopped.
		if err := run(tenant); errors.As(err, &se) {
			t.Errorf("tenant %q's s1 after A's s1 was stopped: %v", tenant, err)
		}
	}
}

// TestInvalidKeys checks that a tenant or session id that could not be
// part of a key is refused before Redis is touched.
func TestInvalidKeys(t *testing.T) {
	addr := redistest.Start(t)
	l := newLimiter(t, addr, ratelimit.Config{MaxTurns: 1})
	ctx := t.Context()
	for _, tc := range []struct{ name, tenant, session string }{
		{"tenant with a slash", "a/b", ""},
		{"tenant with a brace", "{rl}", ""},
		{"long tenant", string(make([]byte, 65)), ""},
		{"dot dot", "..", ""},
		{"bad session", "acme", "a b"},
		{"bad tenant part", "acme", "a:b/s1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := l.Reserve(ctx, ratelimit.Key{Model: sonnet, Tenant: tc.tenant, SessionID: tc.session}, ratelimit.Tokens{}); !errors.Is(err, ratelimit.ErrInvalidKey) {
				t.Errorf("Reserve: err = %v; want ErrInvalidKey", err)
			}
			if _, err := l.Acquire(ctx, tc.tenant, tc.session); !errors.Is(err, ratelimit.ErrInvalidKey) {
				t.Errorf("Acquire: err = %v; want ErrInvalidKey", err)
			}
			if tc.session == "" {
				if err := l.Stop(ctx, ratelimit.ScopeTenant, tc.tenant); !errors.Is(err, ratelimit.ErrInvalidKey) {
					t.Errorf("Stop: err = %v; want ErrInvalidKey", err)
				}
			}
		})
	}
	if _, err := ratelimit.New(redistest.Client(t, addr), ratelimit.Config{DefaultTenant: "a/b"}); err == nil {
		t.Error("New with DefaultTenant a/b: no error")
	}
}

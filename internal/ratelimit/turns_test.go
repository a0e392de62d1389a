package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// gauge counts the turns in flight across instances and keeps the most.
type gauge struct{ now, most atomic.Int64 }

func (g *gauge) wrap(next ratelimit.Turner) ratelimit.Turner {
	return turnFunc(func(ctx context.Context, req agent.Request) (*agent.Answer, error) {
		n := g.now.Add(1)
		for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
		}
		defer g.now.Add(-1)
		return next.Run(ctx, req)
	})
}

type turnFunc func(ctx context.Context, req agent.Request) (*agent.Answer, error)

func (f turnFunc) Run(ctx context.Context, req agent.Request) (*agent.Answer, error) {
	return f(ctx, req)
}

// TestMaxTurns runs many turns at once on three instances with at most two
// in flight overall: the limit holds, and every turn gets its slot.
func TestMaxTurns(t *testing.T) {
	addr := redistest.Start(t)
	_, url := startSim(t, claudesim.Config{Latency: 20 * time.Millisecond})
	var g gauge
	var ins []*instance
	for range 3 {
		ins = append(ins, newInstance(t, addr, url, instanceConfig{
			limits: ratelimit.Config{MaxTurns: 2},
			wrap:   g.wrap,
		}))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := range 12 {
		wg.Go(func() {
			_, err := ins[i%3].turns.Run(t.Context(), agent.Request{SessionID: fmt.Sprintf("s%d", i), Message: "hi"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if m := g.most.Load(); m != 2 {
		t.Errorf("at most %d turns were in flight, want 2", m)
	}
}

// TestMaxTurnsPerTenant holds a tenant's only slot: its next turn is
// refused once MaxWait passes, while another tenant's turn runs; the slot
// released, the tenant runs again.
func TestMaxTurnsPerTenant(t *testing.T) {
	addr := redistest.Start(t)
	_, url := startSim(t, claudesim.Config{})
	in := newInstance(t, addr, url, instanceConfig{limits: ratelimit.Config{MaxTurnsPerTenant: 1, MaxWait: 50 * time.Millisecond}})
	held, err := in.lim.Acquire(t.Context(), "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = in.turns.Run(t.Context(), agent.Request{SessionID: "s1", Message: "hi", Tenant: "acme"})
	var le *ratelimit.LimitError
	if !errors.As(err, &le) || le.Kind != ratelimit.KindConcurrency || le.Scope != ratelimit.ScopeTenant || le.Name != "acme" || le.RetryAfter <= 0 {
		t.Errorf("err = %v, want acme's concurrency LimitError", err)
	}
	if _, err := in.turns.Run(t.Context(), agent.Request{SessionID: "s2", Message: "hi", Tenant: "other"}); err != nil {
		t.Errorf("another tenant: %v", err)
	}
	held.Release()
	held.Release() // twice is harmless
	if _, err := in.turns.Run(t.Context(), agent.Request{SessionID: "s1", Message: "hi", Tenant: "acme"}); err != nil {
		t.Errorf("after release: %v", err)
	}
	// Over HTTP the refusal is a 429 with Retry-After.
	held, err = in.lim.Acquire(t.Context(), "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	r := post(t, in.url, "/agent", `{"session_id":"s3","message":"hi"}`, "X-Tenant", "acme")
	if r.status != 429 || r.errType() != "too_many_turns" || r.header.Get("Retry-After") == "" {
		t.Errorf("got %d %v, want 429 too_many_turns with Retry-After", r.status, r.body)
	}
}

// TestNoConcurrencyLimit checks that WrapTurner adds nothing when no
// concurrency limit is set.
func TestNoConcurrencyLimit(t *testing.T) {
	addr := redistest.Start(t)
	l := newLimiter(t, addr, ratelimit.Config{})
	next := turnFunc(func(context.Context, agent.Request) (*agent.Answer, error) { return nil, nil })
	if got := ratelimit.WrapTurner(next, l); fmt.Sprintf("%p", got) != fmt.Sprintf("%p", next) {
		t.Errorf("WrapTurner without limits returned %T, want next itself", got)
	}
}

package ratelimit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/pricing"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session"
)

// TestFaults runs turns through the whole stack (limiter, Claude client
// with its retry policy, agent, Redis store) against a simulator that
// answers 30 % of requests with 429 or 529: every turn still succeeds,
// before its deadline. Under synctest the retries' waits (retry-after 1 s
// on a 429, backoff on a 529) cost no real time.
func TestFaults(t *testing.T) {
	addr := redistest.Start(t)
	sim, url := startSim(t, claudesim.Config{Rate429: 0.15, Rate529: 0.15, Seed: 7})
	const (
		workers  = 6
		turns    = 5
		deadline = 2 * time.Minute
	)
	redistest.Bubble(t, func(t *testing.T) {
		in := newInstance(t, addr, url, instanceConfig{
			limits: ratelimit.Config{Tenant: ratelimit.Limits{Requests: 1000, InputTokens: 1e6}},
			retry:  retry.Policy{Attempts: 10},
			bubble: true,
		})
		var wg sync.WaitGroup
		errs := make([]error, workers*turns)
		took := make([]time.Duration, workers*turns)
		for w := range workers {
			wg.Go(func() {
				for i := range turns {
					ctx, cancel := context.WithTimeout(t.Context(), deadline)
					start := time.Now()
					_, err := in.turns.Run(ctx, agent.Request{SessionID: fmt.Sprintf("s%d", w), Message: fmt.Sprintf("turn %d", i), Tenant: "acme"})
					took[w*turns+i], errs[w*turns+i] = time.Since(start), err
					cancel()
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("turn %d failed after %v: %v", i, took[i], err)
			} else if took[i] >= deadline {
				t.Errorf("turn %d took %v, past its deadline", i, took[i])
			}
		}
	})
	st := sim.Stats()
	injected := st.ByStatus[429] + st.ByStatus[529]
	if st.Messages != workers*turns || injected < st.Requests/6 {
		t.Errorf("simulator answered %d turns with %v; want %d answered and about 30 %% injected errors", st.Messages, st.ByStatus, workers*turns)
	}
	t.Logf("%d requests for %d turns: %v", st.Requests, st.Messages, st.ByStatus)
}

// TestNoRetryAfter400 checks that a request the API rejects as invalid is
// sent once, and that its reservation gives its tokens back.
func TestNoRetryAfter400(t *testing.T) {
	addr := redistest.Start(t)
	sim, url := startSim(t, claudesim.Config{})
	in := newInstance(t, addr, url, instanceConfig{
		limits: ratelimit.Config{Model: ratelimit.Limits{InputTokens: 1000}, OutputEstimate: 1},
		retry:  retry.Policy{Attempts: 5, Base: time.Millisecond},
		agent:  agent.Config{MaxTokens: 1_000_000}, // above the model's 128K: 400
	})
	_, err := in.turns.Run(t.Context(), agent.Request{SessionID: "s1", Message: "hi"})
	var se *claude.StatusError
	if !errors.As(err, &se) || se.Code != 400 {
		t.Fatalf("err = %v, want a 400 StatusError", err)
	}
	if st := sim.Stats(); st.Requests != 1 {
		t.Errorf("simulator got %d requests (%v), want 1: no retry after a 400", st.Requests, st.ByStatus)
	}
	// The whole input limit is free again.
	if r, _, err := in.lim.Reserve(t.Context(), ratelimit.Key{Model: sonnet}, ratelimit.Tokens{Input: 1000}); r == nil {
		t.Errorf("after a 400 the window still holds its estimate: %v", err)
	}
}

// haltTools is a tool runtime with one tool, halt, which flips the kill
// switch of the session through another instance's Limiter, as an
// operator would.
type haltTools struct{ lim *ratelimit.Limiter }

func (h haltTools) Definitions() json.RawMessage {
	return json.RawMessage(`[{"name":"halt","description":"stop this session","input_schema":{"type":"object"}}]`)
}

func (h haltTools) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	req, _ := agent.RequestFromContext(ctx)
	text := "stopped"
	if err := h.lim.Stop(ctx, ratelimit.ScopeSession, req.SessionID); err != nil {
		text = err.Error()
	}
	out, _ := json.Marshal(map[string]any{"type": "tool_result", "tool_use_id": c.ID, "content": text})
	return out
}

// TestKillSwitchInFlight stops a session while its turn runs (from a tool,
// through another instance): the turn's next model call is refused and
// the turn fails. (What the agent checkpointed of it before running the
// tool is the agent's business, see internal/agent.)
func TestKillSwitchInFlight(t *testing.T) {
	addr := redistest.Start(t)
	sim, url := startSim(t, claudesim.Config{})
	other := newInstance(t, addr, url, instanceConfig{})
	in := newInstance(t, addr, url, instanceConfig{tools: haltTools{other.lim}})
	_, err := in.turns.Run(t.Context(), agent.Request{SessionID: "s1", Message: "please [[tool halt {}]]"})
	var stopped *ratelimit.StoppedError
	if !errors.As(err, &stopped) || stopped.Scope != ratelimit.ScopeSession || stopped.ID != "s1" {
		t.Fatalf("err = %v, want the session's StoppedError", err)
	}
	if st := sim.Stats(); st.Requests != 1 || st.Messages != 1 {
		t.Errorf("simulator got %d requests, %d answered; want only the first call", st.Requests, st.Messages)
	}
	// Still stopped for new turns, on every instance; other sessions run.
	for _, x := range []*instance{in, other} {
		if _, err := x.turns.Run(t.Context(), agent.Request{SessionID: "s1", Message: "hello"}); !errors.As(err, &stopped) {
			t.Errorf("new turn of a stopped session: err = %v", err)
		}
		if _, err := x.turns.Run(t.Context(), agent.Request{SessionID: "s2", Message: "hello"}); err != nil {
			t.Errorf("another session: %v", err)
		}
	}
	if err := in.lim.Resume(t.Context(), ratelimit.ScopeSession, "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.turns.Run(t.Context(), agent.Request{SessionID: "s1", Message: "hello"}); err != nil {
		t.Fatalf("after Resume: %v", err)
	}

	// A stopped tenant is refused too, before any model call.
	before := sim.Stats().Requests
	if err := other.lim.Stop(t.Context(), ratelimit.ScopeTenant, "acme"); err != nil {
		t.Fatal(err)
	}
	_, err = in.turns.Run(t.Context(), agent.Request{SessionID: "s3", Message: "hello", Tenant: "acme"})
	if !errors.As(err, &stopped) || stopped.Scope != ratelimit.ScopeTenant || stopped.ID != "acme" {
		t.Errorf("stopped tenant: err = %v", err)
	}
	if n := sim.Stats().Requests - before; n != 0 {
		t.Errorf("a stopped tenant's turn reached the model %d times", n)
	}
}

// TestCostInAnswer checks that a turn's answer reports its cost, priced
// per call from the usage the API reported, and that the usage sums agree.
func TestCostInAnswer(t *testing.T) {
	addr := redistest.Start(t)
	sim, url := startSim(t, claudesim.Config{})
	in := newInstance(t, addr, url, instanceConfig{})
	req := agent.Request{SessionID: "s1", Message: "hi", Tenant: "acme", IdempotencyKey: "k1"}
	ans, err := in.turns.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	rec := sim.Requests()[0].Usage
	u := claude.Usage{InputTokens: int64(rec.InputTokens), OutputTokens: int64(rec.OutputTokens),
		CacheCreationInputTokens: int64(rec.CacheCreationInputTokens), CacheReadInputTokens: int64(rec.CacheReadInputTokens)}
	want := pricing.Default().Cost(sonnet, u.Tokens())
	if got := ans.Result.Usage.CostUSD; want == 0 || !near(got, want) {
		t.Errorf("answer cost = %v, want %v", got, want)
	}
	if !strings.Contains(string(ans.JSON), `"cost_usd":`) {
		t.Errorf("answer JSON %s lacks cost_usd", ans.JSON)
	}
	again, err := in.turns.Run(t.Context(), req)
	if err != nil || string(again.JSON) != string(ans.JSON) {
		t.Errorf("replay = %s, %v; want %s", again.JSON, err, ans.JSON)
	}
	for _, scope := range []struct {
		s  ratelimit.Scope
		id string
	}{{ratelimit.ScopeSession, session.Scope("acme", "s1")}, {ratelimit.ScopeTenant, "acme"}} {
		du, err := in.lim.Usage(t.Context(), scope.s, scope.id, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if du.ModelCalls != 1 || du.InputTokens != u.InputTokens || du.OutputTokens != u.OutputTokens || !near(du.CostUSD, float64(int64(want*1e6+0.5))/1e6) {
			t.Errorf("%s usage = %+v, want one call of %+v costing %v", scope.s, du, u, want)
		}
	}
}

// TestBudgetEveryInstance spends a tenant's daily budget on one instance:
// every instance then refuses the tenant with 402 budget_exceeded, and
// keeps serving other tenants.
func TestBudgetEveryInstance(t *testing.T) {
	addr := redistest.Start(t)
	_, url := startSim(t, claudesim.Config{})
	tests := []struct {
		name   string
		budget ratelimit.Budget
	}{
		{"tokens", ratelimit.Budget{TokensPerDay: 10}},
		{"dollars", ratelimit.Budget{USDPerDay: 0.00001}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ratelimit.Config{TenantBudget: tc.budget}
			var ins []*instance
			for range 4 {
				ins = append(ins, newInstance(t, addr, url, instanceConfig{limits: cfg}))
			}
			if r := post(t, ins[0].url, "/agent", `{"session_id":"a1","message":"hi"}`, "X-Tenant", "acme"); r.status != 200 {
				t.Fatalf("first turn: %d %v", r.status, r.body)
			}
			for i, in := range ins {
				r := post(t, in.url, "/agent", `{"session_id":"a2","message":"hi"}`, "X-Tenant", "acme")
				if r.status != 402 || r.errType() != "budget_exceeded" || r.header.Get("Retry-After") == "" {
					t.Errorf("instance %d: acme got %d %v (Retry-After %q), want 402 budget_exceeded", i, r.status, r.body, r.header.Get("Retry-After"))
				}
				if r := post(t, in.url, "/agent", fmt.Sprintf(`{"session_id":"o%d","message":"hi"}`, i), "X-Tenant", "other"+tc.name+fmt.Sprint(i)); r.status != 200 {
					t.Errorf("instance %d: another tenant got %d %v", i, r.status, r.body)
				}
			}
			// Nothing of the refused turns was saved.
			if st, err := loadSession(t, addr, "a2"); err != nil || st.Version != 0 {
				t.Errorf("refused session: %+v, %v", st, err)
			}
		})
	}
}

// TestSessionBudgetRenews spends a session's budget and checks that it
// renews at 00:00 UTC.
func TestSessionBudgetRenews(t *testing.T) {
	addr := redistest.Start(t)
	redistest.Bubble(t, func(t *testing.T) {
		// The bubble's clock starts at 2000-01-01 00:00 UTC.
		l := newLimiter(t, addr, ratelimit.Config{SessionBudget: ratelimit.Budget{USDPerDay: 0.01}})
		k := ratelimit.Key{Model: sonnet, Tenant: "acme", SessionID: "s1"}
		_, r := reserve(t, l, k, ratelimit.Tokens{})
		if err := r.Reconcile(t.Context(), claude.Usage{OutputTokens: 1000, CostUSD: 0.01}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(23 * time.Hour)
		_, wait, err := l.Reserve(t.Context(), k, ratelimit.Tokens{})
		var be *ratelimit.BudgetError
		if !errors.As(err, &be) || wait != 0 {
			t.Fatalf("err = %v, want a BudgetError", err)
		}
		want := ratelimit.BudgetError{Scope: "session", ID: "s1", Unit: "usd", Spent: 0.01, Limit: 0.01, RetryAfter: time.Hour}
		if *be != want {
			t.Errorf("got %+v, want %+v", *be, want)
		}
		if got, _ := reserve(t, l, ratelimit.Key{Model: sonnet, Tenant: "acme", SessionID: "s2"}, ratelimit.Tokens{}); !got.OK {
			t.Errorf("another session of the tenant: %+v", got)
		}
		time.Sleep(time.Hour)
		if got, _ := reserve(t, l, k, ratelimit.Tokens{}); !got.OK {
			t.Errorf("next day: %+v", got)
		}
	})
}

func loadSession(t *testing.T, addr, id string) (*session.State, error) {
	t.Helper()
	st, err := newStore(t, addr)
	if err != nil {
		return nil, err
	}
	return st.Load(t.Context(), id)
}

// TestCacheCost sends a request whose system prompt is cached for an hour,
// twice: the first reply writes the cache (1-hour writes, priced higher),
// the second reads it, and the costs and the tenant's sums say so.
func TestCacheCost(t *testing.T) {
	addr := redistest.Start(t)
	_, url := startSim(t, claudesim.Config{})
	l := newLimiter(t, addr, ratelimit.Config{})
	m := ratelimit.WrapModel(newClient(t, url, retry.Policy{}, false), l)
	system := strings.Repeat("You are terse. ", 200) // 3,000 bytes: 750 tokens, over Sonnet 5.5's 512 minimum
	req := claude.Request{Model: sonnet, MaxTokens: 100, Body: []byte(`{"model":"claude-sonnet-5-5","max_tokens":100,"system":[{"type":"text","text":"` + system +
		`","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":"hi"}]}`)}
	var replies []*claude.Reply
	for range 2 {
		r, err := m.Create(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, r)
	}
	w, rd := replies[0].Usage, replies[1].Usage
	if w.CacheCreationInputTokens != 750 || w.CacheCreation.Ephemeral1hInputTokens != 750 || rd.CacheReadInputTokens != 750 || rd.CacheCreationInputTokens != 0 {
		t.Fatalf("usage = %+v then %+v, want 750 tokens written for 1h, then read", w, rd)
	}
	p := pricing.Default()[sonnet]
	wantW := (float64(w.InputTokens)*p.Input + 750*p.CacheWrite1h + float64(w.OutputTokens)*p.Output) / 1e6
	wantR := (float64(rd.InputTokens)*p.Input + 750*p.CacheRead + float64(rd.OutputTokens)*p.Output) / 1e6
	if !near(w.CostUSD, wantW) || !near(rd.CostUSD, wantR) {
		t.Errorf("costs = %v, %v; want %v, %v", w.CostUSD, rd.CostUSD, wantW, wantR)
	}
	u, err := l.Usage(t.Context(), ratelimit.ScopeTenant, ratelimit.DefaultTenant, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if u.ModelCalls != 2 || u.CacheCreationInputTokens != 750 || u.CacheCreation1hInputTokens != 750 || u.CacheReadInputTokens != 750 {
		t.Errorf("tenant usage = %+v", u)
	}
}

// TestRetryWaits checks the retry policy's waits against the spec: after
// a 429 it waits at least the retry-after the API sent; after a 529 it
// backs off without waiting for the anthropic-ratelimit-*-reset headers,
// which every reply carries but which say when a bucket is full again.
// The simulator runs on the real clock, 26 years ahead of the bubble's,
// so a retry that waited for a reset would wait the policy's cap (20 s).
func TestRetryWaits(t *testing.T) {
	addr := redistest.Start(t)
	tests := []struct {
		name string
		sim  claudesim.Config
		// check judges the time calls took, given the statuses answered.
		check func(took time.Duration, st claudesim.Stats) string
	}{
		{"429 honours retry-after", claudesim.Config{Rate429: 0.4, InjectedRetryAfter: 3 * time.Second, Seed: 3},
			func(took time.Duration, st claudesim.Stats) string {
				if n := st.ByStatus[429]; n == 0 || took < time.Duration(n)*3*time.Second {
					return fmt.Sprintf("%d 429s in %v, want at least 3 s each", n, took)
				}
				return ""
			}},
		{"529 ignores reset", claudesim.Config{Rate529: 0.4, RequestsPerMinute: 1000, Seed: 3},
			func(took time.Duration, st claudesim.Stats) string {
				if n := st.ByStatus[529]; n == 0 || took >= retry.DefaultCap {
					return fmt.Sprintf("%d 529s took %v, want backoff only, under %v", n, took, retry.DefaultCap)
				}
				return ""
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, url := startSim(t, tc.sim)
			redistest.Bubble(t, func(t *testing.T) {
				m := ratelimit.WrapModel(newClient(t, url, retry.Policy{Attempts: 10}, true), newLimiter(t, addr, ratelimit.Config{}))
				start := time.Now()
				for i := range 10 {
					body := fmt.Sprintf(`{"model":"claude-sonnet-5-5","max_tokens":100,"messages":[{"role":"user","content":"call %d"}]}`, i)
					if _, err := m.Create(t.Context(), claude.Request{Model: sonnet, MaxTokens: 100, Body: []byte(body)}); err != nil {
						t.Fatal(err)
					}
				}
				if msg := tc.check(time.Since(start), sim.Stats()); msg != "" {
					t.Error(msg)
				}
			})
		})
	}
}

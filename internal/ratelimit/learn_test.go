package ratelimit_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestLearnSlowsEveryInstance lets one instance use up most of the API's
// input-token limit (the simulator enforces 1,000 per minute and says so
// in its anthropic-ratelimit-* headers): another instance, which has no
// limits of its own, then holds back before the API would answer 429.
func TestLearnSlowsEveryInstance(t *testing.T) {
	addr := redistest.Start(t)
	sim, url := startSim(t, claudesim.Config{InputTokensPerMinute: 1000})
	a := newInstance(t, addr, url, instanceConfig{})
	// b waits at most 100 ms for room, so that it answers 429 at once.
	b := newInstance(t, addr, url, instanceConfig{limits: ratelimit.Config{MaxWait: 100 * time.Millisecond}})

	// 950 tokens of 1,000: 50 left, under the default 10 %.
	if _, err := a.turns.Run(t.Context(), agent.Request{SessionID: "s1", Message: strings.Repeat("x", 3800)}); err != nil {
		t.Fatal(err)
	}
	_, wait, err := b.lim.Reserve(t.Context(), ratelimit.Key{Model: sonnet}, ratelimit.Tokens{Input: 10})
	var le *ratelimit.LimitError
	if !errors.As(err, &le) || le.Kind != ratelimit.KindSlowdown || le.Scope != ratelimit.ScopeModel {
		t.Fatalf("other instance: err = %v, want a slowdown LimitError", err)
	}
	// 50 tokens refill to 100 in 3 s at 1,000 a minute (the headers'
	// reset has a resolution of a second).
	if wait <= 0 || wait > 5*time.Second {
		t.Errorf("slow down for %v, want about 3s", wait)
	}
	r := post(t, b.url, "/agent", `{"session_id":"s2","message":"hi"}`)
	if s, _ := strconv.Atoi(r.header.Get("Retry-After")); r.status != 429 || r.errType() != "rate_limited" || s < 1 {
		t.Errorf("over HTTP: %d %v Retry-After %q; want 429 rate_limited", r.status, r.body, r.header.Get("Retry-After"))
	}
	if st := sim.Stats(); st.ByStatus[429] != 0 {
		t.Errorf("the simulator answered 429 %d times; the instances should have held back", st.ByStatus[429])
	}
}

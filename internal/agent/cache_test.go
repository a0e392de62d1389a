package agent_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/pricing"
)

// TestPromptCache runs a 50-turn conversation with caching on and off.
// With it on, from turn 2 on most input tokens are cache reads.
func TestPromptCache(t *testing.T) {
	system := "You are a careful assistant. " + strings.Repeat("Answer briefly and cite the conversation. ", 60)
	run := func(t *testing.T, mode string) []claude.Usage {
		f := newFixture(t, claudesim.Config{}, nil, agent.Config{System: system, PromptCache: mode})
		var out []claude.Usage
		for i := range 50 {
			ans, err := f.agent.Run(t.Context(), agent.Request{SessionID: "c", Message: fmt.Sprintf("question %d: what did I ask before?", i)})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, ans.Result.Usage)
		}
		return out
	}
	on, off := run(t, "5m"), run(t, "off")
	prices := pricing.Default()
	var costOn, costOff float64
	for i := range on {
		costOn += prices.Cost(agent.DefaultModel, on[i].Tokens())
		costOff += prices.Cost(agent.DefaultModel, off[i].Tokens())
	}
	t.Logf("50 turns on %s: $%.6f with caching (%.6f a turn), $%.6f without (%.6f a turn)", agent.DefaultModel, costOn, costOn/50, costOff, costOff/50)
	if costOn >= costOff {
		t.Errorf("caching made the conversation cost $%.6f, not less than $%.6f", costOn, costOff)
	}
	for i, u := range off {
		if u.CacheReadInputTokens != 0 || u.CacheCreationInputTokens != 0 {
			t.Fatalf("caching off, turn %d used the cache: %+v", i+1, u)
		}
	}
	if on[0].CacheCreationInputTokens == 0 {
		t.Errorf("turn 1 wrote nothing to the cache: %+v", on[0])
	}
	for i, u := range on[1:] {
		total := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
		if u.CacheReadInputTokens*2 < total {
			t.Errorf("turn %d: %d of %d input tokens read from the cache, want most", i+2, u.CacheReadInputTokens, total)
		}
		if offTotal := off[i+1].InputTokens; offTotal != total {
			t.Errorf("turn %d: %d input tokens with caching, %d without: the prompt differs", i+2, total, offTotal)
		}
	}
}

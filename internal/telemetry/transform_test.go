package telemetry_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// TestInputTransformations: a reply whose input_transformations say the
// API dropped a thinking block (drop_block, see #14) is logged and counted
// by model, type and reason; a reply without them is neither.
func TestInputTransformations(t *testing.T) {
	logs := &lockedBuffer{}
	tel, err := telemetry.New(telemetry.Config{Prometheus: true, Logger: newJSONLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	c, err := claude.New(claude.Config{APIKey: "k", BaseURL: sim.URL, Retry: retry.Policy{Attempts: 1}})
	if err != nil {
		t.Fatal(err)
	}
	m := telemetry.WrapModel(c, tel)
	ask := func(system string, messages []any, thinking any, betas ...string) *claude.Reply {
		t.Helper()
		body := map[string]any{"model": "claude-sonnet-5-5", "max_tokens": 1024, "system": system, "messages": messages}
		if thinking != nil {
			body["thinking"] = thinking
		}
		b, _ := json.Marshal(body)
		r, err := m.Create(t.Context(), claude.Request{Model: "claude-sonnet-5-5", MaxTokens: 1024, Body: b, Betas: betas})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := []any{map[string]any{"role": "user", "content": "hello"}}
	r := ask("old", first, nil)
	if r.InputTransformations != nil {
		t.Fatalf("first reply has input_transformations %s", r.InputTransformations)
	}
	history := append(first, map[string]any{"role": "assistant", "content": r.Content}, map[string]any{"role": "user", "content": "again"})
	drop := map[string]any{"type": "adaptive", "block_binding": map[string]any{"prefix_mismatch_behavior": "drop_block"}}
	r = ask("new", history, drop, "thinking-binding-controls-2026-08-01")
	if !strings.Contains(string(r.InputTransformations), `"thinking_dropped"`) {
		t.Fatalf("input_transformations = %s, want the dropped block", r.InputTransformations)
	}
	got := scrape(t, tel.MetricsHandler())
	if n := got[`lambdagent_input_transformations_total{model="claude-sonnet-5-5",type="thinking_dropped",reason="prefix_mismatch"}`]; n != 1 {
		t.Errorf("counter = %v, want 1; scraped %v", n, got)
	}
	var logged int
	for _, l := range logs.lines(t) {
		if l["msg"] == "claude changed the request" {
			logged++
			if !strings.Contains(mustMarshal(t, l["input_transformations"]), "messages.1.content.0") || l["request_id"] == "" {
				t.Errorf("log line %v lacks the transformation's path or the request id", l)
			}
		}
	}
	if logged != 1 {
		t.Errorf("%d log lines about changed requests, want 1", logged)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

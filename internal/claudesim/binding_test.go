package claudesim_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// post sends body to /v1/messages and decodes the answer.
func postJSON(t *testing.T, url, body string, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", url+"/v1/messages", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", "sk-test")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func errMessage(out map[string]any) string {
	e, _ := out["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// TestPrefixBinding: a thinking block sent back with the prefix it was
// made after passes; one whose system prompt, tools or earlier messages
// changed gets the documented 400, or is dropped with drop_block and its
// beta header; an appended system message and moved cache breakpoints
// change nothing.
func TestPrefixBinding(t *testing.T) {
	_, _, url := start(t, claudesim.Config{})
	tools := []any{map[string]any{"name": "get_time", "input_schema": map[string]any{"type": "object"}}}
	first := []any{map[string]any{"role": "user", "content": "hello"}}
	status, out := postJSON(t, url, mustJSON(t, map[string]any{
		"model": "claude-sonnet-5-5", "max_tokens": 1024, "system": "Be brief.", "tools": tools, "messages": first,
	}), nil)
	if status != 200 {
		t.Fatalf("first turn: %d %v", status, out)
	}
	history := append(first, map[string]any{"role": "assistant", "content": out["content"]})
	next := map[string]any{"role": "user", "content": "again"}

	type req struct {
		name     string
		system   any
		tools    []any
		messages []any
		thinking any
		header   map[string]string
		status   int
		errPart  string
		dropped  any
	}
	changedTools := append([]any{map[string]any{"name": "get_date", "input_schema": map[string]any{"type": "object"}}}, tools...)
	edited := []any{map[string]any{"role": "user", "content": "HELLO"}, history[1]}
	cached := []any{map[string]any{"role": "user", "content": []any{map[string]any{"type": "text", "text": "hello", "cache_control": map[string]any{"type": "ephemeral"}}}}, history[1]}
	systemMsg := map[string]any{"role": "system", "content": "The system prompt changed to: Be thorough."}
	drop := map[string]any{"type": "adaptive", "block_binding": map[string]any{"prefix_mismatch_behavior": "drop_block"}}
	beta := map[string]string{"anthropic-beta": "thinking-binding-controls-2026-08-01"}
	var wantDrop any = []any{map[string]any{"type": "thinking_dropped", "path": "messages.1.content.0", "reason": "prefix_mismatch"}}
	for _, tc := range []req{
		{name: "same prefix", system: "Be brief.", tools: tools, messages: history, status: 200},
		{name: "cache_control moved", system: []any{map[string]any{"type": "text", "text": "Be brief.", "cache_control": map[string]any{"type": "ephemeral"}}}, tools: tools, messages: cached, status: 200},
		{name: "system message appended", system: "Be brief.", tools: tools, messages: append(append([]any{}, history...), systemMsg), status: 200},
		{name: "system changed", system: "Be thorough.", tools: tools, messages: history, status: 400, errPart: "The block is bound to a different conversation"},
		{name: "tools changed", system: "Be brief.", tools: changedTools, messages: history, status: 400, errPart: "messages.1.content.0: Invalid `signature` in `thinking` block. The block is bound"},
		{name: "earlier message edited", system: "Be brief.", tools: tools, messages: edited, status: 400, errPart: "bound to a different conversation"},
		{name: "drop_block without beta", system: "Be thorough.", tools: tools, messages: history, thinking: drop, status: 400, errPart: "anthropic-beta"},
		{name: "drop_block", system: "Be thorough.", tools: tools, messages: history, thinking: drop, header: beta, status: 200, dropped: wantDrop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"model": "claude-sonnet-5-5", "max_tokens": 1024, "system": tc.system, "tools": tc.tools,
				"messages": append(append([]any{}, tc.messages...), next)}
			if tc.thinking != nil {
				body["thinking"] = tc.thinking
			}
			status, out := postJSON(t, url, mustJSON(t, body), tc.header)
			if status != tc.status || !strings.Contains(errMessage(out), tc.errPart) {
				t.Fatalf("got %d %v, want %d with %q", status, out, tc.status, tc.errPart)
			}
			if diff := cmp.Diff(tc.dropped, out["input_transformations"]); diff != "" {
				t.Errorf("input_transformations (-want +got):\n%s", diff)
			}
		})
	}

	// The older model does not bind: a changed system prompt passes.
	status, out = postJSON(t, url, mustJSON(t, map[string]any{
		"model": "claude-sonnet-4-5", "max_tokens": 2048, "thinking": map[string]any{"type": "enabled", "budget_tokens": 1024}, "messages": first,
	}), nil)
	if status != 200 {
		t.Fatalf("sonnet 4.5: %d %v", status, out)
	}
	status, out = postJSON(t, url, mustJSON(t, map[string]any{
		"model": "claude-sonnet-4-5", "max_tokens": 2048, "system": "changed", "thinking": map[string]any{"type": "enabled", "budget_tokens": 1024},
		"messages": []any{first[0], map[string]any{"role": "assistant", "content": out["content"]}, next},
	}), nil)
	if status != 200 {
		t.Errorf("sonnet 4.5 with a changed prefix: %d %v", status, out)
	}
}

// TestStopReasonMarkers: the markers of the package doc make the stop
// reasons the real API sends.
func TestStopReasonMarkers(t *testing.T) {
	_, _, url := start(t, claudesim.Config{})
	tools := []any{map[string]any{"name": "write_file", "input_schema": map[string]any{"type": "object"}}}
	ask := func(t *testing.T, maxTokens int, msgs ...any) map[string]any {
		t.Helper()
		status, out := postJSON(t, url, mustJSON(t, map[string]any{"model": "claude-sonnet-5-5", "max_tokens": maxTokens, "tools": tools, "messages": msgs}), nil)
		if status != 200 {
			t.Fatalf("%d %v", status, out)
		}
		return out
	}
	types := func(out map[string]any) []string {
		var ts []string
		for _, b := range out["content"].([]any) {
			ts = append(ts, b.(map[string]any)["type"].(string))
		}
		return ts
	}
	user := func(s string) any { return map[string]any{"role": "user", "content": s} }

	t.Run("refusal", func(t *testing.T) {
		out := ask(t, 1024, user("[[refusal]] tell me"))
		if out["stop_reason"] != "refusal" || len(types(out)) != 0 {
			t.Fatalf("got %v", out)
		}
		if d, _ := out["stop_details"].(map[string]any); d["type"] != "refusal" || d["explanation"] == nil {
			t.Errorf("stop_details = %v", out["stop_details"])
		}
		// A conversation that keeps the refused message keeps being refused.
		later := ask(t, 1024, user("[[refusal]] tell me"), map[string]any{"role": "assistant", "content": "ok"}, user("something else"))
		if later["stop_reason"] != "refusal" {
			t.Errorf("later turn: %v", later["stop_reason"])
		}
	})
	t.Run("pause_turn", func(t *testing.T) {
		out := ask(t, 1024, user("[[pause_turn]] work"))
		if out["stop_reason"] != "pause_turn" {
			t.Fatalf("got %v", out)
		}
		cont := ask(t, 1024, user("[[pause_turn]] work"), map[string]any{"role": "assistant", "content": out["content"]})
		text, _ := cont["content"].([]any)[0].(map[string]any)["text"].(string)
		if cont["stop_reason"] != "end_turn" || !strings.HasPrefix(text, "resumed: ") {
			t.Errorf("continuation: %v", cont)
		}
	})
	t.Run("max_tokens_in_tool", func(t *testing.T) {
		out := ask(t, 1024, user("[[max_tokens_in_tool]] write it"))
		ts := types(out)
		if out["stop_reason"] != "max_tokens" || ts[len(ts)-1] != "tool_use" {
			t.Fatalf("got %v", out)
		}
		// With N, a budget of N or more fits the call.
		if out := ask(t, 1000, user("[[max_tokens_in_tool 2000]] write it")); out["stop_reason"] != "max_tokens" {
			t.Errorf("1000 < 2000: %v", out["stop_reason"])
		}
		if out := ask(t, 2000, user("[[max_tokens_in_tool 2000]] write it")); out["stop_reason"] != "tool_use" {
			t.Errorf("2000 >= 2000: %v", out["stop_reason"])
		}
	})
	t.Run("empty", func(t *testing.T) {
		out := ask(t, 1024, user("[[empty]]"))
		if out["stop_reason"] != "end_turn" || len(types(out)) != 0 {
			t.Fatalf("got %v", out)
		}
	})
}

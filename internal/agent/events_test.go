package agent_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// recorder is a Sink that writes down what it sees.
type recorder struct {
	mu     sync.Mutex
	events []string
	text   strings.Builder // text deltas since the last tool_result
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) TurnStart(id string, turn int64) { r.add(fmt.Sprintf("turn_start %s %d", id, turn)) }
func (r *recorder) Thinking(string)                 { r.add("thinking") }
func (r *recorder) TextDelta(s string) {
	r.mu.Lock()
	r.text.WriteString(s)
	r.mu.Unlock()
	r.add("text")
}
func (r *recorder) ToolUse(c agent.ToolCall) { r.add("tool_use " + c.Name + " " + string(c.Input)) }
func (r *recorder) ToolResult(id string, isError bool) {
	r.mu.Lock()
	r.text.Reset()
	r.mu.Unlock()
	r.add(fmt.Sprintf("tool_result %v", isError))
}

// compact folds a run of text deltas (one or more) into "text*".
func compact(evs []string) []string {
	var out []string
	for _, e := range evs {
		if e == "text" {
			if n := len(out); n > 0 && out[n-1] == "text*" {
				continue
			}
			e = "text*"
		}
		out = append(out, e)
	}
	return out
}

// A turn with a Sink streams its model calls: the sink sees the turn
// start, the text as it comes and each tool call, and the text after the
// last tool result is the answer byte for byte (see #15).
func TestSinkEvents(t *testing.T) {
	tools := &funcTools{fns: map[string]func(json.RawMessage) string{"time": func(json.RawMessage) string { return "noon" }}}
	f := newFixture(t, claudesim.Config{}, tools, agent.Config{})
	tests := []struct {
		name, msg string
		want      []string
	}{
		{"plain", "hello <there> & ünïcode", []string{"turn_start s 1", "text*"}},
		{"tools", "what time? [[tool time]]", []string{"turn_start s 2", "text*", "tool_use time {}", "tool_result false", "text*"}},
		{"refusal", "[[refusal]]", []string{"turn_start s 3", "text*"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			ans, err := f.agent.Run(t.Context(), agent.Request{SessionID: "s", Message: tc.msg, Sink: rec})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, compact(rec.events)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if got := rec.text.String(); got != ans.Result.Response {
				t.Errorf("text deltas %q, answer %q", got, ans.Result.Response)
			}
		})
	}
	// Every model call streamed.
	for i, r := range f.sim.Requests() {
		if !r.Stream {
			t.Errorf("model call %d was not streamed", i)
		}
	}
}

package agent_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// stored returns the roles and raw messages of a session's history.
func stored(t *testing.T, f *fixture, id string) []string {
	t.Helper()
	st, err := f.store.Load(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(st.Messages))
	for i, m := range st.Messages {
		out[i] = string(m)
	}
	return out
}

func runTurn(t *testing.T, f *fixture, id, msg string) agent.Result {
	t.Helper()
	ans, err := f.agent.Run(t.Context(), agent.Request{SessionID: id, Message: msg})
	if err != nil {
		t.Fatalf("turn %q: %v", msg, err)
	}
	return ans.Result
}

// A refusal is answered (200) as one, with stop_details, and not stored:
// the simulator, like the API, keeps refusing a conversation that holds
// the refused message, so the next turn working shows it is gone.
func TestRefusal(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	runTurn(t, f, "r", "hello")
	res := runTurn(t, f, "r", "[[refusal]] something")
	if res.StopReason != "refusal" || !strings.Contains(res.Response, "declined") || !strings.Contains(string(res.StopDetails), `"type":"refusal"`) {
		t.Errorf("result %+v; want a refusal answer with stop_details", res)
	}
	if got := stored(t, f, "r"); len(got) != 2 {
		t.Errorf("stored %d messages after the refusal; want 2 (the refused exchange not kept): %v", len(got), got)
	}
	if res := runTurn(t, f, "r", "something else"); res.StopReason != "end_turn" {
		t.Errorf("the turn after a refusal: %+v", res)
	}
}

// pause_turn is continued: two model calls, one stored assistant message.
func TestPauseTurn(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	res := runTurn(t, f, "p", "[[pause_turn]] long work")
	if res.StopReason != "end_turn" || res.ModelCalls != 2 || !strings.Contains(res.Response, "pausing") || !strings.Contains(res.Response, "resumed: ") {
		t.Errorf("result %+v; want the paused reply continued to end_turn in 2 calls", res)
	}
	if got := stored(t, f, "p"); len(got) != 2 {
		t.Errorf("stored %v; want user and one assistant message", got)
	}
	runTurn(t, f, "p", "next")

	// Paused on the last allowed call: the turn ends there.
	f = newFixture(t, claudesim.Config{}, nil, agent.Config{MaxModelCalls: 1})
	if res := runTurn(t, f, "p", "[[pause_turn]] long work"); res.StopReason != "pause_turn" || res.ModelCalls != 1 {
		t.Errorf("with MaxModelCalls 1: %+v", res)
	}
	runTurn(t, f, "p", "next")
}

// A reply cut inside a tool call is tried again with twice the
// max_tokens; cut again, it is stored without the dangling call (which
// never ran) and answered as cut.
func TestMaxTokensInToolCall(t *testing.T) {
	tools := &liveTools{names: []string{"write_file"}}
	f := newFixture(t, claudesim.Config{}, tools, agent.Config{MaxTokens: 1000})

	res := runTurn(t, f, "m", "[[max_tokens_in_tool 1500]] write it")
	if res.StopReason != "end_turn" || len(tools.calls) != 1 || !strings.Contains(res.Response, "write_file=write_file ran") {
		t.Errorf("result %+v after %v; want the retried call to run", res, tools.calls)
	}
	recs := f.sim.Requests()
	var maxTokens []int
	for _, r := range recs {
		var b struct {
			MaxTokens int `json:"max_tokens"`
		}
		_ = json.Unmarshal(r.Body, &b)
		maxTokens = append(maxTokens, b.MaxTokens)
	}
	if len(maxTokens) != 3 || maxTokens[0] != 1000 || maxTokens[1] != 2000 || maxTokens[2] != 1000 {
		t.Errorf("max_tokens of the calls %v; want [1000 2000 1000]", maxTokens)
	}

	res = runTurn(t, f, "cut", "[[max_tokens_in_tool]] write it")
	if res.StopReason != "max_tokens" || !strings.Contains(res.Response, "cut off") || len(tools.calls) != 1 {
		t.Errorf("result %+v after %v; want an honest cut answer and no call", res, tools.calls)
	}
	msgs := stored(t, f, "cut")
	if len(msgs) != 2 || strings.Contains(msgs[1], "tool_use") {
		t.Errorf("stored %v; want the reply without its dangling tool_use", msgs)
	}
	if res := runTurn(t, f, "cut", "fine"); strings.Contains(res.Response, "may or may not have run") || res.StopReason != "end_turn" {
		t.Errorf("next turn %+v", res)
	}
}

// An empty end_turn is never stored as an empty message, which the API
// would reject on the next turn.
func TestEmptyReply(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	res := runTurn(t, f, "e", "[[empty]]")
	if res.StopReason != "end_turn" || res.Response != "" {
		t.Errorf("result %+v; want an empty end_turn answer", res)
	}
	msgs := stored(t, f, "e")
	if len(msgs) != 2 || !strings.Contains(msgs[1], "(no answer)") {
		t.Errorf("stored %v", msgs)
	}
	runTurn(t, f, "e", "hello?")
}

// A session that outgrew the context window fails with a 413 naming its
// size, not a 502, and the turn stores nothing.
func TestContextWindowExceeded(t *testing.T) {
	models := claudesim.Models()
	for i := range models {
		models[i].ContextWindow = 400
	}
	f := newFixture(t, claudesim.Config{Models: models}, nil, agent.Config{})
	runTurn(t, f, "w", "hello")
	_, err := f.agent.Run(t.Context(), agent.Request{SessionID: "w", Message: strings.Repeat("long ", 400)})
	ae := apierr.From(err)
	if ae.Kind != apierr.ContextWindowExceeded || ae.StatusCode() != http.StatusRequestEntityTooLarge || !strings.Contains(ae.Message, "3 messages") {
		t.Errorf("error %v (%s %d %q); want a 413 context_window_exceeded naming the size", err, ae.Kind, ae.StatusCode(), ae.Message)
	}
	if len(stored(t, f, "w")) != 2 {
		t.Error("the failed turn stored messages")
	}
	if errors.Is(err, agent.ErrBrokenHistory) {
		t.Error("not a broken history")
	}
}

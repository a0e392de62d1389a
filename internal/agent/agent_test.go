package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

type fixture struct {
	simURL string
	model  *claude.Client
	sim    *claudesim.Server
	store  session.Store
	agent  *agent.Agent
}

func newFixture(t *testing.T, simCfg claudesim.Config, tools agent.Tools, cfg agent.Config) *fixture {
	t.Helper()
	s := stacktest.Start(t, stacktest.Options{Sim: simCfg, Retry: retry.Policy{Attempts: 2, Base: 1}, Tools: tools, Agent: cfg})
	return &fixture{simURL: s.SimURL, model: s.Model, sim: s.Sim, store: s.Store, agent: s.Agent}
}

func TestTurns(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	ctx := t.Context()
	for i, msg := range []string{"hello", "how are you", "bye"} {
		ans, err := f.agent.Run(ctx, agent.Request{SessionID: "s1", Message: msg})
		if err != nil {
			t.Fatal(err)
		}
		r := ans.Result
		if r.Turn != int64(i+1) || r.SessionID != "s1" || r.StopReason != "end_turn" || r.ModelCalls != 1 || r.Usage.InputTokens == 0 || r.RequestID == "" {
			t.Errorf("turn %d result = %+v", i+1, r)
		}
		if !strings.Contains(r.Response, msg) {
			t.Errorf("turn %d response %q does not echo %q", i+1, r.Response, msg)
		}
		var decoded agent.Result
		if err := json.Unmarshal(ans.JSON, &decoded); err != nil || !cmp.Equal(decoded, r) {
			t.Errorf("JSON %s does not decode to the result (%v)", ans.JSON, err)
		}
	}
	st, err := f.store.Load(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != 6 || st.Turns != 3 || st.Counters["model_calls"] != 3 || st.Counters["input_tokens"] == 0 {
		t.Errorf("stored state: version %d turns %d counters %v", st.Version, st.Turns, st.Counters)
	}
	// The third request carried the whole history, thinking blocks included.
	reqs := f.sim.Requests()
	var got []string
	for _, turn := range reqs[2].Turns() {
		got = append(got, turn.Role+":"+strings.Join(turn.Blocks, ","))
	}
	want := []string{"user:text", "assistant:thinking,text", "user:text", "assistant:thinking,text", "user:text"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("third request's messages (-want +got):\n%s", diff)
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	tests := []struct {
		name string
		req  agent.Request
		want error
	}{
		{"empty message", agent.Request{SessionID: "s", Message: ""}, agent.ErrBadRequest},
		{"empty id", agent.Request{SessionID: "", Message: "x"}, session.ErrInvalidID},
		{"bad id", agent.Request{SessionID: "a{b}", Message: "x"}, session.ErrInvalidID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := f.agent.Run(t.Context(), tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if n := len(f.sim.Requests()); n != 0 {
		t.Errorf("bad requests reached the model %d times", n)
	}
}

// A model failure writes nothing and frees the session at once.
func TestModelFailureWritesNothing(t *testing.T) {
	f := newFixture(t, claudesim.Config{Rate500: 1}, nil, agent.Config{})
	_, err := f.agent.Run(t.Context(), agent.Request{SessionID: "s1", Message: "hi"})
	var se *claude.StatusError
	if !errors.As(err, &se) || se.Code != 500 {
		t.Fatalf("err = %v, want a 500 StatusError", err)
	}
	st, err := f.store.Load(t.Context(), "s1")
	if err != nil || st.Version != 0 || st.Turns != 0 {
		t.Fatalf("after a failed turn: %+v, %v; want an empty session", st, err)
	}
	// The lease was released: a new turn needn't wait for it to expire.
	_, err = f.store.Begin(t.Context(), session.BeginRequest{ID: "s1", LeaseToken: "t", LeaseTTL: agent.DefaultLeaseTTL})
	if err != nil {
		t.Fatalf("Begin after a failed turn: %v", err)
	}
}

func TestIdempotentReplay(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	req := agent.Request{SessionID: "s1", Message: "charge the card", IdempotencyKey: "k1"}
	first, err := f.agent.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.agent.Run(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || string(again.JSON) != string(first.JSON) {
		t.Errorf("repeat: replayed=%v %s, want the first answer %s", again.Replayed, again.JSON, first.JSON)
	}
	if n := len(f.sim.Requests()); n != 1 {
		t.Errorf("model called %d times, want 1", n)
	}
	req.Message = "something else"
	if _, err := f.agent.Run(t.Context(), req); !errors.Is(err, session.ErrIdempotencyMismatch) {
		t.Errorf("same key, other message: err = %v, want ErrIdempotencyMismatch", err)
	}
}

// funcTools runs tools that are Go functions: the agent's own Tools
// interface, implemented in the test as a real (tiny) tool runtime.
type funcTools struct {
	calls atomic.Int32
	fns   map[string]func(json.RawMessage) string
}

func (ft *funcTools) Definitions() json.RawMessage {
	var defs []map[string]any
	for name := range ft.fns {
		defs = append(defs, map[string]any{"name": name, "description": "test tool", "input_schema": map[string]any{"type": "object"}})
	}
	b, _ := json.Marshal(defs)
	return b
}

func (ft *funcTools) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	ft.calls.Add(1)
	text := ft.fns[c.Name](c.Input)
	out, _ := json.Marshal(map[string]any{"type": "tool_result", "tool_use_id": c.ID, "content": text})
	return out
}

func TestToolLoop(t *testing.T) {
	tools := &funcTools{fns: map[string]func(json.RawMessage) string{
		"add":  func(in json.RawMessage) string { return "sum=" + string(in) },
		"time": func(json.RawMessage) string { return "noon" },
	}}
	f := newFixture(t, claudesim.Config{}, tools, agent.Config{})
	ans, err := f.agent.Run(t.Context(), agent.Request{SessionID: "t1", Message: `please [[tool add {"a":1,"b":2}]] and [[tool time]]`})
	if err != nil {
		t.Fatal(err)
	}
	if ans.Result.ModelCalls != 2 || ans.Result.StopReason != "end_turn" || tools.calls.Load() != 2 {
		t.Errorf("result %+v after %d tool calls; want 2 model calls, end_turn, 2 tool calls", ans.Result, tools.calls.Load())
	}
	if !strings.Contains(ans.Result.Response, "noon") {
		t.Errorf("final answer %q does not use the tool results", ans.Result.Response)
	}
	st, _ := f.store.Load(t.Context(), "t1")
	if st.Version != 4 {
		t.Errorf("stored %d messages, want 4 (user, tool_use, tool_result, answer)", st.Version)
	}
	// A next turn sends the whole loop back, thinking blocks verbatim (the
	// simulator rejects tampered or missing ones).
	if _, err := f.agent.Run(t.Context(), agent.Request{SessionID: "t1", Message: "thanks"}); err != nil {
		t.Fatal(err)
	}
}

// The last allowed model call is made with tools off, so a turn always
// ends on an answer, never on a dangling tool_use.
func TestMaxModelCalls(t *testing.T) {
	tools := &funcTools{fns: map[string]func(json.RawMessage) string{"loop": func(json.RawMessage) string { return "again" }}}
	f := newFixture(t, claudesim.Config{}, tools, agent.Config{MaxModelCalls: 1})
	ans, err := f.agent.Run(t.Context(), agent.Request{SessionID: "m1", Message: "[[tool loop]]"})
	if err != nil {
		t.Fatal(err)
	}
	if ans.Result.ModelCalls != 1 || tools.calls.Load() != 0 || ans.Result.StopReason != "end_turn" {
		t.Errorf("result %+v with %d tool calls; want one call with tools off", ans.Result, tools.calls.Load())
	}
	if body := string(f.sim.Requests()[0].Body); !strings.Contains(body, `"tool_choice":{"type":"none"}`) {
		t.Errorf("last call did not disable tools: %s", body)
	}
}

func TestBrokenHistory(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	put := func(id string, msgs ...string) {
		t.Helper()
		st, err := f.store.Begin(t.Context(), session.BeginRequest{ID: id, LeaseToken: "w", LeaseTTL: agent.DefaultLeaseTTL})
		if err != nil {
			t.Fatal(err)
		}
		raw := make([]json.RawMessage, len(msgs))
		for i, m := range msgs {
			raw[i] = json.RawMessage(m)
		}
		if _, err := f.store.Commit(t.Context(), session.Commit{ID: id, LeaseToken: "w", Version: st.Version, Messages: raw, Release: true}); err != nil {
			t.Fatal(err)
		}
	}
	put("two-users", `{"role":"user","content":"a"}`, `{"role":"user","content":"b"}`)
	if _, err := f.agent.Run(t.Context(), agent.Request{SessionID: "two-users", Message: "x"}); !errors.Is(err, agent.ErrBrokenHistory) {
		t.Errorf("two user messages: err = %v, want ErrBrokenHistory", err)
	}
	put("unanswered", `{"role":"user","content":"a"}`)
	if _, err := f.agent.Run(t.Context(), agent.Request{SessionID: "unanswered", Message: "x"}); !errors.Is(err, agent.ErrBrokenHistory) {
		t.Errorf("trailing user message: err = %v, want ErrBrokenHistory", err)
	}
	// A dangling tool_use (left by a crash of an older version) is repaired
	// with an is_error tool_result in the next user message. The assistant
	// message is a genuine reply, since its thinking block must verify.
	tools := &funcTools{fns: map[string]func(json.RawMessage) string{"send": func(json.RawMessage) string { return "sent" }}}
	f = newFixture(t, claudesim.Config{}, tools, agent.Config{})
	model, _ := claude.New(claude.Config{APIKey: "test", BaseURL: f.simURL})
	user := `{"content":[{"type":"text","text":"[[tool send]]"}],"role":"user"}`
	reply, err := model.Create(t.Context(), claude.Request{Model: "claude-sonnet-5-5", MaxTokens: 100,
		Body: []byte(`{"model":"claude-sonnet-5-5","max_tokens":100,"tools":` + string(tools.Definitions()) + `,"messages":[` + user + `]}`)})
	if err != nil || reply.StopReason != "tool_use" {
		t.Fatalf("tool_use reply: %+v, %v", reply, err)
	}
	put("dangling", user, `{"content":`+string(reply.Content)+`,"role":"assistant"}`)
	f.sim.Reset()
	if _, err := f.agent.Run(t.Context(), agent.Request{SessionID: "dangling", Message: "x"}); err != nil {
		t.Fatalf("dangling tool_use: %v", err)
	}
	if n := tools.calls.Load(); n != 0 {
		t.Errorf("the interrupted tool was run again %d times", n)
	}
	turns := f.sim.Requests()[0].Turns()
	if last := turns[len(turns)-1]; last.Role != "user" || strings.Join(last.Blocks, ",") != "tool_result,text" {
		t.Errorf("repaired message = %+v, want user [tool_result text]", last)
	}
}

// gateTools has one tool, w, whose calls each wait for need calls to run
// at once (or for every call to have started), so a test sees how many
// the turn runs in parallel; later calls return first.
type gateTools struct {
	need, total int

	mu               sync.Mutex
	running, started int // guarded by mu
	peak             int // guarded by mu
}

func (g *gateTools) Definitions() json.RawMessage {
	return json.RawMessage(`[{"name":"w","description":"test tool","input_schema":{"type":"object"}}]`)
}

func (g *gateTools) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	var in struct{ N int }
	_ = json.Unmarshal(c.Input, &in)
	g.mu.Lock()
	g.running++
	g.started++
	g.peak = max(g.peak, g.running)
	g.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		g.mu.Lock()
		ok := g.running >= g.need || g.started == g.total
		g.mu.Unlock()
		if ok {
			break
		}
	}
	time.Sleep(time.Duration(g.total-in.N) * 5 * time.Millisecond)
	g.mu.Lock()
	g.running--
	g.mu.Unlock()
	out, _ := json.Marshal(map[string]any{"type": "tool_result", "tool_use_id": c.ID, "content": strconv.Itoa(in.N)})
	return out
}

// The turn runs the calls of one reply in parallel, at most
// Config.MaxParallelTools at once, and answers them in call order.
func TestParallelTools(t *testing.T) {
	const calls = 5
	tests := []struct {
		name     string
		max      int
		wantPeak int
	}{
		{"default runs all five at once", 0, calls},
		{"limit of two", 2, 2},
		{"one at a time", 1, 1},
	}
	var msg strings.Builder
	for n := 1; n <= calls; n++ {
		fmt.Fprintf(&msg, `[[tool w {"n":%d}]] `, n)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tools := &gateTools{need: tc.wantPeak, total: calls}
			f := newFixture(t, claudesim.Config{}, tools, agent.Config{MaxParallelTools: tc.max})
			ans, err := f.agent.Run(t.Context(), agent.Request{SessionID: "p", Message: msg.String()})
			if err != nil {
				t.Fatal(err)
			}
			if want := "tool results: w=1; w=2; w=3; w=4; w=5"; ans.Result.Response != want {
				t.Errorf("answer = %q, want %q (the results in call order)", ans.Result.Response, want)
			}
			tools.mu.Lock()
			defer tools.mu.Unlock()
			if tools.peak != tc.wantPeak || tools.started != calls {
				t.Errorf("%d calls, at most %d at once; want %d, at most %d", tools.started, tools.peak, calls, tc.wantPeak)
			}
		})
	}
}

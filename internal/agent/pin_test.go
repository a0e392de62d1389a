package agent_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

// liveTools is a tool set whose list changes while the process runs, as
// an MCP server's does when it restarts with other tools.
type liveTools struct {
	mu    sync.Mutex
	names []string
	calls []string
}

func (lt *liveTools) set(names ...string) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	lt.names = names
}

func (lt *liveTools) Definitions() json.RawMessage {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	defs := []map[string]any{}
	for _, n := range lt.names {
		defs = append(defs, map[string]any{"name": n, "input_schema": map[string]any{"type": "object"}})
	}
	b, _ := json.Marshal(defs)
	return b
}

func (lt *liveTools) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	lt.mu.Lock()
	lt.calls = append(lt.calls, c.Name)
	lt.mu.Unlock()
	out, _ := json.Marshal(map[string]any{"type": "tool_result", "tool_use_id": c.ID, "content": c.Name + " ran"})
	return out
}

// request is the part of a recorded Messages API request these tests read.
type request struct {
	System []struct {
		Text string `json:"text"`
	} `json:"system"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

func lastRequest(t *testing.T, sim *claudesim.Server) request {
	t.Helper()
	recs := sim.Requests()
	var r request
	if err := json.Unmarshal(recs[len(recs)-1].Body, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r request) system() string {
	if len(r.System) == 0 {
		return ""
	}
	return r.System[0].Text
}

func (r request) toolNames() []string {
	var names []string
	for _, t := range r.Tools {
		names = append(names, t.Name)
	}
	return names
}

func (r request) roles() []string {
	var roles []string
	for _, m := range r.Messages {
		roles = append(roles, m.Role)
	}
	return roles
}

// TestAppendOnly: with the simulator enforcing preserved thinking's
// prefix check, a session whose system prompt changes between turns (a
// deploy: another process with another config) and whose tool list gains
// a tool, then loses one, keeps working: it sends the system prompt and
// tools it pinned, hears of each change once in a system message, and a
// call to a tool that is gone is answered with an error. A new session
// pins what is current.
func TestAppendOnly(t *testing.T) {
	sim := claudesim.New(claudesim.Config{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	ts := srv.URL
	store, err := filestore.Open(filepath.Join(t.TempDir(), "sessions.db"), filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	tools := &liveTools{names: []string{"get_time"}}
	deploy := func(system string) *agent.Agent {
		return stacktest.Start(t, stacktest.Options{SimURL: ts, Store: store, Tools: tools, NoServer: true,
			Retry: retry.Policy{Attempts: 1}, Agent: agent.Config{System: system}}).Agent
	}
	ctx := t.Context()
	run := func(a *agent.Agent, id, msg string) *agent.Answer {
		t.Helper()
		ans, err := a.Run(ctx, agent.Request{SessionID: id, Message: msg})
		if err != nil {
			t.Fatalf("turn %q: %v", msg, err)
		}
		return ans
	}

	v1 := deploy("Be brief.")
	run(v1, "s", "[[tool get_time]]")
	run(v1, "s", "thanks")

	// A deploy changes the prompt, and the tool server gains a tool.
	v2 := deploy("Be thorough.")
	tools.set("get_time", "get_date")
	ans := run(v2, "s", "and now?")
	if !strings.Contains(ans.Result.Response, "and now?") {
		t.Errorf("response %q", ans.Result.Response)
	}
	req := lastRequest(t, sim)
	if req.system() != "Be brief." || !slices.Equal(req.toolNames(), []string{"get_time"}) {
		t.Errorf("sent system %q and tools %v; want the pinned ones", req.system(), req.toolNames())
	}
	n := len(req.Messages)
	var notice string
	_ = json.Unmarshal(req.Messages[n-2].Content, &notice)
	if req.Messages[n-2].Role != "system" || !strings.Contains(notice, "The system prompt changed to: Be thorough.") || !strings.Contains(notice, "get_date") {
		t.Errorf("message before the user's: %s %s; want the change notice", req.Messages[n-2].Role, req.Messages[n-2].Content)
	}
	// The notice is said once, and the tool loop still works.
	run(v2, "s", "[[tool get_time]] again")
	if got := strings.Count(strings.Join(lastRequest(t, sim).roles(), ","), "system"); got != 1 {
		t.Errorf("%d system messages in the request; want 1", got)
	}

	// The tool server loses get_time: a call to it is an error result.
	tools.set("get_date")
	ans = run(v2, "s", "[[tool get_time]] once more")
	if !strings.Contains(ans.Result.Response, "get_time=(error) tool no longer available") {
		t.Errorf("response %q; want the call to the removed tool answered as unavailable", ans.Result.Response)
	}
	if got := lastRequest(t, sim).roles(); strings.Count(strings.Join(got, ","), "system") != 2 {
		t.Errorf("roles %v; want a second notice for the removed tool", got)
	}
	run(v2, "s", "bye")
	for _, r := range sim.Requests() {
		if r.Status != 200 {
			t.Errorf("a request got %d", r.Status)
		}
	}

	// A new session pins the current prompt and tools.
	run(v2, "new", "hello")
	req = lastRequest(t, sim)
	if diff := cmp.Diff([]string{"Be thorough.", "get_date"}, append([]string{req.system()}, req.toolNames()...)); diff != "" {
		t.Errorf("new session's prefix (-want +got):\n%s", diff)
	}
	st, err := store.Load(ctx, "new")
	if err != nil || !strings.Contains(string(st.Pinned), "Be thorough.") {
		t.Errorf("pinned %s, %v", st.Pinned, err)
	}
}

// A session whose thinking is bound to another prefix (here: one stored
// before sessions pinned theirs, under another system prompt) fails every
// turn with 400, unless DropBoundThinking asks the API to drop those
// blocks.
func TestDropBoundThinking(t *testing.T) {
	sim := claudesim.New(claudesim.Config{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	store, err := filestore.Open(filepath.Join(t.TempDir(), "sessions.db"), filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	deploy := func(cfg agent.Config) *agent.Agent {
		return stacktest.Start(t, stacktest.Options{SimURL: srv.URL, Store: store, NoServer: true, Retry: retry.Policy{Attempts: 1}, Agent: cfg}).Agent
	}
	ctx := t.Context()
	if _, err := deploy(agent.Config{System: "old"}).Run(ctx, agent.Request{SessionID: "s", Message: "hello"}); err != nil {
		t.Fatal(err)
	}
	// The same history, stored without a pin, as before pinning existed.
	st, err := store.Load(ctx, "s")
	if err != nil {
		t.Fatal(err)
	}
	tok := "legacy-token"
	if _, err := store.Begin(ctx, session.BeginRequest{ID: "legacy", LeaseToken: tok, LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Commit(ctx, session.Commit{ID: "legacy", LeaseToken: tok, Messages: st.Messages, Turns: 1, Release: true}); err != nil {
		t.Fatal(err)
	}

	if _, err := deploy(agent.Config{System: "new"}).Run(ctx, agent.Request{SessionID: "legacy", Message: "again"}); err == nil || !strings.Contains(err.Error(), "bound to a different conversation") {
		t.Fatalf("turn without DropBoundThinking: err = %v; want the 400", err)
	}
	ans, err := deploy(agent.Config{System: "new", DropBoundThinking: true}).Run(ctx, agent.Request{SessionID: "legacy", Message: "again"})
	if err != nil {
		t.Fatalf("turn with DropBoundThinking: %v", err)
	}
	if !strings.Contains(ans.Result.Response, "again") {
		t.Errorf("response %q", ans.Result.Response)
	}
	recs := sim.Requests()
	if got := recs[len(recs)-1].Header.Get("anthropic-beta"); got != "thinking-binding-controls-2026-08-01" {
		t.Errorf("anthropic-beta = %q", got)
	}
}

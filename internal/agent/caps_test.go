package agent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/session"
)

// A message over the cap is refused with 413 naming the limit, before
// the store or the model is asked anything.
func TestMessageTooLarge(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{MaxMessageBytes: 1000})
	if _, err := f.agent.Run(t.Context(), agent.Request{SessionID: "s1", Message: strings.Repeat("x", 1000)}); err != nil {
		t.Fatalf("a message at the limit: %v", err)
	}
	_, err := f.agent.Run(t.Context(), agent.Request{SessionID: "s1", Message: strings.Repeat("x", 1001)})
	if !errors.Is(err, agent.ErrMessageTooLarge) {
		t.Fatalf("err = %v, want ErrMessageTooLarge", err)
	}
	e := apierr.From(err)
	if e.Kind != apierr.RequestTooLarge || e.Status != 413 || !strings.Contains(e.Message, "limit of 1000 bytes") {
		t.Errorf("client sees %d %s %q, want 413 request_too_large naming the limit", e.Status, e.Kind, e.Message)
	}
	if n := len(f.sim.Requests()); n != 1 {
		t.Errorf("model called %d times, want 1", n)
	}
}

// A turn that would take the session over its cap is refused before the
// model is called, and the session is left byte for byte as it was.
func TestSessionFull(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	ctx := t.Context()
	if _, err := f.agent.Run(ctx, agent.Request{SessionID: "s1", Message: "hello"}); err != nil {
		t.Fatal(err)
	}
	before, err := f.store.Load(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, m := range before.Messages {
		stored += len(m)
	}
	limit := stored + 80 // room for a short message, not for a long one
	capped, err := agent.New(f.store, f.model, nil, agent.Config{MaxSessionBytes: limit})
	if err != nil {
		t.Fatal(err)
	}
	calls := len(f.sim.Requests())
	_, err = capped.Run(ctx, agent.Request{SessionID: "s1", Message: strings.Repeat("long ", 30)})
	if !errors.Is(err, agent.ErrSessionFull) {
		t.Fatalf("err = %v, want ErrSessionFull", err)
	}
	e := apierr.From(err)
	if e.Kind != apierr.SessionTooLarge || e.Status != 413 || !strings.Contains(e.Message, "limit of "+itoa(limit)+" bytes") || !strings.Contains(e.Message, "nothing was saved") {
		t.Errorf("client sees %d %s %q, want 413 session_too_large naming the limit", e.Status, e.Kind, e.Message)
	}
	if n := len(f.sim.Requests()); n != calls {
		t.Errorf("the refused turn called the model %d times", n-calls)
	}
	after, err := f.store.Load(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the refused turn changed the session (-before +after):\n%s", diff)
	}
	// The lease was released, and a short message still fits.
	if _, err := capped.Run(ctx, agent.Request{SessionID: "s1", Message: "ok"}); err != nil {
		t.Errorf("a turn that fits: %v", err)
	}
}

// The size cap is on the whole session: a window session, whose Begin
// reads only the history from its cut, is full at the same turn as a
// full one.
func TestSessionFullAfterCut(t *testing.T) {
	const limit = 3000
	full := map[agent.History]int{}
	for _, h := range []agent.History{agent.HistoryFull, agent.HistoryWindow} {
		f := newFixture(t, claudesim.Config{}, nil, agent.Config{History: h, HistoryWindowTurns: 2, MaxSessionBytes: limit})
		for turn := 1; turn <= 50; turn++ {
			_, err := f.agent.Run(t.Context(), agent.Request{SessionID: "s", Message: fmt.Sprintf("turn %d", turn)})
			if errors.Is(err, agent.ErrSessionFull) {
				full[h] = turn
				break
			}
			if err != nil {
				t.Fatalf("%s turn %d: %v", h, turn, err)
			}
		}
		st, err := f.store.Begin(t.Context(), session.BeginRequest{ID: "s", LeaseToken: "look", LeaseTTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if h == agent.HistoryWindow && st.First == 0 {
			t.Errorf("the window session's Begin read from message 0: want a cut")
		}
	}
	if full[agent.HistoryFull] == 0 || full[agent.HistoryWindow] != full[agent.HistoryFull] {
		t.Errorf("full at turn %d under full, %d under window; want the same turn", full[agent.HistoryFull], full[agent.HistoryWindow])
	}
}

// A huge tool result is cut before it is saved or sent: the stored
// tool_result and the one Claude got are within the cap, keep their
// tool_use_id and tell Claude where they were cut.
func TestToolResultCapped(t *testing.T) {
	const limit = 4096
	huge := strings.Repeat("<é> ", 50_000) // HTML and two-byte runes: escaping must not push it over
	tools := &funcTools{fns: map[string]func(json.RawMessage) string{"big": func(json.RawMessage) string { return huge }}}
	f := newFixture(t, claudesim.Config{}, tools, agent.Config{MaxToolResultBytes: limit})
	ctx := t.Context()
	if _, err := f.agent.Run(ctx, agent.Request{SessionID: "t1", Message: "[[tool big]]"}); err != nil {
		t.Fatal(err)
	}
	st, err := f.store.Load(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Messages) != 4 {
		t.Fatalf("stored %d messages, want 4", len(st.Messages))
	}
	var use struct {
		Content []struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		} `json:"content"`
	}
	if err := json.Unmarshal(st.Messages[1], &use); err != nil || len(use.Content) == 0 {
		t.Fatalf("tool_use message %s: %v", st.Messages[1], err)
	}
	id := use.Content[len(use.Content)-1].ID
	var res struct {
		Content []json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(st.Messages[2], &res); err != nil || len(res.Content) != 1 {
		t.Fatalf("tool_result message %.200s: %v", st.Messages[2], err)
	}
	block := res.Content[0]
	if len(block) > limit {
		t.Errorf("stored tool_result is %d bytes, over the cap of %d", len(block), limit)
	}
	var got struct {
		Type      string `json:"type"`
		ToolUseID string `json:"tool_use_id"`
		Content   []struct {
			Type, Text string
		} `json:"content"`
	}
	if err := json.Unmarshal(block, &got); err != nil {
		t.Fatal(err)
	}
	if got.Type != "tool_result" || got.ToolUseID != id || len(got.Content) != 2 {
		t.Fatalf("cut block = %.300s, want a tool_result for %s with text and a note", block, id)
	}
	if !strings.HasPrefix(huge, got.Content[0].Text) || len(got.Content[0].Text) < 1000 { // "<" and ">" take six bytes each, "é" two
		t.Errorf("kept text is %d bytes and not a prefix of the result", len(got.Content[0].Text))
	}
	if note := got.Content[1].Text; !strings.Contains(note, "cut at 4096 bytes") || !strings.Contains(note, "over the limit of 4096 bytes") {
		t.Errorf("note = %q, want the size and the cut", note)
	}
	// Claude got the same cut block.
	reqs := f.sim.Requests()
	if last := reqs[len(reqs)-1].Body; !bytes.Contains(last, []byte(`cut at 4096 bytes`)) || len(last) > 3*limit {
		t.Errorf("the model call after the tool sent %d bytes, want the cut result", len(last))
	}
	// The next turn sends the session as stored.
	if _, err := f.agent.Run(ctx, agent.Request{SessionID: "t1", Message: "thanks"}); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

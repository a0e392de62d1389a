package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

// ignoreCuts is a store that drops every cut, as the contract lets a
// store do: its Begin reads the whole history.
type ignoreCuts struct{ session.Store }

func (s ignoreCuts) Commit(ctx context.Context, c session.Commit) (int64, error) {
	c.Cut = nil
	return s.Store.Commit(ctx, c)
}

// TestCutReadsAsFull runs one conversation of tool calls and compactions
// twice under window and compact, on a Redis store that keeps the cuts
// the agent sets (Begin reads the history from the cut on) and on one
// that ignores them (Begin reads everything): every request the model
// gets is the same, byte for byte, so the prompt cache fares exactly as
// before (see #14). It checks that the cut did move, and that it lies
// where the requests' history starts.
func TestCutReadsAsFull(t *testing.T) {
	rdb := redistest.Client(t, redistest.Start(t))
	for _, tc := range []struct {
		history agent.History
		cfg     agent.Config
	}{
		{agent.HistoryWindow, agent.Config{HistoryWindowTurns: 6}},
		{agent.HistoryCompact, agent.Config{HistoryTriggerTokens: 6_000}},
	} {
		t.Run(string(tc.history), func(t *testing.T) {
			tools := &funcTools{fns: map[string]func(json.RawMessage) string{
				"lookup": func(in json.RawMessage) string {
					return "result for " + string(in) + ": " + strings.Repeat("data ", 200)
				},
			}}
			cfg := tc.cfg
			cfg.History, cfg.MaxTokens = tc.history, 200
			var bodies [2][]string
			var firsts [2]int64
			for i, ignore := range []bool{false, true} {
				store, err := redisstore.New(rdb, redisstore.Config{Prefix: fmt.Sprintf("%s%d:", redistest.Prefix(t), i), TTL: time.Minute, Liveness: -1})
				if err != nil {
					t.Fatal(err)
				}
				opts := stacktest.Options{Sim: claudesim.Config{ContextWindow: strategyWindow, MinCompactTrigger: 1000, MaxRecorded: 1000},
					Retry: retry.Policy{Attempts: 2, Base: 1}, Tools: tools, Agent: cfg, Store: store, NoServer: true}
				if ignore {
					opts.Wrap.Store = func(s session.Store) session.Store { return ignoreCuts{s} }
				}
				s := stacktest.Start(t, opts)
				for turn := range 40 {
					msg := fmt.Sprintf("question %d: %s", turn, strings.Repeat("Some context. ", 10))
					if turn%3 == 0 {
						msg += fmt.Sprintf(` [[tool lookup {"q":%d}]]`, turn)
					}
					if _, err := s.Agent.Run(t.Context(), agent.Request{SessionID: "s", Message: msg}); err != nil {
						t.Fatalf("turn %d: %v", turn+1, err)
					}
				}
				for _, r := range s.Sim.Requests() {
					bodies[i] = append(bodies[i], string(r.Body))
				}
				st, err := store.Begin(t.Context(), session.BeginRequest{ID: "s", LeaseToken: "check", LeaseTTL: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				firsts[i] = st.First
				whole, err := store.Load(t.Context(), "s")
				if err != nil {
					t.Fatal(err)
				}
				if st.Version != whole.Version || st.HistoryBytes != whole.HistoryBytes || whole.First != 0 ||
					joined(st.Messages) != joined(whole.Messages[st.First:]) {
					t.Errorf("Begin read v%d, %d bytes, from %d; Load v%d, %d bytes, from %d: want the same history",
						st.Version, st.HistoryBytes, st.First, whole.Version, whole.HistoryBytes, whole.First)
				}
			}
			if firsts[0] == 0 || firsts[1] != 0 {
				t.Errorf("Begin read from message %d with cuts and %d without: want a cut that moved, and none", firsts[0], firsts[1])
			}
			if len(bodies[0]) != len(bodies[1]) {
				t.Fatalf("%d requests with cuts, %d without", len(bodies[0]), len(bodies[1]))
			}
			for i := range bodies[0] {
				if bodies[0][i] != bodies[1][i] {
					t.Fatalf("request %d differs with cuts:\n%.300s\nwithout:\n%.300s", i, bodies[0][i], bodies[1][i])
				}
			}
			t.Logf("%d requests, the same; the last Begin read from message %d", len(bodies[0]), firsts[0])
		})
	}
}

// cutAtCheckpoint is a crashStore whose checkpoints also store a cut one
// message past the open turn's start, as no agent does: the cut passes
// the turn a retry resumes.
type cutAtCheckpoint struct{ *crashStore }

func (c cutAtCheckpoint) Commit(ctx context.Context, cm session.Commit) (int64, error) {
	if !cm.Release {
		cm.Cut = &session.Cut{Index: cm.Version + 1, Starts: 2}
	}
	return c.crashStore.Commit(ctx, cm)
}

// A turn that died in its tool loop resumes from its start even when the
// session's cut lies past it: Begin's history does not hold the turn's
// start, so the agent reads the whole history (Load) and goes on as
// without the cut, running no tool again.
func TestResumeBeforeCut(t *testing.T) {
	for _, store := range stores {
		t.Run(store.name, func(t *testing.T) {
			f := store.new(t, claudesim.Config{})
			tools := newCountingTools(map[string]func(json.RawMessage) string{"charge": func(json.RawMessage) string { return "charged" }})
			cs := cutAtCheckpoint{&crashStore{Store: f.store}}
			a, err := agent.New(cs, f.model, tools, agent.Config{LeaseTTL: leaseTTL, QueueWait: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			for _, msg := range []string{"hello", "and again"} {
				if _, err := a.Run(t.Context(), agent.Request{SessionID: "r", Message: msg}); err != nil {
					t.Fatal(err)
				}
			}
			req := agent.Request{SessionID: "r", Message: "pay [[tool charge]]", IdempotencyKey: "k"}
			cs.dead.Store(true)
			if _, err := a.Run(t.Context(), req); !errors.Is(err, errCrashed) {
				t.Fatalf("first attempt: err = %v; want the crash", err)
			}
			cs.dead.Store(false)
			// The dead turn's lease ends; then a look at what Begin reads.
			var st *session.State
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				st, err = f.store.Begin(t.Context(), session.BeginRequest{ID: "r", LeaseToken: "peek", LeaseTTL: time.Minute})
				if _, busy := errors.AsType[*session.BusyError](err); !busy || time.Now().After(deadline) {
					break
				}
			}
			if err != nil || st.First != 5 || st.Pending == "" {
				t.Fatalf("Begin after the crash: %v; want the cut at 5, past the open turn's start at 4", err)
			}
			if err := f.store.Release(t.Context(), "r", "peek"); err != nil {
				t.Fatal(err)
			}
			ans, err := a.Run(t.Context(), req)
			if err != nil {
				t.Fatalf("retry: %v", err)
			}
			if got := tools.count(); got["charge"] != 1 || ans.Result.Response != "tool results: charge=charged" || ans.Result.Turn != 3 {
				t.Errorf("retry: %d charges, answer %+v; want 1 charge and the tool results as turn 3", got["charge"], ans.Result)
			}
			whole, err := f.store.Load(t.Context(), "r")
			if err != nil {
				t.Fatal(err)
			}
			if n := len(whole.Messages); n != 8 || !strings.Contains(string(whole.Messages[4]), "pay") {
				t.Errorf("stored %d messages; want 8, the turn once from its start at 4", n)
			}
		})
	}
}

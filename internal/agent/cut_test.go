package agent_test

import (
	"context"
	"encoding/json"
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

package agent_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/session"
)

// strategyWindow is the simulated context window the conversations of
// TestHistoryStrategies outgrow.
const strategyWindow = 20_000

// TestHistoryStrategies runs one conversation that outgrows a 20K-token
// context window under each history strategy (see #14): 60 turns, every
// other one calling a tool whose result is 600 tokens, on Claude Sonnet
// 5.5 with preserved thinking bound to its prefix. Under compact,
// clear_tool_uses and window every turn succeeds with no request over the
// window and none rejected (the simulator validates every transcript and
// every thinking block's prefix); under full, turns succeed only through
// the retry with half the turns, after a 400. It reports the cache hit
// rate of each (README: "History strategies").
func TestHistoryStrategies(t *testing.T) {
	const turns = 60
	for _, tc := range []struct {
		history agent.History
		cfg     agent.Config
		tooLong bool // requests rejected as too long are expected
	}{
		{history: agent.HistoryFull, tooLong: true},
		{history: agent.HistoryCompact, cfg: agent.Config{HistoryTriggerTokens: 12_000, CompactInstructions: "Keep the question numbers."}},
		{history: agent.HistoryClearToolUses, cfg: agent.Config{HistoryTriggerTokens: 8_000}},
		{history: agent.HistoryWindow, cfg: agent.Config{HistoryWindowTurns: 10}},
	} {
		t.Run(string(tc.history), func(t *testing.T) {
			tools := &funcTools{fns: map[string]func(json.RawMessage) string{
				"lookup": func(in json.RawMessage) string {
					return "result for " + string(in) + ": " + strings.Repeat("data ", 480)
				},
			}}
			cfg := tc.cfg
			cfg.History, cfg.MaxTokens = tc.history, 200
			cfg.System = "You answer questions about the data the lookup tool returns. " + strings.Repeat("Be brief. ", 60)
			f := newFixture(t, claudesim.Config{ContextWindow: strategyWindow, MinCompactTrigger: 1000, MaxRecorded: 1000}, tools, cfg)

			var read, total int64
			for i := range turns {
				msg := fmt.Sprintf("question %d: what does the data say? %s", i, strings.Repeat("Some context. ", 10))
				if i%2 == 0 {
					msg += fmt.Sprintf(` [[tool lookup {"q":%d}]]`, i)
				}
				ans, err := f.agent.Run(t.Context(), agent.Request{SessionID: "s", Message: msg})
				if err != nil {
					t.Fatalf("turn %d: %v", i+1, err)
				}
				u := ans.Result.Usage
				if i > 0 {
					read += u.CacheReadInputTokens
					total += u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
				}
			}

			var tooLong, compactions, maxInput int
			var out []string
			for _, r := range f.sim.Requests() {
				if r.Path != "/v1/messages" {
					continue
				}
				if r.Status != http.StatusOK {
					if !tc.tooLong || r.Status != http.StatusBadRequest {
						t.Errorf("request answered %d: %s", r.Status, r.Body[:min(len(r.Body), 200)])
					}
					tooLong++
					continue
				}
				in := r.Usage.InputTokens + r.Usage.CacheReadInputTokens + r.Usage.CacheCreationInputTokens
				if len(r.Usage.Iterations) > 0 {
					compactions++
					in = r.Usage.Iterations[0].InputTokens + r.Usage.Iterations[0].CacheReadInputTokens + r.Usage.Iterations[0].CacheCreationInputTokens
				}
				maxInput = max(maxInput, in)
				if in > strategyWindow {
					t.Errorf("a request of %d input tokens was answered, over the %d window", in, strategyWindow)
				}
				out = append(out, string(r.Body))
			}
			if tc.history == agent.HistoryWindow {
				// The cut moves in steps of half the window, and only to
				// where a turn starts.
				cuts := map[string]bool{}
				for _, body := range out {
					var req struct {
						Messages []struct {
							Role    string          `json:"role"`
							Content json.RawMessage `json:"content"`
						} `json:"messages"`
					}
					if err := json.Unmarshal([]byte(body), &req); err != nil {
						t.Fatal(err)
					}
					first := req.Messages[0]
					if first.Role != "user" || strings.Contains(string(first.Content), "tool_result") {
						t.Fatalf("a window starts with %s %s", first.Role, first.Content)
					}
					cuts[string(first.Content)] = true
				}
				if n := len(cuts); n > (turns-10)/5+2 {
					t.Errorf("the window started at %d places over %d turns: want steps of 5 turns", n, turns)
				}
			}
			if tc.tooLong != (tooLong > 0) {
				t.Errorf("%d requests rejected as too long", tooLong)
			}
			if tc.history == agent.HistoryCompact && compactions == 0 {
				t.Error("the conversation was never compacted")
			}

			// The stored history is complete: every turn's user message.
			st, err := f.store.Load(t.Context(), session.Scope("", "s"))
			if err != nil {
				t.Fatal(err)
			}
			users := 0
			for _, m := range st.Messages {
				if strings.HasPrefix(string(m), `{"role":"user"`) && strings.Contains(string(m), "what does the data say?") {
					users++
				}
			}
			if users != turns {
				t.Errorf("stored history holds %d of the %d user messages", users, turns)
			}
			if tc.history == agent.HistoryCompact && !strings.Contains(string(st.Messages[len(st.Messages)-1])+joined(st.Messages), `"type":"compaction"`) {
				t.Error("no compaction block stored")
			}
			rate := float64(read) / float64(max(total, 1))
			t.Logf("history=%s: %d turns, %d requests (%d rejected as too long, %d compacted), largest prompt %d tokens, cache hit rate %.1f%% (turns 2-%d: %d of %d input tokens read from the cache)",
				tc.history, turns, len(out)+tooLong, tooLong, compactions, maxInput, 100*rate, turns, read, total)
			if tc.history != agent.HistoryFull && rate < 0.5 {
				t.Errorf("cache hit rate %.2f: want most input read from the cache", rate)
			}
		})
	}
}

func joined(msgs []json.RawMessage) string {
	var b strings.Builder
	for _, m := range msgs {
		b.Write(m)
	}
	return b.String()
}

// A session keeps the strategy it started with; a turn may choose one
// only for a new session.
func TestHistoryPinnedPerSession(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	if _, err := f.agent.Run(t.Context(), agent.Request{SessionID: "w", Message: "hi", History: "window"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		history string
		ok      bool
	}{{"", true}, {"window", true}, {"full", false}, {"summarise", false}} {
		_, err := f.agent.Run(t.Context(), agent.Request{SessionID: "w", Message: "again", History: tc.history})
		if (err == nil) != tc.ok {
			t.Errorf("history %q on a window session: err = %v, want ok=%v", tc.history, err, tc.ok)
		}
	}
	st, err := f.store.Load(t.Context(), session.Scope("", "w"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(st.Pinned), `"history":"window"`) {
		t.Errorf("pin %s does not hold the session's strategy", st.Pinned)
	}
}

// Under compact, a reply compacted while calling a tool: the tool loop
// goes on from the compaction block, and the next turn sends the history
// from it on, after the placeholder.
func TestCompactInToolLoop(t *testing.T) {
	tools := &funcTools{fns: map[string]func(json.RawMessage) string{"lookup": func(json.RawMessage) string { return "found" }}}
	f := newFixture(t, claudesim.Config{MinCompactTrigger: 100}, tools, agent.Config{History: agent.HistoryCompact, HistoryTriggerTokens: 500})
	ans := runTurn(t, f, "c", strings.Repeat("context ", 300)+"[[tool lookup]]")
	if ans.ModelCalls != 2 || !strings.Contains(ans.Response, "lookup=found") {
		t.Fatalf("turn 1: %d calls, response %q", ans.ModelCalls, ans.Response)
	}
	runTurn(t, f, "c", "and now?")
	msgs := stored(t, f, "c")
	if len(msgs) != 6 || !strings.Contains(msgs[1], `"type":"compaction"`) {
		t.Fatalf("stored %d messages, the second %.80s; want 6, the compacted tool call second", len(msgs), msgs[1])
	}
	recs := f.sim.Requests()
	var req struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(recs[len(recs)-1].Body, &req); err != nil {
		t.Fatal(err)
	}
	if len(req.Messages) != 5 || !strings.Contains(string(req.Messages[0]), "earlier conversation compacted") {
		t.Errorf("turn 2 sent %d messages, the first %s; want the placeholder and the 4 from the compaction on", len(req.Messages), req.Messages[0])
	}
	if got := recs[len(recs)-1].Header.Get("anthropic-beta"); got != "compact-2026-01-12" {
		t.Errorf("anthropic-beta = %q", got)
	}
}

// A reply the context window cut (stop_reason
// model_context_window_exceeded) is asked again with half the turns; the
// shortened turn is stored without its thinking, which is bound to the
// shorter prefix, so the next full request is not refused for it.
func TestWindowExceededRetriesShorter(t *testing.T) {
	f := newFixture(t, claudesim.Config{ContextWindow: 3000}, nil, agent.Config{MaxTokens: 1500})
	for i := range 3 {
		runTurn(t, f, "x", fmt.Sprintf("turn %d %s", i, strings.Repeat("abcd", 300)))
	}
	before := len(f.sim.Requests())
	ans := runTurn(t, f, "x", "long "+strings.Repeat("abcd", 600))
	if ans.StopReason != "end_turn" {
		t.Errorf("stop_reason %q", ans.StopReason)
	}
	recs := f.sim.Requests()[before:]
	if len(recs) != 2 || recs[0].Status != 200 || recs[0].Usage.InputTokens+recs[0].Usage.CacheReadInputTokens+recs[0].Usage.CacheCreationInputTokens+recs[0].Usage.OutputTokens != 3000 {
		t.Errorf("%d requests for the turn, want 2: one whose reply the window cut, then a shorter one", len(recs))
	}
	msgs := stored(t, f, "x")
	if last := msgs[len(msgs)-1]; strings.Contains(last, `"type":"thinking"`) {
		t.Errorf("the shortened turn was stored with its thinking: %.120s", last)
	}
	if len(msgs) != 8 {
		t.Errorf("stored %d messages, want all 8", len(msgs))
	}
	// The next turn is too long in full, and shortened again.
	runTurn(t, f, "x", "and then?")
}

// A compacted reply's compaction iteration is billed but not in the
// top-level usage (see claude.Usage): the turn's usage, its cost and the
// session's counters count it, streamed or not.
func TestCompactionUsageCounted(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			f := newFixture(t, claudesim.Config{MinCompactTrigger: 100}, nil, agent.Config{History: agent.HistoryCompact, HistoryTriggerTokens: 500})
			req := agent.Request{SessionID: "u", Message: strings.Repeat("context ", 300)}
			if stream {
				req.Sink = &recorder{}
			}
			ans, err := f.agent.Run(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			// The simulator records a request once its answer is out.
			recs := f.sim.Requests()
			for deadline := time.Now().Add(2 * time.Second); len(recs) == 0 && time.Now().Before(deadline); recs = f.sim.Requests() {
				time.Sleep(5 * time.Millisecond)
			}
			if len(recs) != 1 || len(recs[0].Usage.Iterations) != 2 {
				t.Fatalf("%d requests; want 1, compacted (usage.iterations of 2)", len(recs))
			}
			u := recs[0].Usage
			in, out := int64(u.InputTokens+u.CacheReadInputTokens+u.CacheCreationInputTokens), int64(u.OutputTokens)
			var compIn, compOut int64
			for _, it := range u.Iterations {
				if it.Type == "compaction" {
					compIn += int64(it.InputTokens + it.CacheReadInputTokens + it.CacheCreationInputTokens)
					compOut += int64(it.OutputTokens)
				}
			}
			if compIn == 0 || compOut == 0 {
				t.Fatalf("compaction iteration read %d and wrote %d tokens", compIn, compOut)
			}
			got := ans.Result.Usage
			if gotIn := got.InputTokens + got.CacheReadInputTokens + got.CacheCreationInputTokens; gotIn != in+compIn || got.OutputTokens != out+compOut {
				t.Errorf("turn usage %d in / %d out; want the message's %d / %d plus the compaction's %d / %d", gotIn, got.OutputTokens, in, out, compIn, compOut)
			}
			st, err := f.store.Load(t.Context(), session.Scope("", "u"))
			if err != nil {
				t.Fatal(err)
			}
			if st.Counters["output_tokens"] != out+compOut {
				t.Errorf("session counters output_tokens = %d, want %d", st.Counters["output_tokens"], out+compOut)
			}
		})
	}
}

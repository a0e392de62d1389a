package agent_test

// The tests of #8, item 4: a tool call is not run again when its turn is
// retried after a crash. The store is real (Redis and the file store); a
// crashStore in front of it plays the process dying after the tools ran:
// the final commit never reaches the store and the lease is not released,
// so the retry waits for it to expire as it would after a real crash.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/session"
)

var errCrashed = errors.New("test: the process died")

// crashStore is the real store, except that while dead is set the process
// is gone: the final commit and releases never reach the store, and saves
// of results whose text contains lose (a call still running when the
// process died) are never made.
type crashStore struct {
	session.Store
	dead atomic.Bool
	lose string
}

func (c *crashStore) Commit(ctx context.Context, cm session.Commit) (int64, error) {
	if cm.Release && c.dead.Load() {
		return 0, errCrashed
	}
	return c.Store.Commit(ctx, cm)
}

func (c *crashStore) Release(ctx context.Context, id, token string) error {
	if c.dead.Load() {
		return nil
	}
	return c.Store.Release(ctx, id, token)
}

func (c *crashStore) SaveToolResult(ctx context.Context, id, token, toolUseID string, result []byte) error {
	if c.dead.Load() && c.lose != "" && bytes.Contains(result, []byte(c.lose)) {
		return nil
	}
	return c.Store.SaveToolResult(ctx, id, token, toolUseID, result)
}

// countingTools are Go functions as tools, counting the calls of each.
type countingTools struct {
	fns   map[string]func(json.RawMessage) string
	mu    sync.Mutex
	calls map[string]int // guarded by mu
}

func newCountingTools(fns map[string]func(json.RawMessage) string) *countingTools {
	return &countingTools{fns: fns, calls: map[string]int{}}
}

func (ct *countingTools) Definitions() json.RawMessage {
	var defs []map[string]any
	for _, name := range []string{"charge", "slow"} {
		if ct.fns[name] != nil {
			defs = append(defs, map[string]any{"name": name, "description": "test tool", "input_schema": map[string]any{"type": "object"}})
		}
	}
	b, _ := json.Marshal(defs)
	return b
}

func (ct *countingTools) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	ct.mu.Lock()
	ct.calls[c.Name]++
	ct.mu.Unlock()
	out, _ := json.Marshal(map[string]any{"type": "tool_result", "tool_use_id": c.ID, "content": ct.fns[c.Name](c.Input)})
	return out
}

func (ct *countingTools) count() map[string]int {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	out := map[string]int{}
	for k, v := range ct.calls {
		out[k] = v
	}
	return out
}

// leaseTTL is short so that a retry waits little for the dead turn's lease.
const leaseTTL = 300 * time.Millisecond

func TestRetryAfterCrashReusesToolResults(t *testing.T) {
	const directive = `pay [[tool charge {"amount":5}]] then [[tool slow]]`
	tests := []struct {
		name string
		// lose is what the dead process did not save: results containing it.
		lose string
		// retry is the message of the request after the crash: the same
		// one (a retry) or another.
		retry string
		// wantCalls counts the tool calls over both attempts.
		wantCalls map[string]int
		// wantAnswer is the simulator's reply to the results the second
		// attempt sent.
		wantAnswer string
		// wantUserTexts are the user texts of the history at the end.
		wantUserTexts []string
	}{
		{
			name:          "SameRequest",
			retry:         directive,
			wantCalls:     map[string]int{"charge": 1, "slow": 1},
			wantAnswer:    "tool results: charge=charged 5; slow=slept",
			wantUserTexts: []string{directive, ""},
		},
		{
			// The slow call was still running when the process died: it
			// has no result, so the retry runs it (and only it) again.
			name:          "SameRequestUnsavedCall",
			lose:          "slept",
			retry:         directive,
			wantCalls:     map[string]int{"charge": 1, "slow": 2},
			wantAnswer:    "tool results: charge=charged 5; slow=slept",
			wantUserTexts: []string{directive, ""},
		},
		{
			// Another request runs nothing of the dead turn: the saved
			// result goes back to Claude, the lost one as interrupted.
			name:          "OtherRequest",
			lose:          "slept",
			retry:         "what happened?",
			wantCalls:     map[string]int{"charge": 1, "slow": 1},
			wantAnswer:    "tool results: charge=charged 5; slow=(error) This tool call was interrupted before it returned a result; it may or may not have run.",
			wantUserTexts: []string{directive, "what happened?"},
		},
	}
	for _, store := range stores {
		for _, tc := range tests {
			t.Run(store.name+"/"+tc.name, func(t *testing.T) {
				f := store.new(t, claudesim.Config{})
				tools := newCountingTools(map[string]func(json.RawMessage) string{
					"charge": func(in json.RawMessage) string {
						var v struct{ Amount int }
						json.Unmarshal(in, &v)
						return fmt.Sprintf("charged %d", v.Amount)
					},
					"slow": func(json.RawMessage) string { return "slept" },
				})
				cs := &crashStore{Store: f.store, lose: tc.lose}
				a, err := agent.New(cs, f.model, tools, agent.Config{LeaseTTL: leaseTTL, QueueWait: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				req := agent.Request{SessionID: "crash", Message: directive, IdempotencyKey: "key-1"}

				cs.dead.Store(true)
				if _, err := a.Run(t.Context(), req); !errors.Is(err, errCrashed) {
					t.Fatalf("first attempt: err = %v; want the crash", err)
				}
				if got := tools.count(); got["charge"] != 1 || got["slow"] != 1 {
					t.Fatalf("first attempt ran %v; want each tool once", got)
				}
				cs.dead.Store(false)

				retry := req
				if tc.retry != directive {
					retry = agent.Request{SessionID: "crash", Message: tc.retry, IdempotencyKey: "key-2"}
				}
				ans, err := a.Run(t.Context(), retry) // waits for the dead lease
				if err != nil {
					t.Fatalf("retry: %v", err)
				}
				if diff := cmp.Diff(tc.wantCalls, tools.count()); diff != "" {
					t.Errorf("tool calls over both attempts (-want +got):\n%s", diff)
				}
				// The dead turn never completed: the retry, or the other
				// request, is the session's first turn.
				if ans.Result.Response != tc.wantAnswer || ans.Result.Turn != 1 {
					t.Errorf("retry's answer = %+v; want %q as turn 1", ans.Result, tc.wantAnswer)
				}

				st, err := f.store.Load(t.Context(), "crash")
				if err != nil {
					t.Fatal(err)
				}
				if st.Pending != "" {
					t.Errorf("Pending = %q after the turn ended; want none", st.Pending)
				}
				var texts []string
				for i, m := range st.Messages {
					var w wireMessage
					if err := json.Unmarshal(m, &w); err != nil {
						t.Fatal(err)
					}
					if w.Role == "user" {
						texts = append(texts, w.text())
					}
					if wantRole := []string{"user", "assistant"}[i%2]; w.Role != wantRole {
						t.Errorf("message %d has role %s; want %s", i, w.Role, wantRole)
					}
				}
				if diff := cmp.Diff(tc.wantUserTexts, texts); diff != "" {
					t.Errorf("user texts of the history (-want +got):\n%s", diff)
				}
				// A repeat of the retry is answered from its idempotency record.
				again, err := a.Run(t.Context(), retry)
				if err != nil || !again.Replayed || !bytes.Equal(again.JSON, ans.JSON) {
					t.Errorf("repeat of the retry = %+v, %v; want the stored answer", again, err)
				}
			})
		}
	}
}

// TestToolTurnRoundTrips counts what a turn with tools costs in Redis round
// trips: Begin, the checkpoint before the tools, one save per result and
// the final commit. A turn without tools stays at two (TestRedisRoundTrips).
func TestToolTurnRoundTrips(t *testing.T) {
	f := newRedisFixture(t, claudesim.Config{})
	c := &tripCounter{}
	f.rdb.AddHook(c)
	tools := newCountingTools(map[string]func(json.RawMessage) string{
		"charge": func(json.RawMessage) string { return "charged" },
		"slow":   func(json.RawMessage) string { return "slept" },
	})
	a, err := agent.New(f.store, f.model, tools, agent.Config{LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	warmScripts(t, a, "[[tool charge]] [[tool slow]]")
	c.take()
	ans, err := a.Run(t.Context(), agent.Request{SessionID: "rt", Message: "[[tool charge]] [[tool slow]]"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ans.Result.Response, "tool results:") {
		t.Fatalf("answer = %q", ans.Result.Response)
	}
	// The saves run in parallel, so the pool may dial a second connection:
	// its handshake (HELLO, CLIENT SETINFO) is not the turn's.
	var got []string
	for _, cmd := range c.take() {
		if cmd != "hello" && !strings.HasPrefix(cmd, "client") {
			got = append(got, cmd)
		}
	}
	// begin, checkpoint, 2 saves, commit; the commits pipeline the
	// catalog's writes (see TestRedisRoundTrips).
	want := []string{"evalsha", "evalsha+zadd+hincrby+hincrby+hincrby+hincrby+pexpire", "evalsha", "evalsha", "evalsha+evalsha+hincrby+hincrby+hincrby+hincrby+pexpire"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Redis round trips of a turn with 2 tool calls (-want +got):\n%s", diff)
	}
}

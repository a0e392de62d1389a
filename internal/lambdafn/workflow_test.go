package lambdafn

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/workflow"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
	"github.com/lambdagent/lambdagent/internal/workflow/filerun"
)

// stepTools is the tool server of these tests: "work" takes 150ms and
// counts its calls by tool_use_id, as a side-effecting server
// deduplicating on it would see them.
type stepTools struct {
	mu    sync.Mutex
	calls map[string]int // tool_use_id → calls
}

func (s *stepTools) Definitions() json.RawMessage { return json.RawMessage(`[{"name":"work"}]`) }
func (s *stepTools) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	s.mu.Lock()
	s.calls[c.ID]++
	s.mu.Unlock()
	select {
	case <-time.After(150 * time.Millisecond):
	case <-ctx.Done():
		return json.RawMessage(`{"type":"tool_result","content":"cut","is_error":true}`)
	}
	return json.RawMessage(`{"type":"tool_result","content":"{\"done\":true}"}`)
}

// engineRuns adapts the engine as the root package does.
type engineRuns struct{ e *engine.Engine }

func (r engineRuns) Start(ctx context.Context, tenant, wf string, input json.RawMessage, key string) (Started, error) {
	run, _, err := r.e.Start(ctx, tenant, wf, input, key)
	return Started{Ref: run.StoreID, RunID: run.ID, Workflow: run.Workflow, Status: run.Status}, err
}
func (r engineRuns) Advance(ctx context.Context, ref string) (Progress, error) {
	o, err := r.e.AdvanceUntil(ctx, ref)
	return Progress{Status: o.Status, Due: o.Due, Cut: o.Cut}, err
}
func (r engineRuns) Due(ctx context.Context, n int) ([]string, error) { return r.e.Due(ctx, n) }

const testFlows = `name: four
input: {type: object, properties: {n: {type: number}}}
steps:
  - {id: a, tool: work}
  - {id: b, tool: work}
  - {id: c, tool: work}
  - {id: d, tool: work}
---
name: nap
steps:
  - {id: s, sleep: {for: 30s}}
  - {id: a, tool: work}
`

func newRunsFunction(t *testing.T, queue string, peer *sqsPeer) (*Function, *engine.Engine, *stepTools) {
	t.Helper()
	store, err := filerun.Open(filepath.Join(t.TempDir(), "runs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var defs []*workflow.Definition
	for i, doc := range strings.Split(testFlows, "\n---\n") {
		d, err := workflow.Parse(fmt.Sprintf("flows#%d", i), []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Validate(workflow.ValidateOptions{}); err != nil {
			t.Fatal(err)
		}
		defs = append(defs, d)
	}
	tools := &stepTools{calls: map[string]int{}}
	e, err := engine.New(engine.Config{Store: store, Definitions: defs, Tools: tools, LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Runs: engineRuns{e}, RunQueueURL: queue, DeadlineMargin: 50 * time.Millisecond}
	if peer != nil {
		cfg.SQS = peer.client(t)
		cfg.DeadLetterURL = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"
	}
	return newFunction(t, http.NotFoundHandler(), cfg), e, tools
}

// TestWorkflowHandOn starts a run of four 150ms steps by direct
// invocation with 400ms per invocation: each invocation commits what it
// finishes and hands the rest on to the function's queue; feeding the
// hand-offs back as SQS records completes the run, each step's tool_use_id
// called once (a cut call is repeated with the same id).
func TestWorkflowHandOn(t *testing.T) {
	peer := startSQSPeer(t)
	const queue = "https://sqs.us-east-1.amazonaws.com/123456789012/turns"
	f, e, tools := newRunsFunction(t, queue, peer)
	invoke := func(payload []byte) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
		defer cancel()
		out, err := f.Invoke(ctx, payload)
		if err != nil {
			t.Fatalf("invoke %s: %v", payload, err)
		}
		return out
	}
	var started struct {
		RunID  string `json:"run_id"`
		Status string `json:"status"`
	}
	out := invoke([]byte(`{"workflow":"four","input":{"n":1},"idempotency_key":"k1"}`))
	if err := json.Unmarshal(out, &started); err != nil || started.RunID == "" || started.Status != "running" {
		t.Fatalf("start answered %s (%v); want a running run", out, err)
	}
	invocations := 1
	for handed := 0; ; handed++ {
		sent := peer.Sent()
		if handed >= len(sent) {
			break
		}
		m := sent[handed]
		if m.QueueURL != queue || !strings.Contains(m.Body, `"lambdagent":"advance"`) {
			t.Fatalf("hand-off %d: %+v", handed, m)
		}
		batch := sqsBatchJSON(t, sqsRecordJSON(fmt.Sprintf("m%d", handed), m.Body, nil))
		ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
		failed := sqsFailures(t, ctx, f, batch)
		cancel()
		if len(failed) != 0 {
			t.Fatalf("hand-off %d failed: %v", handed, failed)
		}
		invocations++
		if invocations > 20 {
			t.Fatal("run never completed")
		}
	}
	snap, err := e.Get(t.Context(), "default", started.RunID)
	if err != nil || snap.Run.Status != engine.Completed {
		t.Fatalf("run after %d invocations: %+v, %v", invocations, snap, err)
	}
	if invocations < 2 {
		t.Errorf("%d invocations; want the run cut and handed on", invocations)
	}
	for id, n := range tools.calls {
		if n > 2 {
			t.Errorf("tool_use_id %s called %d times", id, n)
		}
	}
	if len(tools.calls) != 4 {
		t.Errorf("%d distinct tool_use_ids, want 4 (one per step, a cut call repeated under its id): %v", len(tools.calls), tools.calls)
	}
	// The same key finds the same run, done.
	again := invoke([]byte(`{"workflow":"four","input":{"n":1},"idempotency_key":"k1"}`))
	if !strings.Contains(string(again), started.RunID) || !strings.Contains(string(again), `"completed"`) {
		t.Errorf("start again with the key: %s", again)
	}
}

// TestWorkflowSleepAndTimers: a short sleep is handed on with the sleep
// as DelaySeconds; the timers event takes a due run and hands it on.
func TestWorkflowSleepAndTimers(t *testing.T) {
	peer := startSQSPeer(t)
	const queue = "https://sqs.us-east-1.amazonaws.com/123456789012/turns"
	f, _, _ := newRunsFunction(t, queue, peer)
	out, err := f.Invoke(t.Context(), []byte(`{"id":"ev-1","detail-type":"lambdagent.workflow","source":"app","detail":{"workflow":"nap"}}`))
	if err != nil || !strings.Contains(string(out), `"sleeping"`) {
		t.Fatalf("EventBridge start: %s, %v; want sleeping", out, err)
	}
	sent := peer.Sent()
	if len(sent) != 1 || sent[0].Delay < 29 || sent[0].Delay > 30 {
		t.Fatalf("hand-off of a 30s sleep: %+v; want one message delayed 30s", sent)
	}
	// The same event delivered again is the same run.
	out2, _ := f.Invoke(t.Context(), []byte(`{"id":"ev-1","detail-type":"lambdagent.workflow","source":"app","detail":{"workflow":"nap"}}`))
	var a, b struct {
		RunID string `json:"run_id"`
	}
	json.Unmarshal(out, &a)
	json.Unmarshal(out2, &b)
	if a.RunID == "" || a.RunID != b.RunID {
		t.Errorf("EventBridge redelivery started another run: %s then %s", out, out2)
	}
	// Timers: the created runs are on the ready queue; each is handed on.
	out, err = f.Invoke(t.Context(), []byte(`{"lambdagent":"timers"}`))
	if err != nil || !strings.Contains(string(out), `"runs":1`) {
		t.Fatalf("timers: %s, %v; want the run taken on", out, err)
	}
	if n := len(peer.Sent()); n < 2 || !strings.Contains(peer.Sent()[n-1].Body, `"advance"`) {
		t.Errorf("timers handed nothing on: %+v", peer.Sent())
	}
}

// TestWorkflowBadEvents: bad workflow events are refused with their kind
// and start nothing.
func TestWorkflowBadEvents(t *testing.T) {
	f, e, _ := newRunsFunction(t, "", nil)
	for payload, kind := range map[string]apierr.Kind{
		`{"workflow":"nope"}`:                   apierr.NotFound,
		`{"workflow":"four","input":{"n":"x"}}`: apierr.InvalidRequest,
		`{"workflow":""}`:                       kindInvalidEvent,
		`{"workflow":"four","tenant":"a b"}`:    kindInvalidEvent,
		`{"lambdagent":"bogus"}`:                kindInvalidEvent,
		`{"lambdagent":"advance"}`:              kindInvalidEvent,
	} {
		_, err := f.Invoke(t.Context(), []byte(payload))
		if typ := errorType(err); typ != "lambdagent."+string(kind) {
			t.Errorf("%s: errorType %q (%v), want lambdagent.%s", payload, typ, err, kind)
		}
	}
	if runs, err := e.List(t.Context(), "default", "", "", 10); err != nil || len(runs) != 0 {
		t.Errorf("bad events started %d runs (%v)", len(runs), err)
	}
	// Over SQS: a bad input can never start, so it goes to the
	// dead-letter queue; an unknown workflow is redelivered (the
	// deployment may lack the definition yet).
	peer := startSQSPeer(t)
	fq, _, _ := newRunsFunction(t, "", peer)
	failed := sqsFailures(t, t.Context(), fq, sqsBatchJSON(t,
		sqsRecordJSON("bad-input", `{"workflow":"four","input":{"n":"x"}}`, nil),
		sqsRecordJSON("unknown", `{"workflow":"nope"}`, nil)))
	if len(failed) != 1 || failed[0] != "unknown" {
		t.Errorf("SQS failures %v, want only the unknown workflow", failed)
	}
	if sent := peer.Sent(); len(sent) != 1 || !strings.HasSuffix(sent[0].QueueURL, "/dlq") || !strings.Contains(sent[0].Body, `"x"`) {
		t.Errorf("dead letters %+v, want the bad input", sent)
	}
	// Without workflows configured, a start fails (kept for redelivery)
	// and the timers tick is a no-op.
	plain := newFunction(t, http.NotFoundHandler(), Config{})
	if _, err := plain.Invoke(t.Context(), []byte(`{"workflow":"four"}`)); errorType(err) != "lambdagent.no_workflows" {
		t.Errorf("start without workflows: %v", err)
	}
	if out, err := plain.Invoke(t.Context(), []byte(`{"lambdagent":"timers"}`)); err != nil || string(out) != `{"runs":0}` {
		t.Errorf("timers without workflows: %s, %v", out, err)
	}
}

func errorType(err error) string {
	var ie messages.InvokeResponse_Error
	if asInvokeError(err, &ie) {
		return ie.Type
	}
	return ""
}

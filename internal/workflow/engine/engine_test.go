package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/mcptools"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/stacktest"
	"github.com/lambdagent/lambdagent/internal/workflow"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
	"github.com/lambdagent/lambdagent/internal/workflow/filerun"
	"github.com/lambdagent/lambdagent/internal/workflow/redisrun"
)

// fakeClock is the engine's time in tests: timers fire when the test
// moves it, and backoffs move it instead of waiting.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.Add(d)
	return ctx.Err()
}

// toolServer is a real MCP server (the go-sdk's) whose tools count their
// calls: what "ran once" means is counted here, at the tool, not by the
// engine.
type toolServer struct {
	calls sync.Map // tool name → *atomic.Int64
	// slowEntered receives once the first call of "slow" has begun; that
	// call then blocks until its context ends or release is closed. Later
	// calls return at once.
	slowEntered chan struct{}
	release     chan struct{}
}

func (s *toolServer) count(name string) int64 {
	v, _ := s.calls.LoadOrStore(name, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (s *toolServer) inc(name string) int64 {
	v, _ := s.calls.LoadOrStore(name, new(atomic.Int64))
	return v.(*atomic.Int64).Add(1)
}

func jsonText(v any) *mcp.CallToolResult {
	b, _ := json.Marshal(v)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(b)}}}
}

func (s *toolServer) server() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "wftest", Version: "1"}, nil)
	type nIn struct {
		N float64 `json:"n"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "double", Description: "doubles n"},
		func(_ context.Context, _ *mcp.CallToolRequest, in nIn) (*mcp.CallToolResult, any, error) {
			s.inc("double")
			return jsonText(map[string]any{"value": in.N * 2}), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "numbers", Description: "lists numbers"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			s.inc("numbers")
			return jsonText([]int{1, 2, 3, 4, 5}), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "charge", Description: "charges a card: must run once"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return jsonText(map[string]any{"charge": s.inc("charge")}), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "flaky", Description: "fails twice, then works"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			if n := s.inc("flaky"); n <= 2 {
				return nil, nil, fmt.Errorf("flaky failure %d", n)
			}
			return jsonText(map[string]any{"ok": true}), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "slow", Description: "blocks on its first call"},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			if s.inc("slow") == 1 {
				s.slowEntered <- struct{}{}
				select {
				case <-ctx.Done():
					return nil, nil, ctx.Err()
				case <-s.release:
				}
			}
			return jsonText(map[string]any{"slow": "done"}), nil, nil
		})
	return srv
}

// tools adapts a Toolset to agent.Tools, as the root package does.
type tools struct{ ts *mcptools.Toolset }

func (t tools) Definitions() json.RawMessage { return t.ts.Definitions() }
func (t tools) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	return t.ts.Call(ctx, mcptools.Call{ID: c.ID, Name: c.Name, Input: c.Input}).Block
}

// store is what the tests use of a store: the engine's contract.
type store = engine.Store

type fixture struct {
	e     *engine.Engine
	cfg   engine.Config
	store store
	rdb   redis.UniversalClient
	clock *fakeClock
	srv   *toolServer
	pre   string
}

const defs = `
name: big
steps:
  - id: start
    tool: numbers
  - id: fan
    parallel:
      - - {id: a, tool: double, input: {n: 1}}
      - - {id: b, tool: double, input: {n: 2}}
      - - {id: c, prompt: "say hi to {{.input.name}}"}
  - id: each
    map:
      over: '{{json .steps.start.output}}'
      max_concurrency: 2
      steps:
        - {id: d, tool: double, input: {n: "{{.item}}"}}
  - id: pick
    branch:
      - if: '{{eq (len .steps.each.output) 5}}'
        next: big
      - next: small
  - id: small
    tool: double
    input: {n: 0}
  - id: big
    tool: double
    input: {n: '{{(index .steps.each.output 4).value}}'}
---
name: approve
input: {type: object, required: [n], properties: {n: {type: number}}}
steps:
  - id: w
    wait_for_event: {event: approval, timeout: 1h}
  - id: use
    tool: double
    input: {n: '{{.steps.w.output.n}}'}
---
name: nap
steps:
  - id: z
    sleep: {for: 1h}
  - id: after
    tool: double
    input: {n: 21}
---
name: pay
steps:
  - {id: pay, tool: charge}
  - {id: work, tool: slow}
  - {id: done, tool: double, input: {n: '{{.steps.pay.output.charge}}'}}
---
name: retry
steps:
  - {id: f, tool: flaky, retry: {attempts: 3, backoff: 1s}}
---
name: loop
steps:
  - id: grow
    tool: double
    input: {n: '{{if .steps.grow}}{{.steps.grow.output.value}}{{else}}1{{end}}'}
  - id: check
    branch:
      - {if: '{{lt .steps.grow.output.value 16.0}}', next: grow}
  - id: result
    tool: double
    input: {n: '{{.steps.grow.output.value}}'}
---
name: parnap
steps:
  - id: both
    parallel:
      - - {id: p1, tool: double, input: {n: 3}}
      - - {id: p2, tool: double, input: {n: 4}}
  - {id: zz, sleep: {for: 1m}}
  - {id: sum, tool: double, input: {n: '{{.steps.p1.output.value}}'}}
---
name: fallback
steps:
  - id: w
    wait_for_event: {event: go, timeout: 10m, on_timeout: late}
  - id: fail_now
    tool: flaky
  - id: late
    tool: double
    input: {n: 50}
`

// storeKinds are the engine.Store implementations every test runs on:
// Redis on one node and on a cluster, and the embedded file.
var storeKinds = []string{"redis", "cluster", "file"}

// clusterURL is the Redis Cluster TestEngine started for the "cluster"
// kind; every fixture on it has a prefix of its own.
var clusterURL string

// TestEngine runs each test on each store.
func TestEngine(t *testing.T) {
	tests := map[string]func(*testing.T, string){
		"TenStepWorkflow":            testTenStepWorkflow,
		"LoopAndFallback":            testLoopAndFallback,
		"WaitForEvent":               testWaitForEvent,
		"SleepFiresOnFakeClock":      testSleepFiresOnFakeClock,
		"Retry":                      testRetry,
		"BadRequestsStartNothing":    testBadRequestsStartNothing,
		"IdempotentStartAndTenants":  testIdempotentStartAndTenants,
		"Cancel":                     testCancel,
		"OutputCap":                  testOutputCap,
		"WorkerDiesAnotherTakesOver": testWorkerDiesAnotherTakesOver,
		"AdvanceUntilHandsOn":        testAdvanceUntilHandsOn,
	}
	clusterURL = redistest.StartCluster(t).URL()
	for _, kind := range storeKinds {
		for name, test := range tests {
			t.Run(kind+"/"+name, func(t *testing.T) { test(t, kind) })
		}
	}
}

func newFixture(t *testing.T, kind string, leaseTTL time.Duration) *fixture {
	t.Helper()
	var store store
	var rdb redis.UniversalClient
	var pre string
	switch kind {
	case "redis", "cluster":
		if kind == "cluster" {
			rdb = redistest.Client(t, clusterURL)
		} else {
			rdb = redistest.Client(t, redistest.Start(t))
		}
		pre = redistest.Prefix(t)
		rs, err := redisrun.New(rdb, redisrun.Config{Prefix: pre})
		if err != nil {
			t.Fatal(err)
		}
		store = rs
	case "file":
		fs, err := filerun.Open(filepath.Join(t.TempDir(), "runs.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fs.Close() })
		store = fs
	}
	srv := &toolServer{slowEntered: make(chan struct{}, 1), release: make(chan struct{})}
	ts, err := mcptools.Open(t.Context(), mcptools.Config{Servers: map[string]mcptools.ServerConfig{
		"wftest": {Name: "wftest", Type: mcptools.TypeInProcess, Server: srv.server()}}}, mcptools.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	stack := stacktest.Start(t, stacktest.Options{NoServer: true})
	var ds []*workflow.Definition
	for i, doc := range strings.Split(defs, "\n---\n") {
		d, err := workflow.Parse(fmt.Sprintf("defs#%d", i), []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		known := map[string]bool{"double": true, "numbers": true, "charge": true, "slow": true, "flaky": true}
		if err := d.Validate(workflow.ValidateOptions{Tools: func(n string) bool { return known[n] }}); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := engine.Config{Store: store, Definitions: ds, Tools: tools{ts}, Turns: stack.Agent, Clock: clock, LeaseTTL: leaseTTL}
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{e: e, cfg: cfg, store: store, rdb: rdb, clock: clock, srv: srv, pre: pre}
}

// drain advances every run on the ready queue until it is empty.
func (f *fixture) drain(t *testing.T) {
	t.Helper()
	for {
		id, err := f.store.Next(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if id == "" {
			return
		}
		if err := f.e.Advance(t.Context(), id); err != nil {
			t.Fatalf("advance %s: %v", id, err)
		}
	}
}

func (f *fixture) start(t *testing.T, name, input string) engine.Run {
	t.Helper()
	r, created, err := f.e.Start(t.Context(), "", name, json.RawMessage(input), "")
	if err != nil || !created {
		t.Fatalf("start %s: %v (created %v)", name, err, created)
	}
	return r
}

func (f *fixture) get(t *testing.T, id string) engine.RunView {
	t.Helper()
	snap, err := f.e.Get(t.Context(), "", id)
	if err != nil {
		t.Fatal(err)
	}
	return snap.View()
}

func jsonEq(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %s is not JSON: %v", what, got, err)
	}
	json.Unmarshal([]byte(want), &w)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if string(gb) != string(wb) {
		t.Errorf("%s = %s, want %s", what, gb, wb)
	}
}

func testTenStepWorkflow(t *testing.T, kind string) {
	f := newFixture(t, kind, 0)
	r := f.start(t, "big", `{"name":"bob"}`)
	f.drain(t)
	v := f.get(t, r.ID)
	if v.Status != engine.Completed || v.Error != "" {
		t.Fatalf("run = %s %q", v.Status, v.Error)
	}
	jsonEq(t, "output", v.Output, `{"value":20}`)
	steps := map[string]engine.StepView{}
	for _, s := range v.Steps {
		k := s.ID
		if s.Key != "" {
			k = s.Key
		}
		steps[k] = s
		if s.Status != engine.Completed || s.Attempts > 1 || s.EndedAt == nil {
			t.Errorf("step %s: %+v", k, s)
		}
	}
	if _, ran := steps["small"]; ran || len(steps) != 13 {
		t.Errorf("steps run: %d (small ran: %v)", len(steps), ran)
	}
	jsonEq(t, "each", steps["each"].Output, `[{"value":2},{"value":4},{"value":6},{"value":8},{"value":10}]`)
	jsonEq(t, "each[2]/d", steps["each[2]/d"].Output, `{"value":6}`)
	jsonEq(t, "pick", steps["pick"].Output, `"big"`)
	var fan []any
	json.Unmarshal(steps["fan"].Output, &fan)
	if len(fan) != 3 || !strings.Contains(fmt.Sprint(fan[2]), "say hi to bob") {
		t.Errorf("fan = %s", steps["fan"].Output)
	}
	if steps["c"].Usage == nil || v.Usage.InputTokens == 0 || v.Usage.OutputTokens == 0 {
		t.Errorf("prompt step c's usage %v, the run's %+v", steps["c"].Usage, v.Usage)
	}
	if n := f.srv.count("double"); n != 8 {
		t.Errorf("double called %d times, want 8", n)
	}
	// Advancing a completed run again runs nothing.
	if err := f.e.Advance(t.Context(), r.StoreID); err != nil {
		t.Fatal(err)
	}
	if n := f.srv.count("double"); n != 8 {
		t.Errorf("double called %d times after a second advance", n)
	}
}

func testWaitForEvent(t *testing.T, kind string) {
	f := newFixture(t, kind, 0)
	ctx := t.Context()

	// The event comes after the run waits.
	r := f.start(t, "approve", `{"n":1}`)
	f.drain(t)
	if v := f.get(t, r.ID); v.Status != engine.Waiting {
		t.Fatalf("status = %s, want waiting", v.Status)
	}
	if err := f.e.Signal(ctx, "", r.ID, "approval", json.RawMessage(`{"n":5}`)); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	v := f.get(t, r.ID)
	if v.Status != engine.Completed {
		t.Fatalf("after the event: %s %q", v.Status, v.Error)
	}
	jsonEq(t, "output", v.Output, `{"value":10}`)

	// The event comes before the run reaches its wait: it is kept.
	r2 := f.start(t, "approve", `{"n":1}`)
	if err := f.e.Signal(ctx, "", r2.ID, "approval", json.RawMessage(`{"n":7}`)); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	v = f.get(t, r2.ID)
	if v.Status != engine.Completed {
		t.Fatalf("event first: %s %q", v.Status, v.Error)
	}
	jsonEq(t, "output", v.Output, `{"value":14}`)

	// No event: the timeout fails the run once the clock passes it.
	r3 := f.start(t, "approve", `{"n":1}`)
	f.drain(t)
	if n, _ := f.store.Fire(ctx, f.clock.Now().Add(30*time.Minute)); n != 0 {
		t.Errorf("fired %d timers before the timeout", n)
	}
	f.clock.Add(61 * time.Minute)
	if n, err := f.store.Fire(ctx, f.clock.Now()); n != 1 || err != nil {
		t.Errorf("fired %d timers (%v), want 1", n, err)
	}
	f.drain(t)
	v = f.get(t, r3.ID)
	if v.Status != engine.Failed || !strings.Contains(v.Error, `timed out waiting for event "approval"`) {
		t.Errorf("timeout: %s %q", v.Status, v.Error)
	}
	// An event for a run that ended is refused.
	if err := f.e.Signal(ctx, "", r3.ID, "approval", nil); !errors.Is(err, engine.ErrFinished) {
		t.Errorf("signal after the end: %v", err)
	}
}

func testSleepFiresOnFakeClock(t *testing.T, kind string) {
	f := newFixture(t, kind, 0)
	r := f.start(t, "nap", `{}`)
	f.drain(t)
	if v := f.get(t, r.ID); v.Status != engine.Sleeping {
		t.Fatalf("status = %s, want sleeping", v.Status)
	}
	f.clock.Add(59 * time.Minute)
	if n, _ := f.store.Fire(t.Context(), f.clock.Now()); n != 0 {
		t.Errorf("fired %d before the hour", n)
	}
	f.clock.Add(time.Minute)
	if n, _ := f.store.Fire(t.Context(), f.clock.Now()); n != 1 {
		t.Errorf("fired %d at the hour, want 1", n)
	}
	f.drain(t)
	v := f.get(t, r.ID)
	if v.Status != engine.Completed {
		t.Fatalf("after the sleep: %s %q", v.Status, v.Error)
	}
	jsonEq(t, "output", v.Output, `{"value":42}`)
}

func testRetry(t *testing.T, kind string) {
	f := newFixture(t, kind, 0)
	before := f.clock.Now()
	r := f.start(t, "retry", `{}`)
	f.drain(t)
	v := f.get(t, r.ID)
	if v.Status != engine.Completed || v.Steps[0].Attempts != 3 {
		t.Fatalf("run %s, step %+v", v.Status, v.Steps[0])
	}
	if waited := f.clock.Now().Sub(before); waited != 3*time.Second {
		t.Errorf("backoff waited %v, want 1s+2s", waited)
	}
}

func testBadRequestsStartNothing(t *testing.T, kind string) {
	f := newFixture(t, kind, 0)
	ctx := t.Context()
	if _, _, err := f.e.Start(ctx, "", "nope", nil, ""); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown workflow: %v", err)
	}
	_, _, err := f.e.Start(ctx, "", "approve", json.RawMessage(`{"n":"five"}`), "")
	if !errors.Is(err, workflow.ErrInvalidInput) {
		t.Errorf("bad input: %v", err)
	}
	if runs, _ := f.e.List(ctx, "", "", "", 0); len(runs) != 0 {
		t.Errorf("%d runs after bad starts", len(runs))
	}
	if _, err := f.e.Get(ctx, "", "run_nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("unknown run: %v", err)
	}
	if err := f.e.Signal(ctx, "", "run_nope", "x", nil); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("event for an unknown run: %v", err)
	}
	if err := f.e.Cancel(ctx, "", "run_nope"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("cancel an unknown run: %v", err)
	}
}

func testIdempotentStartAndTenants(t *testing.T, kind string) {
	f := newFixture(t, kind, 0)
	ctx := t.Context()
	r1, c1, err1 := f.e.Start(ctx, "acme", "nap", nil, "k1")
	r2, c2, err2 := f.e.Start(ctx, "acme", "nap", nil, "k1")
	if err1 != nil || err2 != nil || !c1 || c2 || r1.ID != r2.ID {
		t.Fatalf("starts: %v %v, created %v %v, ids %s %s", err1, err2, c1, c2, r1.ID, r2.ID)
	}
	// Another tenant neither sees the run nor shares the key.
	if _, err := f.e.Get(ctx, "globex", r1.ID); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("other tenant reads the run: %v", err)
	}
	r3, c3, _ := f.e.Start(ctx, "globex", "nap", nil, "k1")
	if !c3 || r3.ID == r1.ID {
		t.Errorf("other tenant's key gave run %s (created %v)", r3.ID, c3)
	}
	runs, _ := f.e.List(ctx, "acme", "nap", "", 0)
	if len(runs) != 1 || runs[0].ID != r1.ID {
		t.Errorf("acme's runs: %+v", runs)
	}
}

func testCancel(t *testing.T, kind string) {
	f := newFixture(t, kind, 0)
	r := f.start(t, "approve", `{"n":1}`)
	f.drain(t)
	if err := f.e.Cancel(t.Context(), "", r.ID); err != nil {
		t.Fatal(err)
	}
	if v := f.get(t, r.ID); v.Status != engine.Canceled {
		t.Errorf("status = %s", v.Status)
	}
	if err := f.e.Signal(t.Context(), "", r.ID, "approval", nil); !errors.Is(err, engine.ErrFinished) {
		t.Errorf("event after cancel: %v", err)
	}
}

// TestWorkerDiesAnotherTakesOver stops a worker in the middle of a step
// (its context canceled, its lease left to expire, as a crash leaves
// it); another worker takes the run when the lease expires and finishes
// it. The side-effecting tool before the cut ran once, counted at the
// tool server.
func testWorkerDiesAnotherTakesOver(t *testing.T, kind string) {
	f := newFixture(t, kind, 300*time.Millisecond)
	r := f.start(t, "pay", `{}`)
	id, _ := f.store.Next(t.Context(), time.Second)
	ctxA, killA := context.WithCancel(t.Context())
	doneA := make(chan error, 1)
	go func() { doneA <- f.e.Advance(ctxA, id) }()
	<-f.srv.slowEntered
	killA()
	<-doneA

	// The lease is held until it expires: the run is busy until then.
	deadline := time.Now().Add(5 * time.Second)
	for f.get(t, r.ID).Status != engine.Completed {
		if time.Now().After(deadline) {
			t.Fatalf("run not taken over: %+v", f.get(t, r.ID))
		}
		f.clock.Add(time.Second)
		if _, err := f.store.Fire(t.Context(), f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		f.drain(t)
		time.Sleep(50 * time.Millisecond)
	}
	v := f.get(t, r.ID)
	jsonEq(t, "output", v.Output, `{"value":2}`)
	if n := f.srv.count("charge"); n != 1 {
		t.Errorf("charge ran %d times, want 1", n)
	}
	if n := f.srv.count("slow"); n != 2 {
		t.Errorf("slow ran %d times, want 2 (the cut call and the retake)", n)
	}
}

// testAdvanceUntilHandsOn cuts a walk mid-step, as a Lambda invocation's
// deadline does: the lease is released at once (no waiting out its TTL,
// which is a minute here), the run's timer is due, and the next
// AdvanceUntil completes the run without re-running the committed step.
func testAdvanceUntilHandsOn(t *testing.T, kind string) {
	f := newFixture(t, kind, time.Minute)
	r := f.start(t, "pay", `{}`)
	ctxA, cut := context.WithCancel(t.Context())
	type res struct {
		o   engine.Outcome
		err error
	}
	doneA := make(chan res, 1)
	go func() { o, err := f.e.AdvanceUntil(ctxA, r.StoreID); doneA <- res{o, err} }()
	<-f.srv.slowEntered
	cut()
	a := <-doneA
	if a.err != nil || !a.o.Cut || a.o.Status != engine.Running {
		t.Fatalf("cut walk: %+v, %v; want Cut and running", a.o, a.err)
	}
	if n, err := f.store.Fire(t.Context(), f.clock.Now()); err != nil || n == 0 {
		t.Errorf("fire after a cut: %d runs, %v; want the run's timer due", n, err)
	}
	o, err := f.e.AdvanceUntil(t.Context(), r.StoreID)
	if err != nil || o.Busy || o.Status != engine.Completed {
		t.Fatalf("second walk: %+v, %v; want completed at once", o, err)
	}
	if n := f.srv.count("charge"); n != 1 {
		t.Errorf("charge ran %d times, want 1", n)
	}
}

// TestLeaseStolenFencesTheOldWorker takes a run's lease away from a
// worker in the middle of a step: the other worker finishes the run, and
// the first one's late result is refused (ErrLeaseLost), not written.
func TestLeaseStolenFencesTheOldWorker(t *testing.T) {
	f := newFixture(t, "redis", time.Minute)
	r := f.start(t, "pay", `{}`)
	id, _ := f.store.Next(t.Context(), time.Second)
	doneA := make(chan error, 1)
	go func() { doneA <- f.e.Advance(t.Context(), id) }()
	<-f.srv.slowEntered
	// The lease expires (as if A had stalled past its TTL).
	if err := f.rdb.Del(t.Context(), f.pre+"{wf}:"+id+":lease").Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.e.Advance(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if v := f.get(t, r.ID); v.Status != engine.Completed {
		t.Fatalf("B did not finish: %s %q", v.Status, v.Error)
	}
	close(f.srv.release)
	if err := <-doneA; !errors.Is(err, engine.ErrLeaseLost) {
		t.Errorf("A's late commit: %v, want ErrLeaseLost", err)
	}
	v := f.get(t, r.ID)
	if v.Status != engine.Completed || f.srv.count("charge") != 1 {
		t.Errorf("run %s, charge ran %d times", v.Status, f.srv.count("charge"))
	}
}

func testLoopAndFallback(t *testing.T, kind string) {
	f := newFixture(t, kind, 0)
	// A branch loops back until the output reaches 16.
	r := f.start(t, "loop", `{}`)
	f.drain(t)
	v := f.get(t, r.ID)
	if v.Status != engine.Completed {
		t.Fatalf("loop: %s %q", v.Status, v.Error)
	}
	jsonEq(t, "loop output", v.Output, `{"value":32}`)
	var keys []string
	for _, s := range v.Steps {
		k := s.ID
		if s.Key != "" {
			k = s.Key
		}
		keys = append(keys, k)
	}
	if got := strings.Join(keys, " "); got != "grow check grow#1 check#1 grow#2 check#2 grow#3 check#3 result" {
		t.Errorf("loop steps: %s", got)
	}

	// After a sleep, the replay still sees the outputs of the steps
	// inside a parallel step, and runs none of them again.
	r = f.start(t, "parnap", `{}`)
	f.drain(t)
	f.clock.Add(time.Minute)
	f.store.Fire(t.Context(), f.clock.Now())
	before := f.srv.count("double")
	f.drain(t)
	v = f.get(t, r.ID)
	if v.Status != engine.Completed || f.srv.count("double") != before+1 {
		t.Fatalf("parnap: %s %q; double called %d times after the sleep, want 1", v.Status, v.Error, f.srv.count("double")-before)
	}
	jsonEq(t, "parnap output", v.Output, `{"value":12}`)

	// A timed-out wait jumps to its on_timeout step, skipping the one
	// between.
	r = f.start(t, "fallback", `{}`)
	f.drain(t)
	f.clock.Add(11 * time.Minute)
	f.store.Fire(t.Context(), f.clock.Now())
	f.drain(t)
	v = f.get(t, r.ID)
	if v.Status != engine.Completed || f.srv.count("flaky") != 0 {
		t.Fatalf("fallback: %s %q, flaky called %d times", v.Status, v.Error, f.srv.count("flaky"))
	}
	jsonEq(t, "fallback output", v.Output, `{"value":100}`)

	// A failing step without retries fails the run, naming the step.
	r = f.start(t, "fallback", `{}`)
	f.drain(t)
	if err := f.e.Signal(t.Context(), "", r.ID, "go", nil); err != nil {
		t.Fatal(err)
	}
	f.drain(t)
	v = f.get(t, r.ID)
	if v.Status != engine.Failed || !strings.Contains(v.Error, "step fail_now: ") || !strings.Contains(v.Error, "flaky failure 1") {
		t.Errorf("failing step: %s %q", v.Status, v.Error)
	}
	for _, st := range v.Steps {
		if st.ID == "fail_now" && (st.Status != engine.Failed || st.Attempts != 1) {
			t.Errorf("failed step %+v: want failed after 1 attempt", st)
		}
	}
}

func testOutputCap(t *testing.T, kind string) {
	f := newFixture(t, kind, 0)
	cfg := f.cfg
	cfg.MaxOutputBytes = 5
	e, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.e = e
	r := f.start(t, "retry", `{}`)
	f.drain(t)
	v := f.get(t, r.ID)
	if v.Status != engine.Failed || !strings.Contains(v.Error, "output is 11 bytes, more than the 5 a step may keep") {
		t.Errorf("run %s %q", v.Status, v.Error)
	}
}

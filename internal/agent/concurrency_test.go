package agent_test

// The tests of #4 against real parts: redis-server (redistest) and the
// Redis store (the two busiest tests run on the file store too), claudesim
// over HTTP and the real Claude client. Nothing here is mocked; the hooks below sit in front of the real store or the real
// simulator and only watch, hold or drop calls.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
)

// waitLimit bounds every wait for something the test expects to happen,
// so a broken build fails instead of hanging; a slow machine only waits
// longer.
const waitLimit = 20 * time.Second

// storeFixture is a simulator over HTTP and a store: newRedisFixture gives
// it a Redis store of the test's own (its keys under redistest.Prefix).
type storeFixture struct {
	sim   *claudesim.Server
	gate  *gate
	model *claude.Client
	rdb   redis.UniversalClient // nil with the file store
	store session.Store
}

func newRedisFixture(t *testing.T, simCfg claudesim.Config) *storeFixture {
	t.Helper()
	f := newSimFixture(t, simCfg)
	f.rdb = redistest.Client(t, redistest.Start(t))
	var err error
	// No liveness loop: its once-a-second SET is the process's, not a
	// turn's, and would land in the round trips some tests count. All
	// leases here are one process's, which fast takeover leaves alone.
	f.store, err = redisstore.New(f.rdb, redisstore.Config{Prefix: redistest.Prefix(t), TTL: 10 * time.Minute, Liveness: -1})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newFileFixture is newRedisFixture with the embedded file store, which
// promises the same semantics to the goroutines of one process.
func newFileFixture(t *testing.T, simCfg claudesim.Config) *storeFixture {
	t.Helper()
	f := newSimFixture(t, simCfg)
	st, err := filestore.Open(filepath.Join(t.TempDir(), "s.db"), filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.store = st
	return f
}

// stores are the fixtures the tests of both stores run on.
var stores = []struct {
	name string
	new  func(*testing.T, claudesim.Config) *storeFixture
}{
	{"Redis", newRedisFixture},
	{"File", newFileFixture},
}

func newSimFixture(t *testing.T, simCfg claudesim.Config) *storeFixture {
	t.Helper()
	f := &storeFixture{sim: claudesim.New(simCfg), gate: newGate()}
	srv := httptest.NewServer(f.gate.wrap(f.sim))
	t.Cleanup(srv.Close)
	t.Cleanup(f.gate.openAll) // Close waits for held requests
	var err error
	f.model, err = claude.New(claude.Config{APIKey: "test", BaseURL: srv.URL, Retry: retry.Policy{Attempts: 2, Base: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// agent returns an agent on store (f.store when nil) and f's model.
func (f *storeFixture) agent(t *testing.T, store session.Store, cfg agent.Config) *agent.Agent {
	t.Helper()
	if store == nil {
		store = f.store
	}
	a, err := agent.New(store, f.model, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// modelCalls counts the requests the simulator received, answered or
// not: every model call made.
func (f *storeFixture) modelCalls() int { return f.sim.Stats().Requests }

// A gate holds model calls whose request body contains a marker until the
// test opens it, so a test can act while a model call is in flight
// without guessing how long anything takes.
type gate struct {
	arrived chan string // the marker of each held request, as it arrives
	mu      sync.Mutex
	held    map[string]chan struct{} // marker → closed when opened; guarded by mu
}

func newGate() *gate {
	return &gate{arrived: make(chan string, 100), held: map[string]chan struct{}{}}
}

// hold makes requests containing marker wait until open(marker).
func (g *gate) hold(marker string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.held[marker] = make(chan struct{})
}

func (g *gate) open(marker string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.held[marker]; ok {
		close(c)
		delete(g.held, marker)
	}
}

func (g *gate) openAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for m, c := range g.held {
		close(c)
		delete(g.held, m)
	}
}

func (g *gate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		g.mu.Lock()
		var wait chan struct{}
		var marker string
		for m, c := range g.held {
			if bytes.Contains(body, []byte(m)) {
				wait, marker = c, m
			}
		}
		g.mu.Unlock()
		if wait != nil {
			g.arrived <- marker
			select {
			case <-wait:
			case <-r.Context().Done():
			}
		}
		h.ServeHTTP(w, r)
	})
}

// awaitArrival waits until a request holding marker reaches the gate.
func (g *gate) awaitArrival(t *testing.T, marker string) {
	t.Helper()
	select {
	case m := <-g.arrived:
		if m != marker {
			t.Fatalf("model call %q reached the gate; want %q", m, marker)
		}
	case <-time.After(waitLimit):
		t.Fatalf("model call %q never reached the simulator", marker)
	}
}

// hookStore is the real store with test hooks on some calls: a process
// paused before its commit, renewals that never arrive, or a look at what
// Begin answered. A nil hook does nothing.
type hookStore struct {
	session.Store
	afterBegin   func(session.BeginRequest, error)
	beforeCommit func(session.Commit)
	dropRenew    bool
}

func (h *hookStore) Begin(ctx context.Context, req session.BeginRequest) (*session.State, error) {
	st, err := h.Store.Begin(ctx, req)
	if h.afterBegin != nil {
		h.afterBegin(req, err)
	}
	return st, err
}

func (h *hookStore) Commit(ctx context.Context, c session.Commit) (int64, error) {
	if h.beforeCommit != nil {
		h.beforeCommit(c)
	}
	return h.Store.Commit(ctx, c)
}

func (h *hookStore) Renew(ctx context.Context, id, token string, ttl time.Duration) error {
	if h.dropRenew {
		return nil // the process is paused: the renewal never reaches the store
	}
	return h.Store.Renew(ctx, id, token, ttl)
}

// wireMessage is a stored message as far as these tests read it.
type wireMessage struct {
	Role    string `json:"role"`
	Content []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	} `json:"content"`
}

// text joins the message's text blocks.
func (m wireMessage) text() string {
	var parts []string
	for _, b := range m.Content {
		if b.Type == "text" {
			parts = append(parts, b.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// echo is the simulator's answer to user text as the n-th message.
func echo(user string, n int) string { return fmt.Sprintf("echo: %s (messages: %d)", user, n) }

// turnsOf checks a history turn by turn: user and assistant alternate,
// starting with the user and ending with the assistant, and each answer
// is the simulator's echo of the user message just before it, made when
// the history held exactly the messages before it. It returns the user
// texts in order, and reports every fault.
func turnsOf(t *testing.T, msgs []json.RawMessage) []string {
	t.Helper()
	if len(msgs)%2 != 0 {
		t.Errorf("history has %d messages; want whole turns", len(msgs))
	}
	var users []string
	for i := 0; i+1 < len(msgs); i += 2 {
		var u, a wireMessage
		if err := json.Unmarshal(msgs[i], &u); err != nil || u.Role != "user" {
			t.Errorf("message %d = %s; want a user message", i, msgs[i])
			continue
		}
		if err := json.Unmarshal(msgs[i+1], &a); err != nil || a.Role != "assistant" {
			t.Errorf("message %d = %s; want an assistant message", i+1, msgs[i+1])
			continue
		}
		if got, want := a.text(), echo(u.text(), i+1); got != want {
			t.Errorf("message %d = %q; want %q, the answer to message %d", i+1, got, want, i)
		}
		users = append(users, u.text())
	}
	return users
}

// TestConcurrentTurns sends 100 turns with distinct markers to one
// session at once. Under queue all are answered and the history holds
// each exactly once, each answer right after its own message and made on
// the whole history before it; under reject each turn is either committed
// exactly once or refused with a *session.BusyError and absent. Both
// stores.
func TestConcurrentTurns(t *testing.T) {
	const n = 100
	for _, store := range stores {
		for _, policy := range []agent.BusyPolicy{agent.Queue, agent.Reject} {
			t.Run(store.name+"/"+string(policy), func(t *testing.T) {
				testConcurrentTurns(t, store.new(t, claudesim.Config{Latency: 5 * time.Millisecond}), policy, n)
			})
		}
	}
}

func testConcurrentTurns(t *testing.T, f *storeFixture, policy agent.BusyPolicy, n int) {
	a := f.agent(t, nil, agent.Config{Busy: policy, QueueWait: time.Minute})
	answers := make([]*agent.Answer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			answers[i], errs[i] = a.Run(t.Context(), agent.Request{SessionID: "hot", Message: fmt.Sprintf("marker-%03d", i)})
		})
	}
	wg.Wait()

	st, err := f.store.Load(t.Context(), "hot")
	if err != nil {
		t.Fatal(err)
	}
	users := turnsOf(t, st.Messages)
	count := map[string]int{}
	for _, u := range users {
		count[u]++
	}
	committed, busy := 0, 0
	for i := range n {
		marker := fmt.Sprintf("marker-%03d", i)
		var be *session.BusyError
		switch {
		case errs[i] == nil:
			committed++
			if count[marker] != 1 {
				t.Errorf("%s answered, found %d times in the history; want once", marker, count[marker])
				continue
			}
			r := answers[i].Result
			if r.Turn < 1 || int(r.Turn) > len(users) || users[r.Turn-1] != marker {
				t.Errorf("%s answered as turn %d, which holds another message", marker, r.Turn)
			}
			if want := echo(marker, 2*int(r.Turn)-1); r.Response != want {
				t.Errorf("%s answered %q; want %q", marker, r.Response, want)
			}
		case policy == agent.Reject && errors.As(errs[i], &be):
			busy++
			if count[marker] != 0 {
				t.Errorf("%s refused (%v), found %d times in the history; want none", marker, errs[i], count[marker])
			}
		default:
			t.Errorf("%s: %v", marker, errs[i])
		}
	}
	if committed+busy != n || committed == 0 {
		t.Errorf("%d committed + %d refused of %d turns", committed, busy, n)
	}
	if len(users) != committed || st.Turns != int64(committed) {
		t.Errorf("history holds %d turns (counter %d); want the %d committed", len(users), st.Turns, committed)
	}
	if calls := f.modelCalls(); calls != committed {
		t.Errorf("%d model calls for %d committed turns", calls, committed)
	}
	t.Logf("%s: %d committed, %d refused busy", policy, committed, busy)
}

// TestIdempotentRepeats sends one request with one Idempotency-Key 20
// times at once, then 20 times in a row: one model call, and every answer
// the same bytes. Under reject a repeat that arrives while the first runs
// is refused as in progress (SameKey) instead. Both stores.
func TestIdempotentRepeats(t *testing.T) {
	const n = 20
	for _, store := range stores {
		for _, policy := range []agent.BusyPolicy{agent.Queue, agent.Reject} {
			t.Run(store.name+"/"+string(policy), func(t *testing.T) {
				testIdempotentRepeats(t, store.new(t, claudesim.Config{Latency: 20 * time.Millisecond}), policy, n)
			})
		}
	}
}

func testIdempotentRepeats(t *testing.T, f *storeFixture, policy agent.BusyPolicy, n int) {
	a := f.agent(t, nil, agent.Config{Busy: policy})
	req := agent.Request{SessionID: "idem", Message: "pay invoice 42", IdempotencyKey: "key-42"}

	answers := make([]*agent.Answer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answers[i], errs[i] = a.Run(t.Context(), req) })
	}
	wg.Wait()
	var first []byte // the answer of the run that called the model
	for i := range n {
		if errs[i] == nil && !answers[i].Replayed {
			if first != nil {
				t.Fatalf("two concurrent repeats ran the turn")
			}
			first = answers[i].JSON
		}
	}
	if first == nil {
		t.Fatalf("no concurrent request ran the turn; errors: %v", errs)
	}
	for i := range n {
		var be *session.BusyError
		switch {
		case errs[i] == nil:
			if !bytes.Equal(answers[i].JSON, first) {
				t.Errorf("concurrent repeat %d answered %s; want %s", i, answers[i].JSON, first)
			}
		case policy == agent.Reject && errors.As(errs[i], &be) && be.SameKey:
		default:
			t.Errorf("concurrent repeat %d: %v", i, errs[i])
		}
	}
	for i := range n {
		ans, err := a.Run(t.Context(), req)
		if err != nil {
			t.Fatalf("sequential repeat %d: %v", i, err)
		}
		if !ans.Replayed || !bytes.Equal(ans.JSON, first) {
			t.Errorf("sequential repeat %d: replayed %v, %s; want the stored %s", i, ans.Replayed, ans.JSON, first)
		}
	}
	if calls := f.modelCalls(); calls != 1 {
		t.Errorf("%d model calls for %d requests with one key; want 1", calls, 2*n)
	}
	st, err := f.store.Load(t.Context(), "idem")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{req.Message}, turnsOf(t, st.Messages)); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

// TestClientGivesUp is API Gateway's 29 s limit on a slow turn: the
// client's timeout fires while the model call runs, and the client sends
// the request again with the same key while the first attempt still
// runs. The first attempt must finish and commit although its client is
// gone, and the retry must get its answer: one model call, the turn in
// the history exactly once.
func TestClientGivesUp(t *testing.T) {
	f := newRedisFixture(t, claudesim.Config{})
	retryWaiting := make(chan struct{})
	var once sync.Once
	store := &hookStore{Store: f.store, afterBegin: func(_ session.BeginRequest, err error) {
		if be, ok := errors.AsType[*session.BusyError](err); ok && be.SameKey {
			once.Do(func() { close(retryWaiting) })
		}
	}}
	a := f.agent(t, store, agent.Config{})
	h, err := httpapi.New(a, f.store, httpapi.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	post := func(ctx context.Context) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/sessions/slow/turns", strings.NewReader(`{"message":"slow question"}`))
		if err != nil {
			return nil, nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "retry-me")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp, body, err
	}

	f.gate.hold("slow question")
	// The client's timeout fires once the model call is in flight (the
	// gate makes the model slower than any timeout).
	ctx, timeout := context.WithCancelCause(t.Context())
	first := make(chan error, 1)
	go func() { _, _, err := post(ctx); first <- err }()
	f.gate.awaitArrival(t, "slow question")
	timeout(context.DeadlineExceeded)
	if err := <-first; !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("first attempt: err = %v; want it cut off by the client", err)
	}

	type result struct {
		resp *http.Response
		body []byte
		err  error
	}
	second := make(chan result, 1)
	go func() {
		resp, body, err := post(t.Context())
		second <- result{resp, body, err}
	}()
	select {
	case <-retryWaiting: // the retry found the first attempt running
	case <-time.After(waitLimit):
		t.Fatal("the retry never found the first attempt in progress")
	}
	f.gate.open("slow question")
	r := <-second
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.resp.StatusCode != 200 || r.resp.Header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry: %d %s (Idempotent-Replayed %q); want 200 with the first attempt's stored answer",
			r.resp.StatusCode, r.body, r.resp.Header.Get("Idempotent-Replayed"))
	}
	if calls := f.modelCalls(); calls != 1 {
		t.Errorf("%d model calls; want 1 (the retry must not run the turn again)", calls)
	}
	st, err := f.store.Load(t.Context(), "slow")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"slow question"}, turnsOf(t, st.Messages)); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}
}

// TestTurnTimeout checks the bound on a turn whose client is gone: a model
// call that never returns ends at Config.TurnTimeout, writes nothing and
// frees the session.
func TestTurnTimeout(t *testing.T) {
	f := newRedisFixture(t, claudesim.Config{})
	a := f.agent(t, nil, agent.Config{TurnTimeout: 300 * time.Millisecond})
	f.gate.hold("never answered")
	ctx, hangUp := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := a.Run(ctx, agent.Request{SessionID: "stuck", Message: "never answered", IdempotencyKey: "k"})
		done <- err
	}()
	f.gate.awaitArrival(t, "never answered")
	hangUp()
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v; want the turn timeout", err)
	}
	st, err := f.store.Begin(t.Context(), session.BeginRequest{ID: "stuck", LeaseToken: "next", LeaseTTL: time.Minute, IdempotencyKey: "k", RequestHash: "other"})
	if err != nil {
		t.Fatalf("Begin after the timed-out turn: %v; want the session free and no answer stored", err)
	}
	if st.Version != 0 || st.Replay != nil {
		t.Errorf("after the timed-out turn: version %d, replay %q; want nothing written", st.Version, st.Replay)
	}
}

// TestPausedLeaseHolder pauses a turn past its lease (a GC pause, a frozen
// Lambda) while another turn takes the session and commits. When the
// first wakes up its commit must fail with ErrLeaseLost and write nothing,
// not even its idempotency record.
func TestPausedLeaseHolder(t *testing.T) {
	const lease = 300 * time.Millisecond
	tests := []struct {
		name string
		// pause returns the store of the turn to pause and a function that
		// waits until that turn is paused.
		pause func(t *testing.T, f *storeFixture, resume <-chan struct{}) (session.Store, func())
	}{
		{"BeforeCommit", func(t *testing.T, f *storeFixture, resume <-chan struct{}) (session.Store, func()) {
			paused := make(chan struct{})
			s := &hookStore{Store: f.store, beforeCommit: func(session.Commit) {
				close(paused)
				<-resume
			}}
			return s, func() { <-paused }
		}},
		{"InModelCall", func(t *testing.T, f *storeFixture, resume <-chan struct{}) (session.Store, func()) {
			f.gate.hold("from A")
			go func() { <-resume; f.gate.open("from A") }()
			return &hookStore{Store: f.store, dropRenew: true}, func() { f.gate.awaitArrival(t, "from A") }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newRedisFixture(t, claudesim.Config{})
			resume := make(chan struct{})
			storeA, paused := tc.pause(t, f, resume)
			cfg := agent.Config{LeaseTTL: lease, QueueWait: waitLimit, CommitTimeout: 2 * waitLimit}
			a := f.agent(t, storeA, cfg)
			b := f.agent(t, nil, cfg)
			reqA := agent.Request{SessionID: "paused", Message: "from A", IdempotencyKey: "a"}
			doneA := make(chan error, 1)
			go func() { _, err := a.Run(t.Context(), reqA); doneA <- err }()
			paused()

			// B waits (queue) for A's lease to run out, then runs.
			if _, err := b.Run(t.Context(), agent.Request{SessionID: "paused", Message: "from B"}); err != nil {
				t.Fatalf("B: %v", err)
			}
			close(resume)
			if err := <-doneA; !errors.Is(err, session.ErrLeaseLost) {
				t.Fatalf("A after its pause: err = %v; want ErrLeaseLost", err)
			}
			st, err := f.store.Load(t.Context(), "paused")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"from B"}, turnsOf(t, st.Messages)); diff != "" {
				t.Errorf("history after A's late commit (-want +got):\n%s", diff)
			}
			// A's answer was not stored: A's retry runs the turn, on top of B's.
			ans, err := b.Run(t.Context(), reqA)
			if err != nil || ans.Replayed || ans.Result.Turn != 2 {
				t.Errorf("A's retry: %+v, %v; want a fresh run as turn 2", ans, err)
			}
		})
	}
}

// TestLeaseLostMidTurn takes the lease away while the model runs (the
// session deleted; Redis restarted empty does the same): the turn's next
// renewal finds out, the turn stops at once and reports ErrLeaseLost (a
// 409 a retry fixes), not a cancellation its client never asked for, and
// writes nothing.
func TestLeaseLostMidTurn(t *testing.T) {
	f := newRedisFixture(t, claudesim.Config{})
	a := f.agent(t, nil, agent.Config{LeaseTTL: 300 * time.Millisecond})
	f.gate.hold("doomed")
	done := make(chan error, 1)
	go func() {
		_, err := a.Run(t.Context(), agent.Request{SessionID: "gone", Message: "doomed"})
		done <- err
	}()
	f.gate.awaitArrival(t, "doomed")
	if err := f.store.Delete(t.Context(), "gone"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, session.ErrLeaseLost) {
			t.Errorf("Run = %v; want ErrLeaseLost", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the turn went on without its lease")
	}
	st, err := f.store.Load(t.Context(), "gone")
	if err != nil || st.Version != 0 {
		t.Errorf("after the turn: %+v, %v; want nothing written", st, err)
	}
}

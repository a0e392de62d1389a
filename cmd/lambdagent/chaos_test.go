package main

// Chaos tests of #4: real `lambdagent serve` processes under a load of
// many conversations while something dies. TestChaosKillServers kills
// servers with SIGKILL at random moments; TestChaosKillRedis kills Redis.
// Either way no acknowledged turn may be lost, none may be stored twice,
// and none may be out of order. Each prints one summary line:
//
//	go test ./cmd/lambdagent -run Chaos -v

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// chaosLimit bounds a chaos test's load; it normally ends in a few
// seconds.
const chaosLimit = 45 * time.Second

// TestChaosKillServersDefaultLease is the run of #17 at the default
// lease TTL (15 s): 40 conversations of 30 turns against 2 `serve`
// processes, one SIGKILLed about once a second (then started again),
// clients retrying with the same Idempotency-Key. A killed holder's
// sessions are free again within the store's liveness (3 s), not the
// lease TTL, so all 1200 turns must be answered within 50 s, with none
// lost, duplicated or out of order.
func TestChaosKillServersDefaultLease(t *testing.T) {
	if testing.Short() {
		t.Skip("a 50 s chaos run")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	sim := httptest.NewServer(claudesim.New(claudesim.Config{Latency: 50 * time.Millisecond, LatencyJitter: 150 * time.Millisecond, Seed: seed}))
	t.Cleanup(sim.Close)
	env := []string{
		"REDIS_URL=redis://" + redistest.Start(t),
		"LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t),
		"ANTHROPIC_API_KEY=test-key",
		"ANTHROPIC_BASE_URL=" + sim.URL,
		"LAMBDAGENT_QUEUE_WAIT=5s",
	}
	const nServers = 2
	var mu sync.Mutex
	servers := make([]*proc, nServers) // guarded by mu
	for i := range servers {
		servers[i] = start(t, "serve", env...)
	}
	live := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var addrs []string
		for _, p := range servers {
			if p != nil {
				addrs = append(addrs, p.addr)
			}
		}
		return addrs
	}
	l := newLoad("dflt", 40, 30, live)
	l.limit = 50 * time.Second
	l.setPhase("kills")
	began := time.Now()
	done := l.run(t, rng.Uint64())
	kills := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(time.Duration(800+rng.IntN(400)) * time.Millisecond):
			i := rng.IntN(nServers)
			mu.Lock()
			p := servers[i]
			servers[i] = nil
			mu.Unlock()
			p.kill()
			kills++
			p = start(t, "serve", env...)
			mu.Lock()
			servers[i] = p
			mu.Unlock()
		}
	}
	elapsed := time.Since(began)
	tl := l.check(t, live()[0])
	t.Logf("chaos (SIGKILL servers, default lease): %s; %d of %d turns answered, %d requests (%d answered from the idempotency record), %d SIGKILLs of %d servers, %v",
		tl, l.acked.Load(), 40*30, l.requests.Load(), l.replayed.Load(), kills, nServers, elapsed.Round(100*time.Millisecond))
	t.Logf("outcomes: %s", l.outcomes())
	if n := l.acked.Load(); n != 40*30 {
		t.Errorf("%d of %d turns answered in %v", n, 40*30, l.limit)
	}
	tl.assert(t)
}

// TestChaosKillServers runs 20 conversations of 10 turns against 3
// `serve` processes sharing one Redis, and SIGKILLs a random one every
// few hundred milliseconds (then starts a new one), until every turn has
// been answered. A killed server may die holding a session's lease, in
// the middle of a model call or between its commit and its reply; the
// clients retry with the same Idempotency-Key on another server.
func TestChaosKillServers(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	sim := httptest.NewServer(claudesim.New(claudesim.Config{Latency: 50 * time.Millisecond, LatencyJitter: 150 * time.Millisecond, Seed: seed}))
	t.Cleanup(sim.Close)
	redisURL := redistest.URL(redistest.Start(t)) // a cluster or TLS under $REDISTEST_CLUSTER, $REDISTEST_TLS
	env := []string{
		"REDIS_URL=" + redisURL,
		"LAMBDAGENT_REDIS_CA=" + redistest.CAFor(redisURL),
		"LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t),
		"ANTHROPIC_API_KEY=test-key",
		"ANTHROPIC_BASE_URL=" + sim.URL,
		"LAMBDAGENT_LEASE_TTL=1s", // a killed holder blocks its session for at most a second
		"LAMBDAGENT_QUEUE_WAIT=5s",
	}
	const nServers = 3
	var mu sync.Mutex
	servers := make([]*proc, nServers) // guarded by mu
	for i := range servers {
		servers[i] = start(t, "serve", env...)
	}
	live := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var addrs []string
		for _, p := range servers {
			if p != nil {
				addrs = append(addrs, p.addr)
			}
		}
		return addrs
	}

	l := newLoad("conv", 20, 10, live)
	l.setPhase("kills")
	began := time.Now()
	done := l.run(t, rng.Uint64())
	kills := 0
	var dead []*proc
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(time.Duration(20+rng.IntN(250)) * time.Millisecond):
			i := rng.IntN(nServers)
			mu.Lock()
			p := servers[i]
			servers[i] = nil
			mu.Unlock()
			p.kill()
			dead = append(dead, p)
			kills++
			p = start(t, "serve", env...)
			mu.Lock()
			servers[i] = p
			mu.Unlock()
		}
	}
	elapsed := time.Since(began)
	for _, p := range append(dead, servers...) {
		if out := p.out.String(); strings.Contains(out, "panic") || strings.Contains(out, "level=ERROR") {
			t.Errorf("a server logged an error:\n%s", out)
		}
	}
	tl := l.check(t, live()[0])
	t.Logf("chaos (SIGKILL servers): %s; %d requests (%d answered from the idempotency record), %d SIGKILLs of %d servers, %v",
		tl, l.requests.Load(), l.replayed.Load(), kills, nServers, elapsed.Round(100*time.Millisecond))
	t.Logf("outcomes: %s", l.outcomes())
	tl.assert(t)
}

// TestChaosKillRedis runs 10 conversations of 12 turns against 2 `serve`
// processes and kills their Redis with SIGKILL in the middle, waits until
// the clients have been answered 503 a number of times, then starts Redis
// again. During the outage every answer must be 503 store_unavailable (or
// a 409 or 504 a retry fixes), never a 500; afterwards the same two
// processes, never restarted, must serve every remaining turn.
//
// Redis here stands for a durable one (appendfsync always, or a managed
// service): writes are paused, the data saved, then the server killed, so
// the restarted server holds every write it acknowledged and a lost turn
// would be lambdagent's fault. Redis without persistence comes back empty,
// and its sessions with it.
func TestChaosKillRedis(t *testing.T) {
	srv := redistest.StartServer(t)
	admin := redistest.Client(t, srv.Addr)
	sim := httptest.NewServer(claudesim.New(claudesim.Config{Latency: 10 * time.Millisecond, LatencyJitter: 20 * time.Millisecond}))
	t.Cleanup(sim.Close)
	env := []string{
		"REDIS_URL=redis://" + srv.Addr,
		"ANTHROPIC_API_KEY=test-key",
		"ANTHROPIC_BASE_URL=" + sim.URL,
		"LAMBDAGENT_LEASE_TTL=1s",
		"LAMBDAGENT_QUEUE_WAIT=5s",
	}
	servers := []*proc{start(t, "serve", env...), start(t, "serve", env...)}
	addrs := []string{servers[0].addr, servers[1].addr}
	l := newLoad("talk", 10, 12, func() []string { return addrs })
	began := time.Now()
	done := l.run(t, uint64(began.UnixNano()))

	waitUntil(t, "40 turns answered before the outage", done, func() bool { return l.acked.Load() >= 40 })
	ctx := t.Context()
	if err := admin.Do(ctx, "CLIENT", "PAUSE", "10000", "WRITE").Err(); err != nil {
		t.Fatal(err)
	}
	if err := admin.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	l.setPhase("outage")
	srv.Kill()
	waitUntil(t, "50 requests answered 503 during the outage", done, func() bool { return l.count("outage", "503 store_unavailable") >= 50 })
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	l.setPhase("after")
	select {
	case <-done:
	case <-time.After(chaosLimit):
		t.Fatal("the load did not finish")
	}
	elapsed := time.Since(began)

	for _, p := range servers {
		if p.cmd.ProcessState != nil {
			t.Errorf("server %s exited: %v\n%s", p.addr, p.cmd.ProcessState, p.out)
		}
	}
	for outcome := range l.phaseOutcomes("outage") {
		switch outcome {
		case "200", "503 store_unavailable", "409 session_busy", "409 conflict", "504 timeout":
		default:
			t.Errorf("during the outage a request got %s; want 503 store_unavailable (or 409, 504)", outcome)
		}
	}
	if l.count("after", "200") == 0 {
		t.Error("no turn was answered after Redis came back")
	}
	tl := l.check(t, addrs[0])
	t.Logf("chaos (SIGKILL Redis): %s; %d requests, %d answered 503 during the outage (slowest in %v), first answer %v after Redis was back, %v",
		tl, l.requests.Load(), l.count("outage", "503 store_unavailable"), l.slowest503().Round(time.Millisecond),
		l.firstAnswer("after").Round(time.Millisecond), elapsed.Round(100*time.Millisecond))
	t.Logf("outcomes: %s", l.outcomes())
	tl.assert(t)
}

// kill ends the process with SIGKILL, as a crash or an OOM kill would,
// and waits for it.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

// waitUntil polls cond until it holds; it fails the test if the load ends
// or chaosLimit passes first.
func waitUntil(t *testing.T, what string, done <-chan struct{}, cond func() bool) {
	t.Helper()
	deadline := time.After(chaosLimit)
	for !cond() {
		select {
		case <-done:
			t.Fatalf("the load ended before %s", what)
		case <-deadline:
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// A load is the clients of a chaos test: one goroutine per session, each
// sending its turns in order, the next only once the previous one was
// answered, and retrying a turn with the same Idempotency-Key until it is.
// Session s's turn k says "<s> turn <k>".
type load struct {
	ids     []string
	turns   int
	limit   time.Duration   // how long run lasts at most; zero means chaosLimit
	servers func() []string // addresses of the servers up now
	client  *http.Client

	sent, acked, requests atomic.Int64
	replayed              atomic.Int64 // answers from the idempotency record
	phase                 atomic.Value // string: labels the outcomes
	// no503RetryAfter counts 503 answers without a Retry-After of at
	// least a second: a client told "unavailable" must be told when to
	// come back.
	no503RetryAfter atomic.Int64

	mu         sync.Mutex
	ackedTurns map[string]int            // session → turns answered; guarded by mu
	byPhase    map[string]map[string]int // phase → outcome → count; guarded by mu
	slow503    time.Duration             // guarded by mu
	phases     []string                  // in the order they began; guarded by mu
	phaseStart map[string]time.Time      // guarded by mu
	firstOK    map[string]time.Time      // phase → its first 200; guarded by mu
}

func newLoad(prefix string, sessions, turns int, servers func() []string) *load {
	l := &load{turns: turns, servers: servers, ackedTurns: map[string]int{}, byPhase: map[string]map[string]int{},
		phaseStart: map[string]time.Time{}, firstOK: map[string]time.Time{},
		client: &http.Client{Timeout: 20 * time.Second}}
	for i := range sessions {
		l.ids = append(l.ids, fmt.Sprintf("%s-%02d", prefix, i))
	}
	l.setPhase("before")
	return l
}

func (l *load) setPhase(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phase.Store(p)
	l.phases = append(l.phases, p)
	l.phaseStart[p] = time.Now()
}

// firstAnswer is how long after its start a phase saw its first 200.
func (l *load) firstAnswer(phase string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstOK[phase].Sub(l.phaseStart[phase])
}

// run starts the clients; the channel is closed when all have finished
// (every turn answered, or chaosLimit passed).
func (l *load) run(t *testing.T, seed uint64) <-chan struct{} {
	limit := chaosLimit
	if l.limit > 0 {
		limit = l.limit
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i, id := range l.ids {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Go(func() { l.converse(t, ctx, rng, id) })
	}
	go func() { wg.Wait(); cancel(); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return done
}

// converse is one client.
func (l *load) converse(t *testing.T, ctx context.Context, rng *rand.Rand, id string) {
	for k := range l.turns {
		l.sent.Add(1)
		msg := fmt.Sprintf("%s turn %d", id, k)
		key := fmt.Sprintf("%s-%d", id, k)
		for {
			if ctx.Err() != nil {
				return
			}
			addrs := l.servers()
			outcome, body, took := l.post(ctx, addrs[rng.IntN(len(addrs))], id, key, msg)
			l.record(outcome, took)
			if outcome == "200" {
				var a turnAnswer
				if err := json.Unmarshal(body, &a); err != nil || a.Turn != int64(k+1) || a.Response != fmt.Sprintf("echo: %s (messages: %d)", msg, 2*k+1) {
					t.Errorf("%s: answer %s; want turn %d echoing it", msg, body, k+1)
				}
				l.acked.Add(1)
				l.mu.Lock()
				l.ackedTurns[id] = k + 1
				l.mu.Unlock()
				break
			}
			switch outcome {
			case "connection error", "503 store_unavailable", "409 session_busy", "409 conflict", "504 timeout":
				// Real clients wait Retry-After (a second or more); these
				// come back sooner, to press harder.
				sleep(ctx, time.Duration(5+rng.IntN(45))*time.Millisecond)
			default:
				t.Errorf("%s: %s %s", msg, outcome, body)
				return
			}
		}
	}
}

// post sends one turn and names its outcome: "200", "<status> <error
// type>" or "connection error".
func (l *load) post(ctx context.Context, addr, id, key, msg string) (outcome string, body []byte, took time.Duration) {
	l.requests.Add(1)
	b, _ := json.Marshal(map[string]string{"message": msg})
	req, err := http.NewRequestWithContext(ctx, "POST", "http://"+addr+"/v1/sessions/"+id+"/turns", bytes.NewReader(b))
	if err != nil {
		return "request error " + err.Error(), nil, 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		return "connection error", nil, time.Since(start)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(resp.Body)
	took = time.Since(start)
	if err != nil {
		return "connection error", nil, took
	}
	if resp.StatusCode == 200 {
		if resp.Header.Get("Idempotent-Replayed") == "true" {
			l.replayed.Add(1)
		}
		return "200", body, took
	}
	var e struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	if resp.StatusCode == http.StatusServiceUnavailable {
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
			l.no503RetryAfter.Add(1)
		}
	}
	return strconv.Itoa(resp.StatusCode) + " " + e.Error.Type, body, took
}

func (l *load) record(outcome string, took time.Duration) {
	phase := l.phase.Load().(string)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byPhase[phase] == nil {
		l.byPhase[phase] = map[string]int{}
	}
	l.byPhase[phase][outcome]++
	if _, ok := l.firstOK[phase]; !ok && outcome == "200" {
		l.firstOK[phase] = time.Now()
	}
	if outcome == "503 store_unavailable" {
		l.slow503 = max(l.slow503, took)
	}
}

func (l *load) count(phase, outcome string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byPhase[phase][outcome]
}

func (l *load) phaseOutcomes(phase string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.byPhase[phase] {
		out[k] = v
	}
	return out
}

func (l *load) slowest503() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.slow503
}

// outcomes renders the outcome counts by phase, for the log.
func (l *load) outcomes() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var parts []string
	for _, phase := range l.phases {
		if m := l.byPhase[phase]; m != nil {
			parts = append(parts, fmt.Sprintf("%s %v", phase, m))
		}
	}
	return strings.Join(parts, "; ")
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// tally is what check found.
type tally struct {
	Sent, Acked, Found, Lost, Duplicated, OutOfOrder, Corrupt int
}

func (tl tally) String() string {
	return fmt.Sprintf("sent %d, acknowledged %d, found %d, lost %d, duplicated %d, out of order %d, corrupt %d",
		tl.Sent, tl.Acked, tl.Found, tl.Lost, tl.Duplicated, tl.OutOfOrder, tl.Corrupt)
}

func (tl tally) assert(t *testing.T) {
	t.Helper()
	if tl.Lost != 0 || tl.Duplicated != 0 || tl.OutOfOrder != 0 || tl.Corrupt != 0 {
		t.Errorf("%s; want 0 lost, duplicated, out of order and corrupt", tl)
	}
	if tl.Acked != tl.Sent {
		t.Errorf("%d of %d turns acknowledged; want all", tl.Acked, tl.Sent)
	}
}

// check reads every session through GET /v1/sessions/{id} on addr and
// goes through it turn by turn: a user message of this load, then the
// simulator's echo of it made on exactly the history before it.
func (l *load) check(t *testing.T, addr string) tally {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	tl := tally{Sent: int(l.sent.Load()), Acked: int(l.acked.Load())}
	for _, id := range l.ids {
		resp, err := http.Get("http://" + addr + "/v1/sessions/" + id)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var view struct {
			Turns    int64             `json:"turns"`
			Messages []json.RawMessage `json:"messages"`
		}
		switch {
		case resp.StatusCode == 404:
		case resp.StatusCode != 200 || json.Unmarshal(body, &view) != nil:
			t.Fatalf("GET session %s: %d %s", id, resp.StatusCode, body)
		}
		seen := make([]int, l.turns)
		prev := -1
		for i := 0; i < len(view.Messages); i += 2 {
			user, ok1 := messageText(view.Messages[i], "user")
			var answer string
			ok2 := i+1 < len(view.Messages)
			if ok2 {
				answer, ok2 = messageText(view.Messages[i+1], "assistant")
			}
			k, err := strconv.Atoi(strings.TrimPrefix(user, id+" turn "))
			if !ok1 || !ok2 || err != nil || k < 0 || k >= l.turns || answer != fmt.Sprintf("echo: %s (messages: %d)", user, i+1) {
				tl.Corrupt++
				t.Errorf("session %s, messages %d and %d: not a turn of this load answered on the history before it: %s", id, i, i+1, view.Messages[i:min(i+2, len(view.Messages))])
				continue
			}
			seen[k]++
			if k <= prev {
				tl.OutOfOrder++
				t.Errorf("session %s: turn %d stored after turn %d", id, k, prev)
			}
			prev = k
		}
		if int(view.Turns) != len(view.Messages)/2 {
			tl.Corrupt++
			t.Errorf("session %s counts %d turns and holds %d messages", id, view.Turns, len(view.Messages))
		}
		for k, n := range seen {
			if n > 0 {
				tl.Found++
			}
			if n > 1 {
				tl.Duplicated += n - 1
				t.Errorf("session %s: turn %d stored %d times", id, k, n)
			}
			if n == 0 && k < l.ackedTurns[id] {
				tl.Lost++
				t.Errorf("session %s: turn %d was acknowledged and is not stored", id, k)
			}
		}
	}
	return tl
}

// messageText returns the text of a stored message with the given role.
func messageText(raw json.RawMessage, role string) (string, bool) {
	var m struct {
		Role    string `json:"role"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	if json.Unmarshal(raw, &m) != nil || m.Role != role {
		return "", false
	}
	var texts []string
	for _, b := range m.Content {
		if b.Type == "text" {
			texts = append(texts, b.Text)
		}
	}
	return strings.Join(texts, "\n"), true
}

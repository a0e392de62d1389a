package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// binary is the lambdagent executable built once for the process tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdagent-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "lambdagent")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build lambdagent: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a lambdagent process under test.
type proc struct {
	cmd  *exec.Cmd
	addr string
	out  *syncBuffer
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer // guarded by mu
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs `lambdagent <mode>` with env and waits until /healthz answers.
func start(t *testing.T, mode string, env ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binary, mode)
	// Authentication off unless env says otherwise (the last value of a
	// variable wins): these tests are about turns, auth_test.go about
	// authentication.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "LAMBDAGENT_ADDR=" + addr, "LAMBDAGENT_LOG_LEVEL=warn", "LAMBDAGENT_AUTH=none", "LAMBDAGENT_CONSOLE=false"}, env...)
	p := &proc{cmd: cmd, addr: addr, out: new(syncBuffer)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t) })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("lambdagent %s did not become healthy on %s; output:\n%s", mode, addr, p.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the process gracefully (SIGTERM) and waits for it.
func (p *proc) stop(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		t.Errorf("lambdagent did not stop on SIGTERM within 10s")
	}
}

type turnAnswer struct {
	Response   string `json:"response"`
	SessionID  string `json:"session_id"`
	Turn       int64  `json:"turn"`
	StopReason string `json:"stop_reason"`
}

func postAgent(t *testing.T, addr, session, msg string) turnAnswer {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"session_id": session, "message": msg})
	resp, err := http.Post("http://"+addr+"/agent", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST /agent %s: %d %s", msg, resp.StatusCode, b)
	}
	var a turnAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return a
}

// TestDevQuickStart is the README's quick start: `lambdagent dev`, one
// curl, then a restart that keeps the conversation.
func TestDevQuickStart(t *testing.T) {
	db := filepath.Join(t.TempDir(), "dev.db")
	p := start(t, "dev", "LAMBDAGENT_DB="+db, "LAMBDAGENT_AUTH=") // dev's own default: open on loopback
	first := postAgent(t, p.addr, "s1", "hello")
	if first.SessionID != "s1" || first.Turn != 1 || !strings.Contains(first.Response, "hello") {
		t.Fatalf("first turn = %+v", first)
	}
	// The quick start as typed before it named a type: curl -d sends
	// application/x-www-form-urlencoded.
	resp, err := http.Post("http://"+p.addr+"/agent", "application/x-www-form-urlencoded", strings.NewReader(`{"session_id":"curl","message":"hello"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "echo: hello") {
		t.Errorf("curl -d style turn = %d %s; want the answer", resp.StatusCode, b)
	}
	for _, want := range []string{"curl -H 'Content-Type: application/json' -d", "open to this machine only (loopback)"} {
		if !strings.Contains(p.out.String(), want) {
			t.Errorf("dev did not print %q; output:\n%s", want, p.out)
		}
	}
	p.stop(t)

	p = start(t, "dev", "LAMBDAGENT_DB="+db, "LAMBDAGENT_AUTH=")
	second := postAgent(t, p.addr, "s1", "again")
	if second.Turn != 2 || !strings.Contains(second.Response, "messages: 3") {
		t.Fatalf("after restart, turn = %+v; want turn 2 whose request carried 3 messages", second)
	}
}

// TestTwoServersShareRedis runs 50 turns of one session alternating
// between two `serve` processes that share one Redis, and checks every
// request the simulator received carried the whole history, in order.
func TestTwoServersShareRedis(t *testing.T) {
	redisAddr := redistest.Start(t)
	sim := claudesim.New(claudesim.Config{})
	simSrv := httptest.NewServer(sim)
	defer simSrv.Close()
	env := []string{
		"REDIS_URL=" + redistest.URL(redisAddr),
		"LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t),
		"ANTHROPIC_API_KEY=test-key",
		"ANTHROPIC_BASE_URL=" + simSrv.URL,
	}
	servers := []*proc{start(t, "serve", env...), start(t, "serve", env...)}
	rdb := redistest.Client(t, redisAddr)
	// Warm both servers' script caches, so the count below is the steady
	// state, then count the commands Redis runs for the turns.
	postAgent(t, servers[0].addr, "warm", "hi")
	postAgent(t, servers[1].addr, "warm", "hi")
	before := redisCalls(t, rdb)
	const turns = 50
	for i := range turns {
		a := postAgent(t, servers[i%2].addr, "shared", fmt.Sprintf("turn-%d", i))
		if a.Turn != int64(i+1) {
			t.Fatalf("turn %d answered as turn %d", i+1, a.Turn)
		}
	}
	// Begin, Commit and the turn record's script (see #18), which rides in
	// Commit's round trip (internal/agent's TestRedisRoundTrips counts
	// those: 2 a turn).
	if calls := redisCalls(t, rdb) - before; calls != 3*turns {
		t.Errorf("Redis ran %d scripts for %d turns, want 3 a turn (Begin, Commit, turn record)", calls, turns)
	}
	sim.Reset()
	for i := range turns {
		postAgent(t, servers[i%2].addr, "shared-check", fmt.Sprintf("turn-%d", i))
	}
	reqs := sim.Requests()
	if len(reqs) != turns {
		t.Fatalf("simulator got %d requests, want %d", len(reqs), turns)
	}
	var prev []json.RawMessage
	for i, r := range reqs {
		var body struct {
			Messages []json.RawMessage `json:"messages"`
		}
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if len(body.Messages) != 2*i+1 {
			t.Fatalf("request %d carried %d messages, want %d", i, len(body.Messages), 2*i+1)
		}
		for j, m := range body.Messages {
			wantRole := []string{"user", "assistant"}[j%2]
			var msg struct {
				Role    string `json:"role"`
				Content []struct {
					Text string `json:"text"`
				} `json:"content"`
			}
			if err := json.Unmarshal(m, &msg); err != nil {
				t.Fatalf("request %d message %d: %v", i, j, err)
			}
			if msg.Role != wantRole {
				t.Fatalf("request %d message %d role %q, want %q", i, j, msg.Role, wantRole)
			}
			if wantRole == "user" && (len(msg.Content) == 0 || msg.Content[len(msg.Content)-1].Text != fmt.Sprintf("turn-%d", j/2)) {
				t.Fatalf("request %d message %d = %s, want user text turn-%d", i, j, m, j/2)
			}
		}
		// The history sent is exactly the previous request's messages plus
		// the reply and the new user message: nothing lost or re-shaped.
		for j := range prev {
			if !bytes.Equal(prev[j], body.Messages[j]) {
				t.Fatalf("request %d message %d differs from what request %d sent:\n%s\n%s", i, j, i-1, prev[j], body.Messages[j])
			}
		}
		prev = body.Messages
	}
}

// TestBadUsage checks the CLI names its problem.
func TestBadUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "unknown mode", args: []string{"fly"}, want: `unknown mode "fly"`},
		{name: "no mode", args: nil, want: "no mode"},
		{name: "bad env", args: []string{"serve"}, env: map[string]string{"LAMBDAGENT_LEASE_TTL": "x"}, want: "LAMBDAGENT_LEASE_TTL"},
		{name: "serve without key", args: []string{"serve"}, env: map[string]string{"LAMBDAGENT_DB": filepath.Join(t.TempDir(), "x.db")}, want: "ANTHROPIC_API_KEY"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, &out, &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// redisCalls is the number of scripts (EVALSHA, EVAL) Redis has run. Each
// store operation and each rate-limiter step is one script, one round trip
// (INFO commandstats also counts the commands inside scripts, so they
// cannot be told from round trips; the scripts can).
func redisCalls(t *testing.T, rdb redis.UniversalClient) int {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || (name != "cmdstat_evalsha" && name != "cmdstat_eval" && name != "cmdstat_evalsha_ro") {
			continue
		}
		c, _, _ := strings.Cut(rest, ",")
		v, err := strconv.Atoi(c)
		if err != nil {
			t.Fatal(err)
		}
		n += v
	}
	return n
}

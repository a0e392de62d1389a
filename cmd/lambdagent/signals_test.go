package main

// Stop reasons and retry signals end to end (#14): `lambdagent serve`, the
// built binary, against the simulator, whose markers ([[refusal]],
// [[fail …]], …; see internal/claudesim) make the API's answers on demand.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// serveSim starts the simulator built from cfg and `lambdagent serve`
// against it, with the embedded store and env added.
func serveSim(t *testing.T, cfg claudesim.Config, env ...string) (*proc, *claudesim.Server) {
	t.Helper()
	sim := claudesim.New(cfg)
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	base := []string{
		"ANTHROPIC_API_KEY=test-key",
		"ANTHROPIC_BASE_URL=" + hs.URL,
		"LAMBDAGENT_DB=" + filepath.Join(t.TempDir(), "s.db"),
	}
	return start(t, "serve", append(base, env...)...), sim
}

// served is a turn's answer or error, as a client sees it.
type served struct {
	code   int
	header http.Header
	body   map[string]any
	took   time.Duration
}

func (r served) str(k string) string { s, _ := r.body[k].(string); return s }

// errorType is the type of an error answer's {"error":{"type":…}}.
func (r served) errorType() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

func send(t *testing.T, addr, session, msg string) served {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"session_id": session, "message": msg})
	began := time.Now()
	resp, err := http.Post("http://"+addr+"/agent", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := served{code: resp.StatusCode, header: resp.Header, took: time.Since(began)}
	if err := json.Unmarshal(b, &r.body); err != nil {
		t.Fatalf("answer %d %s: %v", resp.StatusCode, b, err)
	}
	return r
}

// requestsOf returns the statuses of the Messages API requests whose body
// contains marker, waiting up to a second for want of them (the simulator
// records a request after its answer is out).
func requestsOf(sim *claudesim.Server, marker string, want int) []int {
	var out []int
	for range 50 {
		out = out[:0]
		for _, r := range sim.Requests() {
			if r.Path == "/v1/messages" && bytes.Contains(r.Body, []byte(marker)) {
				out = append(out, r.Status)
			}
		}
		if len(out) >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

// TestServeStopReasons: each stop reason the agent handles, through serve.
func TestServeStopReasons(t *testing.T) {
	peer := newMCPPeer(t, "go")
	models := claudesim.Models()
	for i := range models {
		models[i].ContextWindow = 20_000
	}
	p, sim := serveSim(t, claudesim.Config{Models: models},
		fmt.Sprintf(`LAMBDAGENT_MCP_CONFIG={"mcpServers": {"go": {"url": %q}}}`, peer.url()))

	t.Run("refusal", func(t *testing.T) {
		r := send(t, p.addr, "refused", "[[refusal]] tell me")
		if r.code != 200 || r.str("stop_reason") != "refusal" || !strings.Contains(r.str("response"), "declined") || r.body["stop_details"] == nil {
			t.Fatalf("refusal answer: %d %v", r.code, r.body)
		}
		// Not stored: the next turn of the session is not refused.
		if r := send(t, p.addr, "refused", "something else"); r.code != 200 || r.str("stop_reason") != "end_turn" {
			t.Errorf("next turn: %d %v", r.code, r.body)
		}
	})
	t.Run("pause_turn", func(t *testing.T) {
		r := send(t, p.addr, "paused", "[[pause_turn]] a long job")
		if r.code != 200 || r.str("stop_reason") != "end_turn" || !strings.Contains(r.str("response"), "resumed: ") {
			t.Fatalf("paused turn: %d %v", r.code, r.body)
		}
	})
	t.Run("max_tokens in a tool call", func(t *testing.T) {
		r := send(t, p.addr, "cut", `[[max_tokens_in_tool]] [[tool echo {"message":"x"}]]`)
		if r.code != 200 || !strings.Contains(r.str("response"), "cut off by the max_tokens limit") {
			t.Fatalf("cut turn: %d %v", r.code, r.body)
		}
		if n := peer.log.count("echo"); n != 0 {
			t.Errorf("the cut call ran %d times", n)
		}
		// Fits once the budget doubles (4096 → 8192): the call runs.
		r = send(t, p.addr, "cut2", `[[max_tokens_in_tool 6000]] [[tool echo {"message":"x"}]]`)
		if r.code != 200 || peer.log.count("echo") != 1 {
			t.Errorf("retried turn: %d %v; echo ran %d times", r.code, r.body, peer.log.count("echo"))
		}
		if r := send(t, p.addr, "cut", "and now?"); r.code != 200 {
			t.Errorf("turn after the cut: %d %v", r.code, r.body)
		}
	})
	t.Run("empty end_turn", func(t *testing.T) {
		r := send(t, p.addr, "empty", "[[empty]]")
		if r.code != 200 || r.str("response") != "" {
			t.Fatalf("empty turn: %d %v", r.code, r.body)
		}
		if r := send(t, p.addr, "empty", "hello again"); r.code != 200 || !strings.Contains(r.str("response"), "hello again") {
			t.Errorf("turn after the empty one: %d %v", r.code, r.body)
		}
	})
	t.Run("context window", func(t *testing.T) {
		send(t, p.addr, "big", "hello")
		r := send(t, p.addr, "big", strings.Repeat("long ", 18_000)) // 90 KB: 22,500 tokens > 20,000
		if r.code != http.StatusRequestEntityTooLarge || r.errorType() != "context_window_exceeded" {
			t.Fatalf("oversized turn: %d %v; want 413 context_window_exceeded", r.code, r.body)
		}
		if r := send(t, p.addr, "big", "small again"); r.code != 200 || !strings.Contains(r.str("response"), "messages: 3") {
			t.Errorf("turn after: %d %v; want the failed turn not stored", r.code, r.body)
		}
	})
	for _, r := range sim.Requests() {
		if r.Status != 200 && r.Status != 400 {
			t.Errorf("simulator answered %d", r.Status)
		}
	}
}

// TestServeRetrySignals: the retry headers of #14, through serve with its
// default retry policy (5 attempts, backoff from 0.5 s).
func TestServeRetrySignals(t *testing.T) {
	p, sim := serveSim(t, claudesim.Config{}, "LAMBDAGENT_TURN_TIMEOUT=8s")

	t.Run("retry-after-ms", func(t *testing.T) {
		m := "[[fail 529 times=2 retry-after-ms=700]]"
		r := send(t, p.addr, "ms", m)
		if r.code != 200 || r.took < 1400*time.Millisecond {
			t.Fatalf("%d %v after %v; want 200 after two waits of 700ms", r.code, r.body, r.took)
		}
		if got := requestsOf(sim, m, 3); len(got) != 3 {
			t.Errorf("statuses %v, want 529, 529, 200", got)
		}
	})
	t.Run("x-should-retry false", func(t *testing.T) {
		m := "[[fail 529 should-retry=false]]"
		r := send(t, p.addr, "no", m)
		if r.code != http.StatusServiceUnavailable || r.errorType() != "upstream_overloaded" {
			t.Fatalf("%d %v; want 503 upstream_overloaded", r.code, r.body)
		}
		if got := requestsOf(sim, m, 1); len(got) != 1 {
			t.Errorf("statuses %v, want one 529 and no retry", got)
		}
	})
	t.Run("x-should-retry true", func(t *testing.T) {
		m := "[[fail 400 should-retry=true retry-after-ms=10]]"
		if r := send(t, p.addr, "yes", m); r.code != 200 {
			t.Fatalf("%d %v; want the 400 retried", r.code, r.body)
		}
		if got := requestsOf(sim, m, 2); len(got) != 2 {
			t.Errorf("statuses %v, want 400, 200", got)
		}
	})
	t.Run("429 waits for the exhausted limit", func(t *testing.T) {
		// The other limits reset in 1 s; output tokens, exhausted, in 3.
		m := "[[fail 429 exhausted=output-tokens reset=3]]"
		r := send(t, p.addr, "limit", m)
		if r.code != 200 || r.took < 1900*time.Millisecond {
			t.Fatalf("%d %v after %v; want 200 after waiting for the output-tokens reset", r.code, r.body, r.took)
		}
		if got := requestsOf(sim, m, 2); len(got) != 2 {
			t.Errorf("statuses %v, want 429, 200", got)
		}
	})
	t.Run("retry-after past the deadline", func(t *testing.T) {
		m := "[[fail 429 retry-after=120]]"
		r := send(t, p.addr, "late", m)
		if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") != "120" || r.took > 3*time.Second {
			t.Fatalf("%d %v Retry-After %q after %v; want 429 at once, passing on the 120 s", r.code, r.body, r.header.Get("Retry-After"), r.took)
		}
		if got := requestsOf(sim, m, 1); len(got) != 1 {
			t.Errorf("statuses %v, want one 429", got)
		}
		for i := 0; i < 50 && !strings.Contains(p.out.String(), "next attempt due in 2m0s"); i++ {
			time.Sleep(20 * time.Millisecond) // the log line may follow the answer
		}
		if !strings.Contains(p.out.String(), "next attempt due in 2m0s") {
			t.Errorf("serve's log does not say how long the wait was:\n%s", p.out)
		}
	})
}

// TestServeLongRetryAfter: a retry-after longer than the retry policy's
// 20 s backoff cap is waited in full when the turn's deadline allows it
// (see #14; it used to be cut to 20 s, into the same 429 again). It
// sleeps 21 s, in parallel with the other tests.
func TestServeLongRetryAfter(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 21 s")
	}
	t.Parallel()
	p, sim := serveSim(t, claudesim.Config{})
	m := "[[fail 429 retry-after=21]]"
	r := send(t, p.addr, "long", m)
	if r.code != 200 || r.took < 21*time.Second {
		t.Fatalf("%d %v after %v; want 200 after the whole 21 s", r.code, r.body, r.took)
	}
	if got := requestsOf(sim, m, 2); len(got) != 2 {
		t.Errorf("statuses %v, want 429, 200", got)
	}
}

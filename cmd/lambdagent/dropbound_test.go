package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// LAMBDAGENT_DROP_BOUND_THINKING end to end through serve (#14): a
// session stored before sessions pinned their prefix (here: its pin
// removed from Redis), whose thinking is bound to an older system prompt,
// fails every turn with the API's 400 after a deploy changes the prompt;
// with the option on, the API drops those blocks, the turn succeeds, and
// the drop is counted in lambdagent_input_transformations_total.
func TestDropBoundThinkingServe(t *testing.T) {
	redisAddr := redistest.Start(t)
	rdb := redistest.Client(t, redisAddr)
	prefix := redistest.Prefix(t)
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	env := []string{
		"REDIS_URL=" + redistest.URL(redisAddr), "LAMBDAGENT_REDIS_PREFIX=" + prefix,
		"ANTHROPIC_API_KEY=k", "ANTHROPIC_BASE_URL=" + sim.URL,
	}
	old := start(t, "serve", append(env, "LAMBDAGENT_SYSTEM_PROMPT=You are the old assistant.")...)
	postAgent(t, old.addr, "legacy", "hello")
	old.stop(t)
	if n, err := rdb.HDel(t.Context(), prefix+"{legacy}:meta", "pinned").Result(); err != nil || n != 1 {
		t.Fatalf("removing the pin: %d, %v", n, err)
	}

	post := func(addr string) (int, string) {
		resp, err := http.Post("http://"+addr+"/agent", "application/json", strings.NewReader(`{"session_id":"legacy","message":"again"}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	env = append(env, "LAMBDAGENT_SYSTEM_PROMPT=You are the new assistant.")
	plain := start(t, "serve", env...)
	if status, body := post(plain.addr); status != 502 || !strings.Contains(body, "Claude answered 400 invalid_request_error") {
		t.Fatalf("turn after the prompt changed, without the option: %d %s; want the API's 400 as a 502", status, body)
	}
	plain.stop(t)
	if out := plain.out.String(); !strings.Contains(out, "bound to a different conversation") {
		t.Errorf("serve's log does not say why Claude refused the turn:\n%s", out)
	}

	drop := start(t, "serve", append(env, "LAMBDAGENT_DROP_BOUND_THINKING=true")...)
	if status, body := post(drop.addr); status != 200 || !strings.Contains(body, "again") {
		t.Fatalf("turn with LAMBDAGENT_DROP_BOUND_THINKING=true: %d %s", status, body)
	}
	resp, err := http.Get("http://" + drop.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	metrics, _ := io.ReadAll(resp.Body)
	var line []byte
	for _, l := range bytes.Split(metrics, []byte("\n")) {
		if bytes.HasPrefix(l, []byte("lambdagent_input_transformations_total{")) {
			line = l
		}
	}
	if !bytes.Contains(line, []byte(`type="thinking_dropped"`)) || !bytes.HasSuffix(line, []byte(" 1")) {
		t.Errorf("input_transformations metric %q; want one thinking_dropped", line)
	}
}

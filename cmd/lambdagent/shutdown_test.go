package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestShutdownInFlight sends SIGTERM to `serve` while 50 turns are in
// flight, with a model that takes 0.3 to 2.8 s and a grace period of 1 s
// (see #17). The process must exit within the grace period plus the
// cancel wait; every turn must be either answered 200 and stored, or
// answered 503 shutting_down (with Retry-After) and leave its session as
// it was and free: a second server then runs a follow-up turn on every
// session at once, with LAMBDAGENT_BUSY_POLICY=reject so that a lease
// left behind would show as a 409.
func TestShutdownInFlight(t *testing.T) {
	const n = 50
	const grace = time.Second
	sim := httptest.NewServer(claudesim.New(claudesim.Config{Latency: 300 * time.Millisecond, LatencyJitter: 2500 * time.Millisecond}))
	t.Cleanup(sim.Close)
	env := []string{
		"REDIS_URL=" + redistest.URL(redistest.Start(t)),
		"LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t),
		"ANTHROPIC_API_KEY=test-key",
		"ANTHROPIC_BASE_URL=" + sim.URL,
		"LAMBDAGENT_BUSY_POLICY=reject",
	}
	a := start(t, "serve", append(env, "LAMBDAGENT_SHUTDOWN_GRACE="+grace.String())...)
	base := "http://" + a.addr
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = fmt.Sprintf("stop-%02d", i)
		wg.Go(func() { turn(t, base, ids[i], "first", "") })
	}
	wg.Wait()

	type outcome struct {
		code       int
		body       []byte
		retryAfter string
		err        error
	}
	outs := make([]outcome, n)
	for i, id := range ids {
		wg.Go(func() {
			body := fmt.Sprintf(`{"session_id":%q,"message":"second"}`, id)
			req, _ := http.NewRequest("POST", base+"/agent", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				outs[i].err = err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			outs[i] = outcome{code: resp.StatusCode, body: b, retryAfter: resp.Header.Get("Retry-After")}
		})
	}
	time.Sleep(200 * time.Millisecond) // all 50 are waiting for the model (≥ 300 ms)
	sent := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- a.cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM; want 0\n%s", err, a.out)
		}
	case <-time.After(grace + 5*time.Second + 2*time.Second):
		t.Fatalf("serve still runs %v after SIGTERM", time.Since(sent))
	}
	stopped := time.Since(sent)
	wg.Wait()

	b := start(t, "serve", env...)
	answered, cancelled := 0, 0
	for i, id := range ids {
		o := outs[i]
		var wantMsgs int
		switch {
		case o.err == nil && o.code == 200:
			answered++
			wantMsgs = 4
		case o.err == nil && o.code == 503 && json.Valid(o.body) && o.retryAfter != "" && strings.Contains(string(o.body), `"shutting_down"`):
			cancelled++
			wantMsgs = 2
		default:
			t.Errorf("session %s: %d %s (err %v); want 200, or 503 shutting_down with Retry-After", id, o.code, o.body, o.err)
			continue
		}
		if got := messages(t, "http://"+b.addr, id); got != wantMsgs {
			t.Errorf("session %s (answered %d) holds %d messages; want %d", id, o.code, got, wantMsgs)
		}
	}
	// Every session is free: a follow-up turn on each, all at once, with
	// the reject policy, succeeds.
	follow := time.Now()
	for _, id := range ids {
		wg.Go(func() {
			code, body, err := postTurn("http://"+b.addr, id, "third", "")
			if err != nil || code != 200 {
				t.Errorf("follow-up turn of %s: %d %s %v; want 200 at once", id, code, body, err)
			}
		})
	}
	wg.Wait()
	if answered == 0 || cancelled == 0 {
		t.Errorf("%d answered, %d cancelled; want some of each (is the model latency still spread across the grace period?)", answered, cancelled)
	}
	t.Logf("SIGTERM during %d turns in flight (model 0.3-2.8 s, grace %v): %d committed and answered, %d cancelled (503 shutting_down, session untouched); serve exited %v after SIGTERM; %d follow-up turns succeeded in %v",
		n, grace, answered, cancelled, stopped.Round(10*time.Millisecond), n, time.Since(follow).Round(10*time.Millisecond))
}

// messages counts the messages stored in session id, through base.
func messages(t *testing.T, base, id string) int {
	t.Helper()
	resp, err := http.Get(base + "/v1/sessions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var view struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET session %s: %d %v", id, resp.StatusCode, err)
	}
	return len(view.Messages)
}

package main

// Crash tests of #8 against real `lambdagent serve` processes sharing a
// real redis-server: a process killed while its tools run, and MCP
// sessions that outlive the process that opened them.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// serveEnv is the environment of serve processes on one Redis, the
// simulator and the MCP server at mcpURL.
func serveEnv(t *testing.T, redisAddr, mcpURL string) []string {
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	return []string{
		"REDIS_URL=" + redistest.URL(redisAddr),
		"LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t),
		"ANTHROPIC_API_KEY=test-key",
		"ANTHROPIC_BASE_URL=" + sim.URL,
		"LAMBDAGENT_LEASE_TTL=1s", // a killed holder blocks its session for at most a second
		"LAMBDAGENT_MCP_CONFIG=" + fmt.Sprintf(`{"mcpServers": {"shop": {"url": %q}}}`, mcpURL),
	}
}

// TestKilledTurnDoesNotRepeatTools kills a serve process with SIGKILL
// while a turn's tools run: "charge" has returned (and its result is
// saved), "slow" is still running. The client retries with the same
// Idempotency-Key on a new process, which resumes the turn: charge is not
// called again, slow (whose result never came back) is, and the session
// holds the turn once.
func TestKilledTurnDoesNotRepeatTools(t *testing.T) {
	peer := newMCPPeer(t, "shop")
	redisAddr := redistest.Start(t)
	rdb := redistest.Client(t, redisAddr)
	env := serveEnv(t, redisAddr, peer.url())
	const msg = `pay [[tool charge {"amount":5}]] and [[tool slow]]`

	p1 := start(t, "serve", env...)
	first := make(chan error, 1)
	go func() {
		code, body, err := postTurn("http://"+p1.addr, "order", msg, "order-1")
		if err == nil {
			err = fmt.Errorf("answered %d %s", code, body)
		}
		first <- err
	}()
	select {
	case <-peer.log.slowed:
	case <-time.After(20 * time.Second):
		t.Fatalf("the slow tool was never called; output:\n%s", p1.out)
	}
	// Kill only once charge's result is in the store: a crash before that
	// point would rightly call it again. (The key is the store's, see
	// redisstore's package comment.)
	toolsKey := redistest.Prefix(t) + "{order}:tools"
	deadline := time.Now().Add(20 * time.Second)
	for rdb.HLen(t.Context(), toolsKey).Val() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("charge's result was never saved; output:\n%s", p1.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := p1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p1.cmd.Wait()
	if err := <-first; err == nil || strings.HasPrefix(err.Error(), "answered") {
		t.Fatalf("the request to the killed process: %v; want a broken connection", err)
	}

	p2 := start(t, "serve", env...)
	began := time.Now()
	a := turn(t, "http://"+p2.addr, "order", msg, "order-1") // waits out the dead lease
	t.Logf("retry answered in %v", time.Since(began))
	if a.Response != "tool results: charge=charged 5; slow=slept" || a.Turn != 1 || a.ModelCalls != 2 {
		t.Errorf("retry's answer = %+v", a)
	}
	if n := peer.log.count("charge"); n != 1 {
		t.Errorf("charge was called %d times; want once", n)
	}
	if n := peer.log.count("slow"); n != 2 {
		t.Errorf("slow was called %d times; want twice (its first call never returned)", n)
	}

	// The session holds the turn once: the user message, the tool_use,
	// the tool results and the answer.
	resp, err := http.Get("http://" + p2.addr + "/v1/sessions/order")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sess struct {
		Turns    int64             `json:"turns"`
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&sess); err != nil {
		t.Fatal(err)
	}
	var shape []string
	for _, m := range sess.Messages {
		var w struct {
			Role    string `json:"role"`
			Content []struct {
				Type string `json:"type"`
			} `json:"content"`
		}
		if err := json.Unmarshal(m, &w); err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, b := range w.Content {
			types = append(types, b.Type)
		}
		shape = append(shape, w.Role+":"+strings.Join(types, ","))
	}
	want := "user:text assistant:thinking,text,tool_use,tool_use user:tool_result,tool_result assistant:thinking,text"
	if got := strings.Join(shape, " "); sess.Turns != 1 || got != want {
		t.Errorf("stored session: %d turns, messages %s; want 1 turn, %s", sess.Turns, got, want)
	}

	// A repeat is answered from the idempotency record, running nothing.
	if b := turn(t, "http://"+p2.addr, "order", msg, "order-1"); b != a || peer.log.count("charge") != 1 {
		t.Errorf("repeat = %+v with %d charges; want the stored answer and no call", b, peer.log.count("charge"))
	}
}

// TestMCPSessionAcrossProcesses checks that a new process continues the
// MCP session of the one before it (the store keeps it): the server sees
// one initialize and every call in that session, whether the first
// process stopped first or runs beside the new one.
func TestMCPSessionAcrossProcesses(t *testing.T) {
	peer := newMCPPeer(t, "remote")
	redisAddr := redistest.Start(t)
	env := serveEnv(t, redisAddr, peer.url())

	p1 := start(t, "serve", env...)
	if a := turn(t, "http://"+p1.addr, "s1", `[[tool echo {"message":"one"}]]`, ""); a.Response != "tool results: echo=remote: one" {
		t.Fatalf("turn on the first process = %+v", a)
	}
	p1.stop(t) // SIGTERM: closes its tools, leaving the session open

	p2 := start(t, "serve", env...)
	if a := turn(t, "http://"+p2.addr, "s1", `[[tool echo {"message":"two"}]]`, ""); a.Response != "tool results: echo=remote: two" {
		t.Fatalf("turn on the second process = %+v", a)
	}
	p3 := start(t, "serve", env...) // while p2 still runs
	for i, p := range []*proc{p2, p3, p2} {
		if a := turn(t, "http://"+p.addr, fmt.Sprintf("s%d", i+2), `[[tool echo {"message":"more"}]]`, ""); a.Response != "tool results: echo=remote: more" {
			t.Fatalf("turn %d beside another process = %+v", i, a)
		}
	}

	var inits, deletes, calls int
	ids := map[string]bool{}
	for _, r := range peer.sent() {
		switch {
		case r.rpc == "initialize":
			inits++
		case r.method == http.MethodDelete:
			deletes++
		case r.rpc == "tools/call":
			calls++
			ids[r.session] = true
		}
	}
	if inits != 1 || deletes != 0 || calls != 5 || len(ids) != 1 || ids[""] {
		t.Errorf("server saw %d initialize, %d DELETE and %d tools/call in sessions %v; want 1, 0 and 5 in one session", inits, deletes, calls, ids)
	}

	// The server forgets the session: the next call renews it, and the
	// store gets the new one, which a new process then continues.
	for ss := range peer.srv.Sessions() {
		ss.Close()
	}
	seen := len(peer.sent())
	if a := turn(t, "http://"+p2.addr, "s5", `[[tool echo {"message":"renewed"}]]`, ""); a.Response != "tool results: echo=remote: renewed" {
		t.Fatalf("turn after the session expired = %+v", a)
	}
	p4 := start(t, "serve", env...)
	if a := turn(t, "http://"+p4.addr, "s6", `[[tool echo {"message":"after"}]]`, ""); a.Response != "tool results: echo=remote: after" {
		t.Fatalf("turn on a process started after the renewal = %+v", a)
	}
	inits, calls = 0, 0
	var sessions []string
	for _, r := range peer.sent()[seen:] {
		switch r.rpc {
		case "initialize":
			inits++
		case "tools/call":
			sessions = append(sessions, r.session)
		}
	}
	if inits != 1 || len(sessions) < 2 || sessions[len(sessions)-1] != sessions[len(sessions)-2] || ids[sessions[len(sessions)-1]] {
		t.Errorf("after expiry: %d initialize, tools/call in sessions %v; want 1 and the renewed session continued by the new process", inits, sessions)
	}
}

package main

// The long conversation of #14 ("What must be shown"): 300 turns through
// serve against the simulator (`lambdagent sim`) with prefix binding enforced (a thinking
// block sent back under a changed system prompt or tool list is a 400),
// with a 20-message MCP tool loop every 10th turn, an MCP server that goes
// down and comes back with one more tool, and a deploy that changes the
// system prompt. Every turn must succeed.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type countIn struct {
	N int `json:"n"`
}

type queryIn struct {
	Q string `json:"q"`
}

// countdownServer has one tool whose result names the next call while n >
// 1: the simulator follows directives in tool results, so a message
// calling countdown with n=9 makes a tool loop of 9 calls, 20 messages.
func countdownServer() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "steady", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "countdown", Description: "counts down from n"},
		func(_ context.Context, _ *mcp.CallToolRequest, in countIn) (*mcp.CallToolResult, any, error) {
			if in.N > 1 {
				return textResult(fmt.Sprintf(`[[tool countdown {"n":%d}]]`, in.N-1)), nil, nil
			}
			return textResult("liftoff"), nil, nil
		})
	return srv
}

// A flakyServer is an MCP server over HTTP on a fixed address that the
// test stops and starts again, with other tools.
type flakyServer struct {
	addr string
	mu   sync.Mutex
	hs   *http.Server // guarded by mu; nil while down
}

func (f *flakyServer) start(t *testing.T, tools ...string) {
	t.Helper()
	srv := mcp.NewServer(&mcp.Implementation{Name: "flaky", Version: "1"}, nil)
	for _, name := range tools {
		mcp.AddTool(srv, &mcp.Tool{Name: name, Description: name + " something"},
			func(_ context.Context, _ *mcp.CallToolRequest, in queryIn) (*mcp.CallToolResult, any, error) {
				return textResult(name + ": " + in.Q), nil, nil
			})
	}
	addr := f.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	f.addr = ln.Addr().String()
	hs := &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)}
	go func() {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("flaky MCP server: %v", err)
		}
	}()
	f.mu.Lock()
	f.hs = hs
	f.mu.Unlock()
}

func (f *flakyServer) stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hs != nil {
		f.hs.Close()
		f.hs = nil
	}
}

func (f *flakyServer) url() string { return "http://" + f.addr + "/mcp" }

// simProcess runs `lambdagent sim`, the simulator in a process of its
// own, built without the race detector: the test's own process, under
// -race, would spend most of the test parsing and signing histories.
func simProcess(t *testing.T) string {
	t.Helper()
	addr := freeAddr(t)
	p := &proc{cmd: exec.Command(binary, "sim", "-addr", addr), addr: addr, out: new(syncBuffer)}
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LAMBDAGENT_LOG_LEVEL=warn"}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(t) })
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("lambdagent sim did not listen on %s:\n%s", addr, p.out)
		}
	}
}

// prefixLog sits between serve and the simulator and watches the
// Messages API requests of one conversation (those whose first message
// holds first): everything before their messages but tool_choice (model,
// system, tools, …), which must never change, and the statuses answered.
type prefixLog struct {
	first []byte
	mu    sync.Mutex
	// Guarded by mu:
	prefixes map[string]int // each request's bytes before "messages", counted
	last     []byte         // the newest body
	newest   []byte         // the newest body of any conversation
	statuses map[int]int    // of every request
}

func (l *prefixLog) proxy(t *testing.T, target string) *httptest.Server {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		l.mu.Lock()
		l.statuses[resp.StatusCode]++
		l.mu.Unlock()
		return nil
	}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		l.mu.Lock()
		l.newest = body
		l.mu.Unlock()
		if i := bytes.Index(body, []byte(`,"messages":[`)); i > 0 && bytes.Contains(body[i:min(len(body), i+256)], l.first) {
			key := body[:i]
			// tool_choice is no part of the prefix a thinking block is
			// bound to (the agent sets "none" on a turn's last allowed
			// call).
			if j := bytes.Index(key, []byte(`,"tool_choice":`)); j > 0 {
				key = key[:j]
			}
			l.mu.Lock()
			l.prefixes[string(key)]++
			l.last = body
			l.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs
}

func (l *prefixLog) distinct() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for k, n := range l.prefixes {
		out = append(out, fmt.Sprintf("%d× %s", n, k))
	}
	return out
}

func (l *prefixLog) snapshot() (prefixes int, last []byte, statuses map[int]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.prefixes), l.last, maps.Clone(l.statuses)
}

func TestLongConversation(t *testing.T) {
	if testing.Short() {
		t.Skip("300 turns")
	}
	began := time.Now()
	watch := &prefixLog{first: []byte("turn 1 "), prefixes: map[string]int{}, statuses: map[int]int{}}
	simSrv := watch.proxy(t, simProcess(t))

	steady := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return countdownServer() }, nil))
	t.Cleanup(steady.Close)
	flaky := &flakyServer{}
	flaky.start(t, "lookup")
	t.Cleanup(flaky.stop)

	db := filepath.Join(t.TempDir(), "s.db")
	config := fmt.Sprintf(`LAMBDAGENT_MCP_CONFIG={"mcpServers": {"steady": {"url": %q}, "flaky": {"url": %q}}}`, steady.URL+"/mcp", flaky.url())
	serve := func(system string) *proc {
		return start(t, "serve", "ANTHROPIC_API_KEY=test-key", "ANTHROPIC_BASE_URL="+simSrv.URL, "LAMBDAGENT_DB="+db,
			"LAMBDAGENT_SYSTEM_PROMPT="+system, config)
	}
	p := serve("You are terse.")

	const turns = 300
	sawNewTool := false
	for i := 1; i <= turns; i++ {
		switch i {
		case 101: // the flaky server goes down
			flaky.stop()
		case 151: // and comes back with one more tool
			flaky.start(t, "lookup", "translate")
		case 201: // a deploy changes the system prompt
			p.stop(t)
			p = serve("You are thorough.")
		}
		if i%50 == 1 {
			t.Logf("turn %d at %v (new tool seen: %v)", i, time.Since(began).Round(time.Millisecond), sawNewTool)
		}
		msg := fmt.Sprintf("turn %d ", i)
		loop := i%10 == 0
		if loop {
			msg += `[[tool countdown {"n":9}]] [[tool lookup {"q":"x"}]]`
		}
		code, body, err := postTurn("http://"+p.addr, "long", msg, "")
		if err != nil || code != http.StatusOK {
			t.Fatalf("turn %d: %d %s %v\nserve's output:\n%s", i, code, body, err, p.out)
		}
		var a answer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatal(err)
		}
		switch {
		case a.Turn != int64(i):
			t.Fatalf("turn %d answered as turn %d", i, a.Turn)
		case loop && (a.ModelCalls != 10 || a.Response != "tool results: countdown=liftoff"):
			t.Fatalf("tool loop of turn %d: %d model calls, %q; want 10 calls (20 messages) ending in liftoff", i, a.ModelCalls, a.Response)
		case !loop && !strings.Contains(a.Response, msg):
			t.Fatalf("turn %d answered %q", i, a.Response)
		}
		// Once back, the flaky server's new tool is announced to the
		// conversation (its list is relisted on reconnect, within a few
		// seconds of backoff): give it time before the deploy, with
		// turns of another session.
		if i >= 151 && !sawNewTool {
			_, last, _ := watch.snapshot()
			sawNewTool = bytes.Contains(last, []byte("translate"))
			for j := 0; i == 200 && !sawNewTool && j < 100; j++ {
				// A new session pins the tools listed now.
				time.Sleep(200 * time.Millisecond)
				postTurnOK(t, p.addr, fmt.Sprintf("poke%d", j), "hello")
				watch.mu.Lock()
				sawNewTool = bytes.Contains(watch.newest, []byte("translate"))
				watch.mu.Unlock()
			}
		}
	}
	if !sawNewTool {
		t.Error("the flaky server's new tool was never announced to the conversation")
	}
	n, last, statuses := watch.snapshot()
	if n != 1 {
		t.Errorf("the conversation's requests carried %d different prefixes; want 1 (pinned):\n%s", n, strings.Join(watch.distinct(), "\n"))
	}
	// The history holds the calls made while the flaky server was down,
	// answered as errors, and the notices of what changed.
	for _, want := range []string{`"is_error":true`, `"role":"system"`, "You are thorough.", "translate"} {
		if !bytes.Contains(last, []byte(want)) {
			t.Errorf("the last request lacks %s", want)
		}
	}
	if len(statuses) != 1 || statuses[200] == 0 {
		t.Errorf("simulator statuses %v; want only 200s", statuses)
	}
	// A new conversation pins the new prompt and tools, and can call the
	// new tool.
	code, body, err := postTurn("http://"+p.addr, "fresh", `[[tool translate {"q":"hola"}]]`, "")
	if err != nil || code != 200 || !strings.Contains(string(body), "translate=translate: hola") {
		t.Errorf("new session: %d %s %v", code, body, err)
	}
	t.Logf("%d turns, %d requests, in %v", turns, statuses[200], time.Since(began).Round(time.Millisecond))
}

func postTurnOK(t *testing.T, addr, session, msg string) {
	t.Helper()
	if code, body, err := postTurn("http://"+addr, session, msg, ""); err != nil || code != 200 {
		t.Fatalf("turn %q of %s: %d %s %v", msg, session, code, body, err)
	}
}

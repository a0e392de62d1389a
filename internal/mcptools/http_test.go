package mcptools

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent/internal/mcptools/mcptest"
)

// httpConfig is a config with one HTTP server "remote" at url.
func httpConfig(url, extra string) string {
	return fmt.Sprintf(`{"mcpServers": {"remote": {"type": "http", "url": %q%s}}}`, url, extra)
}

func TestHTTPHeadersAndTraceparent(t *testing.T) {
	t.Setenv("MCPTEST_TOKEN", "s3cret-token-value")
	peer := newHTTPPeer(t, "http-test")
	ts := open(t, httpConfig(peer.url(), `, "headers": {"Authorization": "Bearer ${MCPTEST_TOKEN}", "X-Team": "blue"}`), Options{})

	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := WithTraceparent(context.Background(), tp)
	r := ts.Call(ctx, Call{ID: "1", Name: "echo", Input: json.RawMessage(`{"message": "over http"}`)})
	if got := text(t, r); got != "http-test: over http" {
		t.Fatalf("echo = %q", got)
	}
	var sawCall bool
	for _, r := range peer.sent() {
		if got := r.header.Get("Authorization"); got != "Bearer s3cret-token-value" {
			t.Errorf("%s %s: Authorization = %q", r.method, r.rpc, got)
		}
		if got := r.header.Get("X-Team"); got != "blue" {
			t.Errorf("%s %s: X-Team = %q", r.method, r.rpc, got)
		}
		if r.rpc == "tools/call" {
			sawCall = true
			if got := r.header.Get("Traceparent"); got != tp {
				t.Errorf("tools/call: traceparent = %q, want %q", got, tp)
			}
		}
	}
	if !sawCall {
		t.Error("server saw no tools/call")
	}
}

func TestHTTPListChanged(t *testing.T) {
	t.Parallel()
	peer := newHTTPPeer(t, "http-test")
	ts := open(t, httpConfig(peer.url(), ""), Options{})
	if slices.Contains(toolNames(t, ts), "late") {
		t.Fatal("tool late listed before it was added")
	}

	mcp.AddTool(peer.srv, &mcp.Tool{Name: "late", Description: "added at runtime"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return textResult("late but here"), nil, nil
		})
	waitFor(t, "tool late in Definitions", func() bool { return slices.Contains(toolNames(t, ts), "late") })
	if r := run1(t, ts, "late", `{}`); text(t, r) != "late but here" {
		t.Errorf("late = %s", r.Block)
	}

	peer.srv.RemoveTools("late")
	waitFor(t, "tool late gone from Definitions", func() bool { return !slices.Contains(toolNames(t, ts), "late") })
}

func TestHTTPDownAtOpen(t *testing.T) {
	t.Parallel()
	peer := newHTTPPeer(t, "http-test")
	peer.setDown(true)
	ts := open(t, `{"mcpServers": {
		"remote": {"url": "`+peer.url()+`"},
		"local": `+mcptest.StdioConfig(t, `, "allowedTools": ["pid"]`)+`}}`,
		Options{RedialDelay: 10 * time.Millisecond})

	if got := toolNames(t, ts); !slices.Equal(got, []string{"pid"}) {
		t.Errorf("tools while remote is down = %v, want [pid]", got)
	}
	if r := run1(t, ts, "echo", `{"message": "x"}`); !r.IsError {
		t.Errorf("echo while down = %s, want an error", r.Block)
	}

	peer.setDown(false)
	waitFor(t, "remote's tools to appear", func() bool { return slices.Contains(toolNames(t, ts), "echo") })
	if r := run1(t, ts, "echo", `{"message": "up"}`); text(t, r) != "http-test: up" {
		t.Errorf("echo after coming up = %s", r.Block)
	}
}

func TestHTTPDownAfterOpen(t *testing.T) {
	t.Parallel()
	peer := newHTTPPeer(t, "http-test")
	ts := open(t, httpConfig(peer.url(), ""), Options{ConnectTimeout: 2 * time.Second})
	if r := run1(t, ts, "echo", `{"message": "x"}`); r.IsError {
		t.Fatalf("echo = %s", r.Block)
	}
	peer.kill() // connection refused from now on
	r := run1(t, ts, "echo", `{"message": "x"}`)
	got := text(t, r)
	if !r.IsError || !strings.Contains(got, `MCP server "remote"`) {
		t.Errorf("echo with the server gone = %s, want an error naming the server", r.Block)
	}
	t.Logf("message: %s", got)
}

func TestHTTPSessionResume(t *testing.T) {
	t.Parallel()
	peer := newHTTPPeer(t, "http-test")
	config := httpConfig(peer.url(), "")

	// The first process keeps its session open for the next one.
	ts1 := open(t, config, Options{KeepSessions: true})
	if r := run1(t, ts1, "echo", `{"message": "one"}`); r.IsError {
		t.Fatalf("echo = %s", r.Block)
	}
	sess := ts1.Sessions()["remote"]
	if sess.ID == "" || sess.ProtocolVersion == "" {
		t.Fatalf("Sessions() = %v, want a session for remote", ts1.Sessions())
	}
	ts1.Close()

	// The second process continues it: no new initialize, same ID.
	ts2 := open(t, config, Options{ResumeSessions: map[string]Session{"remote": sess}})
	if r := run1(t, ts2, "echo", `{"message": "two"}`); text(t, r) != "http-test: two" {
		t.Fatalf("echo on resumed session = %s", r.Block)
	}
	if got := ts2.Sessions()["remote"]; got != sess {
		t.Errorf("resumed session = %v, want %v", got, sess)
	}
	ts2.Close() // no KeepSessions: ends the session

	var inits, deletes int
	for _, r := range peer.sent() {
		if r.rpc == "initialize" {
			inits++
		}
		if r.method == "DELETE" {
			deletes++
			if got := r.header.Get("Mcp-Session-Id"); got != sess.ID {
				t.Errorf("DELETE of session %q, want %q", got, sess.ID)
			}
		}
		if r.rpc == "tools/call" && r.header.Get("Mcp-Session-Id") != sess.ID {
			t.Errorf("tools/call in session %q, want %q", r.header.Get("Mcp-Session-Id"), sess.ID)
		}
	}
	if inits != 1 || deletes != 1 {
		t.Errorf("server saw %d initialize and %d DELETE, want 1 and 1", inits, deletes)
	}
}

func TestHTTPSessionRenewed(t *testing.T) {
	t.Parallel()
	peer := newHTTPPeer(t, "http-test")
	config := httpConfig(peer.url(), "")

	t.Run("unknown at open", func(t *testing.T) {
		stale := Session{ID: "no-such-session", ProtocolVersion: "2025-11-25"}
		ts := open(t, config, Options{ResumeSessions: map[string]Session{"remote": stale}})
		if r := run1(t, ts, "echo", `{"message": "fresh"}`); text(t, r) != "http-test: fresh" {
			t.Fatalf("echo = %s", r.Block)
		}
		if got := ts.Sessions()["remote"]; got.ID == "" || got.ID == stale.ID {
			t.Errorf("session = %v, want a new one", got)
		}
	})

	t.Run("expires while open", func(t *testing.T) {
		ts := open(t, config, Options{})
		before := ts.Sessions()["remote"]
		for ss := range peer.srv.Sessions() {
			if ss.ID() == before.ID {
				ss.Close() // the server forgets the session
			}
		}
		if r := run1(t, ts, "echo", `{"message": "again"}`); text(t, r) != "http-test: again" {
			t.Fatalf("echo after the session expired = %s", r.Block)
		}
		if after := ts.Sessions()["remote"]; after.ID == "" || after.ID == before.ID {
			t.Errorf("session after expiry = %v, want a new one (was %v)", after, before)
		}
	})
}

func TestSecretsRedactedFromErrors(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-very-secret"
	lookup := func(k string) (string, bool) { return secret, true }
	cfg, err := parseConfig([]byte(`{"mcpServers": {"remote": {"url": "http://127.0.0.1:1/mcp?key=${KEY}", "headers": {"Authorization": "Bearer ${KEY}"}}}}`), lookup)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ts, err := Open(context.Background(), cfg, Options{Logger: slogTo(&logs), ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	s := ts.servers[0]
	_, err = s.connection(context.Background())
	if err == nil {
		t.Fatal("connected to port 1")
	}
	msg := s.describe(context.Background(), &unavailableError{err}, "echo")
	if strings.Contains(msg, secret) || strings.Contains(logs.String(), secret) {
		t.Errorf("secret leaked:\nmessage: %s\nlogs: %s", msg, logs.String())
	}
	if !strings.Contains(msg, "[REDACTED]") {
		t.Logf("message: %s", msg)
	}
	if got := fmt.Sprint(cfg.Servers["remote"]); strings.Contains(got, secret) {
		t.Errorf("ServerConfig prints its secret: %s", got)
	}
}

func TestCloseDuringDial(t *testing.T) {
	t.Parallel()
	var up atomic.Bool
	stalled := make(chan struct{}, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable) // down at Open
			return
		}
		select {
		case stalled <- struct{}{}:
		default:
		}
		io.Copy(io.Discard, r.Body) // so that net/http notices the client leaving
		<-r.Context().Done()        // then hangs
	}))
	t.Cleanup(hs.Close)
	ts := open(t, httpConfig(hs.URL, ""), Options{RedialDelay: time.Millisecond})
	up.Store(true)
	waitFor(t, "a background reconnect to hang", func() bool {
		ts.Definitions()
		select {
		case <-stalled:
			return true
		default:
			return false
		}
	})
	start := time.Now()
	ts.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v while a connect hung; want it to cancel the connect", d)
	}
}

// TestHTTPHeadersOnRedirect checks that configured headers follow a
// redirect only to the configured server's origin, as net/http does for
// Authorization: a server that redirects elsewhere must not hand our bearer
// token to another host (see #13).
func TestHTTPHeadersOnRedirect(t *testing.T) {
	t.Setenv("MCPTEST_TOKEN", "s3cret-token-value")
	tests := []struct {
		name     string
		sameHost bool
		want     string // Authorization the MCP server sees
	}{
		{"same origin keeps headers", true, "Bearer s3cret-token-value"},
		{"other origin drops headers", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			peer := newHTTPPeer(t, "http-test")
			var front *httptest.Server
			var redirected atomic.Int32
			redirect := func(w http.ResponseWriter, r *http.Request) {
				redirected.Add(1)
				w.Header().Set("Location", peer.url())
				w.WriteHeader(http.StatusTemporaryRedirect)
			}
			if tc.sameHost {
				// One server: /old redirects to /mcp, which is the peer.
				front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/old" {
						http.Redirect(w, r, "/mcp", http.StatusTemporaryRedirect)
						redirected.Add(1)
						return
					}
					peer.serve(w, r)
				}))
			} else {
				front = httptest.NewServer(http.HandlerFunc(redirect))
			}
			t.Cleanup(front.Close)
			ts := open(t, httpConfig(front.URL+"/old", `, "headers": {"Authorization": "Bearer ${MCPTEST_TOKEN}", "X-Team": "blue"}`), Options{})
			if got := text(t, run1(t, ts, "echo", `{"message": "via redirect"}`)); got != "http-test: via redirect" {
				t.Fatalf("echo = %q", got)
			}
			if redirected.Load() == 0 {
				t.Fatal("no request was redirected")
			}
			sent := peer.sent()
			if len(sent) == 0 {
				t.Fatal("the MCP server saw no request")
			}
			for _, r := range sent {
				if got := r.header.Get("Authorization"); got != tc.want {
					t.Errorf("%s %s: Authorization = %q, want %q", r.method, r.rpc, got, tc.want)
				}
				if got, want := r.header.Get("X-Team") != "", tc.want != ""; got != want {
					t.Errorf("%s %s: X-Team sent = %v, want %v", r.method, r.rpc, got, want)
				}
			}
		})
	}
}

// Two processes continuing one stored session call at once: go-sdk numbers
// each client's requests from 1, so without an id space of their own the
// server would see the same request id twice in one session and refuse
// the second ("duplicate in-flight request ID").
func TestHTTPSharedSessionConcurrentCalls(t *testing.T) {
	t.Parallel()
	peer := newHTTPPeer(t, "http-test")
	config := httpConfig(peer.url(), "")
	ts1 := open(t, config, Options{KeepSessions: true})
	if r := run1(t, ts1, "echo", `{"message": "one"}`); r.IsError {
		t.Fatalf("echo = %s", r.Block)
	}
	sess := ts1.Sessions()["remote"]
	ts2 := open(t, config, Options{KeepSessions: true, ResumeSessions: map[string]Session{"remote": sess}})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	results := make([]Result, 8)
	for i := range results {
		ts := ts1
		if i%2 == 1 {
			ts = ts2
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = ts.Call(ctx, Call{ID: fmt.Sprintf("toolu_%d", i), Name: "sleep", Input: json.RawMessage(`{"ms": 300}`)})
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.IsError {
			t.Errorf("call %d on the shared session failed: %s", i, r.Block)
		}
	}
	if got := ts2.Sessions()["remote"]; got.ID != sess.ID {
		t.Errorf("second process's session = %q, want the shared %q", got.ID, sess.ID)
	}
}

func TestIDSpaceRoundTrip(t *testing.T) {
	s := newIDSpace(nil)
	req := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}`)
	out := s.out(req)
	if bytes.Contains(out, []byte(`"id":7`)) || !bytes.Contains(out, []byte(s.space+"7")) {
		t.Fatalf("out(%s) = %s, want the id in the space", req, out)
	}
	resp := []byte(`{"jsonrpc":"2.0","id":"` + s.space + `7","result":{}}`)
	if got := s.in(resp); !bytes.Contains(got, []byte(`"id":7`)) {
		t.Errorf("in(%s) = %s, want id 7", resp, got)
	}
	for _, m := range []string{
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
		`{"jsonrpc":"2.0","id":"other-7","result":{}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"ping"}]`,
		`not json`,
	} {
		if got := s.in(s.out([]byte(m))); string(got) != m {
			t.Errorf("%s came back as %s", m, got)
		}
	}
}

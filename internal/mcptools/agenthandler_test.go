package mcptools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

func TestAgentHandler(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	history := map[string][]string{}
	ask := func(ctx context.Context, sessionID, message string, _ ProgressFunc) (string, error) {
		switch message {
		case "fail":
			return "", fmt.Errorf("run turn: %w", &apierr.Error{Kind: apierr.RateLimited, Message: "the agent is over its rate limit; retry in 10s"})
		case "leak":
			return "", errors.New("dial redis://:hunter2@10.0.0.7:6379: refused")
		}
		mu.Lock()
		defer mu.Unlock()
		history[sessionID] = append(history[sessionID], message)
		return fmt.Sprintf("%s heard: %s", sessionID, strings.Join(history[sessionID], ", ")), nil
	}
	hs := httptest.NewServer(NewAgentHandler(ask, AgentHandlerOptions{Description: "Answers questions about llamas."}))
	t.Cleanup(hs.Close)

	// Call it the way another agent would: through a Toolset.
	ts := open(t, httpConfig(hs.URL+"/mcp", ""), Options{})
	if diff := cmp.Diff([]string{"ask_agent"}, toolNames(t, ts)); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
	if !strings.Contains(string(ts.Definitions()), "Answers questions about llamas.") {
		t.Errorf("definitions lack the description: %s", ts.Definitions())
	}
	if got := ts.Sessions(); len(got) != 0 {
		t.Errorf("stateless handler gave sessions %v", got)
	}

	tests := []struct {
		name, input string
		wantErr     bool
		want        string
	}{
		{"first", `{"session_id": "s1", "message": "hello"}`, false, "s1 heard: hello"},
		{"same session", `{"session_id": "s1", "message": "again"}`, false, "s1 heard: hello, again"},
		{"other session", `{"session_id": "s2", "message": "hi"}`, false, "s2 heard: hi"},
		{"ask fails", `{"session_id": "s1", "message": "fail"}`, true, "the agent is over its rate limit; retry in 10s"},
		// The cause of a failure is logged, never sent: only apierr's
		// client-safe message.
		{"ask fails inside", `{"session_id": "s1", "message": "leak"}`, true, "internal error"},
		{"empty message", `{"session_id": "s1", "message": ""}`, true, "must not be empty"},
		{"missing session_id", `{"message": "hi"}`, true, "session_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run1(t, ts, "ask_agent", tc.input)
			if r.IsError != tc.wantErr {
				t.Errorf("IsError = %v, want %v: %s", r.IsError, tc.wantErr, r.Block)
			}
			if got := text(t, r); !strings.Contains(got, tc.want) {
				t.Errorf("text = %q, want it to contain %q", got, tc.want)
			} else if strings.Contains(got, "hunter2") {
				t.Errorf("text = %q holds the cause", got)
			}
		})
	}
}

// /mcp facing a hostile client (see #13): other origins, oversized bodies
// and malformed ids are refused with a JSON error before the SDK or a log
// sees them, and a failure's cause never reaches the client.
func TestAgentHandlerHostile(t *testing.T) {
	t.Parallel()
	var asked sync.Map
	ask := func(ctx context.Context, sessionID, message string, _ ProgressFunc) (string, error) {
		asked.Store(sessionID, true)
		if message == "down" {
			return "", fmt.Errorf("load session: %w", errors.New("dial tcp 127.0.0.1:6379: connect: connection refused"))
		}
		return "ok", nil
	}
	var logs strings.Builder
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	hs := httptest.NewServer(NewAgentHandler(ask, AgentHandlerOptions{Logger: log, MaxBodyBytes: 1024}))
	t.Cleanup(hs.Close)

	call := func(sessionID, message string) string {
		b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
			"params": map[string]any{"name": AgentToolName, "arguments": map[string]string{"session_id": sessionID, "message": message}}})
		return string(b)
	}
	longID := strings.Repeat("i", 300)
	tests := []struct {
		name   string
		body   string
		hdr    map[string]string
		status int
		// want is in the body: the JSON error type, or the tool's text.
		want    string
		isError bool
	}{
		{name: "plain call", body: call("s1", "hi"), status: 200, want: `"text":"ok"`},
		{name: "same origin", body: call("s1", "hi"), hdr: map[string]string{"Origin": hs.URL}, status: 200, want: `"text":"ok"`},
		{name: "other origin", body: call("s1", "hi"), hdr: map[string]string{"Origin": "http://attacker.example"}, status: 403, want: `"type":"forbidden"`},
		{name: "cross-site fetch", body: call("s1", "hi"), hdr: map[string]string{"Sec-Fetch-Site": "cross-site"}, status: 403, want: `"type":"forbidden"`},
		{name: "body over the limit", body: call("s1", strings.Repeat("x", 2000)), status: 413, want: "1024"},
		{name: "long Mcp-Session-Id", body: call("s1", "hi"), hdr: map[string]string{"Mcp-Session-Id": longID}, status: 400, want: `"type":"invalid_request"`},
		{name: "space in Mcp-Session-Id", body: call("s1", "hi"), hdr: map[string]string{"Mcp-Session-Id": "a b"}, status: 400, want: `"type":"invalid_request"`},
		{name: "Mcp-Session-Id ignored", body: call("s1", "hi"), hdr: map[string]string{"Mcp-Session-Id": "abc-123"}, status: 200, want: `"text":"ok"`},
		{name: "long session_id", body: call(longID, "hi"), status: 200, want: "session_id: session: invalid session id: longer than", isError: true},
		{name: "bad session_id", body: call("a b\nFAKE LOG LINE", "hi"), status: 200, want: "not allowed", isError: true},
		{name: "cause not sent", body: call("s2", "down"), status: 200, want: `"text":"internal error"`, isError: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", hs.URL, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range tc.hdr {
				req.Header[k] = []string{v}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("got %d %s, want %d with %q", resp.StatusCode, b, tc.status, tc.want)
			}
			if tc.status == 200 && strings.Contains(string(b), `"isError":true`) != tc.isError {
				t.Errorf("isError in %s, want %v", b, tc.isError)
			}
			for _, leak := range []string{"dial tcp", "6379", longID, "FAKE"} {
				if strings.Contains(string(b), leak) {
					t.Errorf("answer %s holds %q", b, leak)
				}
			}
		})
	}
	if _, ok := asked.Load(longID); ok {
		t.Error("an invalid session_id reached the agent")
	}
	logMu.Lock()
	defer logMu.Unlock()
	for _, leak := range []string{longID, "FAKE LOG LINE"} {
		if strings.Contains(logs.String(), leak) {
			t.Errorf("logs hold the invalid id %.40q…:\n%.2000s", leak, logs.String())
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

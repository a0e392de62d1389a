package mcptools

import (
	"context"
	"errors"
	"fmt"
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
	ask := func(ctx context.Context, sessionID, message string) (string, error) {
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

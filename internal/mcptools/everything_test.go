package mcptools

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/mcptools/mcptest"
)

// These tests run a third-party server, the reference
// @modelcontextprotocol/server-everything, pinned in testdata/mcp. It is
// installed on first use with
//
//	npm ci --prefix testdata/mcp
//
// which needs Node.js 20+ and the npm registry. -short skips them.

func TestEverythingStdio(t *testing.T) {
	entry := mcptest.Everything(t)
	// A secret in our environment must not reach third-party servers.
	t.Setenv("MCPTEST_PARENT_SECRET", "do-not-pass-me-on")
	t.Setenv("MCPTEST_GIVEN", "passed-on-by-config")

	ts := open(t, fmt.Sprintf(`{"mcpServers": {
		"everything": {"command": "node", "args": [%q, "stdio"], "env": {"GIVEN": "${MCPTEST_GIVEN}"}},
		"go": %s}}`, entry, mcptest.StdioConfig(t, `, "allowedTools": ["echo"]`)), Options{})

	names := toolNames(t, ts)
	for _, want := range []string{"everything__echo", "go__echo", "get-sum", "get-tiny-image", "get-env"} {
		if !slices.Contains(names, want) {
			t.Errorf("Definitions lacks %q; has %v", want, names)
		}
	}

	calls := []Call{
		{ID: "echo", Name: "everything__echo", Input: json.RawMessage(`{"message": "hello"}`)},
		{ID: "sum", Name: "get-sum", Input: json.RawMessage(`{"a": 2, "b": 3}`)},
		{ID: "bad-sum", Name: "get-sum", Input: json.RawMessage(`{"a": "two"}`)},
		{ID: "go", Name: "go__echo", Input: json.RawMessage(`{"message": "hi"}`)},
		{ID: "image", Name: "get-tiny-image", Input: json.RawMessage(`{}`)},
		{ID: "structured", Name: "get-structured-content", Input: json.RawMessage(`{"location": "Chicago"}`)},
		{ID: "links", Name: "get-resource-links", Input: json.RawMessage(`{"count": 2}`)},
		{ID: "env", Name: "get-env", Input: json.RawMessage(`{}`)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rs := runAll(ctx, ts, calls)
	for i, r := range rs {
		if r.ToolUseID != calls[i].ID {
			t.Fatalf("result %d answers %q, want %q", i, r.ToolUseID, calls[i].ID)
		}
	}

	tests := []struct {
		id       string
		wantErr  bool
		contains []string
	}{
		{"echo", false, []string{"Echo: hello"}},
		{"sum", false, []string{"The sum of 2 and 3 is 5."}},
		{"bad-sum", true, []string{"a"}},
		{"go", false, []string{"stdio-test: hi"}},
		{"image", false, nil},
		{"structured", false, []string{"temperature"}},
		{"links", false, []string{"[resource link: "}},
		{"env", false, []string{"passed-on-by-config", `"PATH"`}},
	}
	for i, tc := range tests {
		t.Run(tc.id, func(t *testing.T) {
			r := rs[i]
			if r.IsError != tc.wantErr {
				t.Errorf("IsError = %v, want %v: %s", r.IsError, tc.wantErr, r.Block)
			}
			got := text(t, r)
			for _, w := range tc.contains {
				if !strings.Contains(got, w) {
					t.Errorf("text %q lacks %q", got, w)
				}
			}
			if strings.Contains(got, "do-not-pass-me-on") {
				t.Error("the server saw a variable of our environment it was not given")
			}
		})
	}

	var img map[string]any
	for _, c := range decode(t, rs[4]).Content {
		if c["type"] == "image" {
			img = c["source"].(map[string]any)
		}
	}
	if img == nil || img["type"] != "base64" || img["media_type"] != "image/png" || len(img["data"].(string)) < 20 {
		t.Errorf("get-tiny-image gave no PNG image block: %s", rs[4].Block)
	}
}

func TestEverythingHTTP(t *testing.T) {
	entry := mcptest.Everything(t)
	url := mcptest.StartEverythingHTTP(t, entry)
	config := httpConfig(url, "")

	ts1 := open(t, config, Options{KeepSessions: true})
	rs := runAll(context.Background(), ts1, []Call{
		{ID: "1", Name: "echo", Input: json.RawMessage(`{"message": "over http"}`)},
		{ID: "2", Name: "get-sum", Input: json.RawMessage(`{"a": 40, "b": 2}`)},
	})
	if got := text(t, rs[0]); got != "Echo: over http" {
		t.Errorf("echo = %s", rs[0].Block)
	}
	if got := text(t, rs[1]); got != "The sum of 40 and 2 is 42." {
		t.Errorf("get-sum = %s", rs[1].Block)
	}
	sess := ts1.Sessions()["remote"]
	if sess.ID == "" {
		t.Fatalf("no session from server-everything: %v", ts1.Sessions())
	}
	ts1.Close()

	t.Run("resume", func(t *testing.T) {
		ts := open(t, config, Options{ResumeSessions: map[string]Session{"remote": sess}})
		if r := run1(t, ts, "echo", `{"message": "resumed"}`); text(t, r) != "Echo: resumed" {
			t.Errorf("echo = %s", r.Block)
		}
		if got := ts.Sessions()["remote"]; got != sess {
			t.Errorf("session = %v, want resumed %v", got, sess)
		}
	})
	t.Run("renew unknown session", func(t *testing.T) {
		stale := Session{ID: "00000000-0000-0000-0000-000000000000", ProtocolVersion: sess.ProtocolVersion}
		ts := open(t, config, Options{ResumeSessions: map[string]Session{"remote": stale}})
		if r := run1(t, ts, "echo", `{"message": "renewed"}`); text(t, r) != "Echo: renewed" {
			t.Errorf("echo = %s", r.Block)
		}
		if got := ts.Sessions()["remote"]; got.ID == stale.ID || got.ID == "" {
			t.Errorf("session = %v, want a new one", got)
		}
	})
}

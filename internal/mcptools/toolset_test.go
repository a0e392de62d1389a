package mcptools

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/mcptools/mcptest"
)

func TestStdioTools(t *testing.T) {
	t.Parallel()
	ts := open(t, `{"mcpServers": {"go": `+mcptest.StdioConfig(t, "")+`}}`, Options{})

	want := []string{"bad_content", "crash", "echo", "fail", "hang", "ns_dotted_v2", "pid", "sleep"}
	got := toolNames(t, ts)
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tool names (-want +got):\n%s", diff)
	}

	tests := []struct {
		name, tool, input string
		wantErr           bool
		wantText          string // substring
	}{
		{"echo", "echo", `{"message": "hi <there>"}`, false, "stdio-test: hi <there>"},
		{"sanitised name", "ns_dotted_v2", `{}`, false, "dotted"},
		{"namespaced alias", "go__echo", `{"message": "alias"}`, false, "stdio-test: alias"},
		{"empty input", "pid", ``, false, ""},
		{"tool error", "fail", `{}`, true, "frobnicator is out of order"},
		{"unknown tool", "nope", `{}`, true, `Unknown tool "nope". Available tools: `},
		{"input not JSON", "echo", `{"message":`, true, "not valid JSON"},
		{"input not object", "echo", `["hi"]`, true, "must be a JSON object"},
		{"input violates schema", "echo", `{"message": 7}`, true, "message"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run1(t, ts, tc.tool, tc.input)
			if r.IsError != tc.wantErr {
				t.Errorf("IsError = %v, want %v; block %s", r.IsError, tc.wantErr, r.Block)
			}
			if got := text(t, r); !strings.Contains(got, tc.wantText) {
				t.Errorf("text = %q, want it to contain %q", got, tc.wantText)
			}
		})
	}
}

func TestParallelCalls(t *testing.T) {
	t.Parallel()
	ts := open(t, `{"mcpServers": {"go": `+mcptest.StdioConfig(t, "")+`}}`, Options{})
	var calls []Call
	for i := range 5 {
		calls = append(calls, Call{ID: fmt.Sprintf("toolu_%d", i), Name: "sleep", Input: json.RawMessage(`{"ms": 200}`)})
	}
	start := time.Now()
	rs := runAll(context.Background(), ts, calls)
	elapsed := time.Since(start)
	for i, r := range rs {
		if r.ToolUseID != calls[i].ID || r.IsError || text(t, r) != "slept" {
			t.Errorf("result %d = %s, want slept for %s", i, r.Block, calls[i].ID)
		}
	}
	// Concurrent calls to one stdio server must not queue behind each
	// other: sequential calls would take 1s; allow generous slack for a
	// loaded machine and the race detector.
	if elapsed > 700*time.Millisecond {
		t.Errorf("5 parallel 200ms calls took %v, want well under 1s", elapsed)
	}
	t.Logf("5 parallel 200ms calls took %v", elapsed)
}

func TestFailureModes(t *testing.T) {
	t.Parallel()
	// hang comes from a server with a short timeout; the other tools from
	// one with the default, so a loaded machine does not fail them.
	ts := open(t, `{"mcpServers": {
		"go": `+mcptest.StdioConfig(t, `, "allowedTools": ["crash", "bad_content", "echo", "pid"]`)+`,
		"slow": `+mcptest.StdioConfig(t, `, "allowedTools": ["hang"], "timeout": "300ms"`)+`}}`, Options{})

	pidBefore := text(t, run1(t, ts, "pid", `{}`))
	tests := []struct {
		name, tool string
		wantText   []string
	}{
		{"crash mid-call", "crash", []string{`MCP server "go" stopped during the call to tool "crash"`, "restarted on the next call"}},
		{"hang past timeout", "hang", []string{`Tool "hang" timed out after 300ms`}},
		{"invalid content", "bad_content", []string{`"go"`, `"hologram"`}},
		{"unknown tool", "no_such_tool", []string{`Unknown tool "no_such_tool"`, "echo"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run1(t, ts, tc.tool, `{}`)
			if !r.IsError {
				t.Fatalf("IsError = false, want true; block %s", r.Block)
			}
			got := text(t, r)
			for _, w := range tc.wantText {
				if !strings.Contains(got, w) {
					t.Errorf("text = %q, want it to contain %q", got, w)
				}
			}
			// The server works after each failure (restarted after a crash).
			if r := run1(t, ts, "echo", `{"message": "still here"}`); r.IsError || text(t, r) != "stdio-test: still here" {
				t.Errorf("echo after %s = %s", tc.name, r.Block)
			}
		})
	}
	if pidAfter := text(t, run1(t, ts, "pid", `{}`)); pidAfter == pidBefore {
		t.Errorf("server pid %s unchanged after crash; want a restarted process", pidAfter)
	}
}

func TestCrashWhileOthersRun(t *testing.T) {
	t.Parallel()
	ts := open(t, `{"mcpServers": {"go": `+mcptest.StdioConfig(t, "")+`}}`, Options{})
	rs := runAll(context.Background(), ts, []Call{
		{ID: "slow", Name: "sleep", Input: json.RawMessage(`{"ms": 2000}`)},
		{ID: "boom", Name: "crash"},
	})
	for _, r := range rs {
		if !r.IsError {
			t.Errorf("%s: IsError = false, want true (the server died): %s", r.ToolUseID, r.Block)
		}
	}
	if r := run1(t, ts, "echo", `{"message": "x"}`); r.IsError {
		t.Errorf("echo after crash = %s", r.Block)
	}
}

func TestAllowList(t *testing.T) {
	t.Parallel()
	ts := open(t, `{"mcpServers": {"go": `+mcptest.StdioConfig(t, `, "allowedTools": ["echo", "missing"]`)+`}}`, Options{})
	if diff := cmp.Diff([]string{"echo"}, toolNames(t, ts)); diff != "" {
		t.Errorf("tool names (-want +got):\n%s", diff)
	}
	if r := run1(t, ts, "pid", `{}`); !r.IsError || !strings.Contains(text(t, r), `Unknown tool "pid"`) {
		t.Errorf("calling a tool outside the allow-list = %s, want unknown tool", r.Block)
	}
}

func TestNameCollision(t *testing.T) {
	t.Parallel()
	peer := newHTTPPeer(t, "http-test")
	ts := open(t, fmt.Sprintf(`{"mcpServers": {
		"local": %s,
		"remote": {"url": %q, "allowedTools": ["echo", "sleep"]}}}`,
		mcptest.StdioConfig(t, `, "allowedTools": ["echo", "pid"]`), peer.url()), Options{})

	want := []string{"local__echo", "pid", "remote__echo", "sleep"}
	if diff := cmp.Diff(want, toolNames(t, ts)); diff != "" {
		t.Errorf("tool names (-want +got):\n%s", diff)
	}
	rs := runAll(context.Background(), ts, []Call{
		{ID: "1", Name: "local__echo", Input: json.RawMessage(`{"message": "a"}`)},
		{ID: "2", Name: "remote__echo", Input: json.RawMessage(`{"message": "b"}`)},
		{ID: "3", Name: "echo", Input: json.RawMessage(`{"message": "c"}`)},
	})
	wantText := []string{"stdio-test: a", "http-test: b", `Unknown tool "echo"`}
	for i, r := range rs {
		if got := text(t, r); !strings.Contains(got, wantText[i]) {
			t.Errorf("call %d: text %q, want %q", i, got, wantText[i])
		}
	}
}

func TestDefinitionsCached(t *testing.T) {
	t.Parallel()
	ts := open(t, `{"mcpServers": {"go": `+mcptest.StdioConfig(t, "")+`}}`, Options{})
	a, b := ts.Definitions(), ts.Definitions()
	if &a[0] != &b[0] {
		t.Error("Definitions rebuilt without a change")
	}
	var defs []map[string]any
	if err := json.Unmarshal(a, &defs); err != nil {
		t.Fatal(err)
	}
	for _, d := range defs {
		if d["name"] == "echo" {
			want := map[string]any{
				"name":        "echo",
				"description": "echoes the message",
				"input_schema": map[string]any{
					"type":                 "object",
					"required":             []any{"message"},
					"properties":           map[string]any{"message": map[string]any{"type": "string"}},
					"additionalProperties": false,
				},
			}
			if diff := cmp.Diff(want, d); diff != "" {
				t.Errorf("echo definition (-want +got):\n%s", diff)
			}
		}
	}
}

func TestOpenFailsOnBadStdioServer(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig([]byte(`{"mcpServers": {"nope": {"command": "/nonexistent/mcp-server"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), cfg, Options{Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Open = %v, want an error naming server nope", err)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	ts := open(t, `{"mcpServers": {"go": `+mcptest.StdioConfig(t, "")+`}}`, Options{})
	pid, err := strconv.Atoi(text(t, run1(t, ts, "pid", `{}`)))
	if err != nil {
		t.Fatal(err)
	}
	ts.Close()
	if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
		t.Errorf("server process %d still exists after Close (kill 0: %v)", pid, err)
	}
	r := run1(t, ts, "echo", `{"message": "x"}`)
	if !r.IsError || !strings.Contains(text(t, r), "shutting down") {
		t.Errorf("call after Close = %s", r.Block)
	}
	ts.Close() // idempotent
}

func TestRedialDelay(t *testing.T) {
	tests := []struct {
		failures int
		min, max time.Duration
	}{
		{1, 750 * time.Millisecond, 1250 * time.Millisecond},
		{2, 1500 * time.Millisecond, 2500 * time.Millisecond},
		{4, 6 * time.Second, 10 * time.Second},
		{100, 45 * time.Second, 75 * time.Second},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.failures), func(t *testing.T) {
			for range 100 {
				if d := redialDelay(time.Second, tc.failures); d < tc.min || d > tc.max {
					t.Fatalf("redialDelay(1s, %d) = %v, want in [%v, %v]", tc.failures, d, tc.min, tc.max)
				}
			}
		})
	}
}

// BenchmarkDefinitions shows the per-turn cost of the tools array: a cached
// slice, not a rebuild.
func BenchmarkDefinitions(b *testing.B) {
	ts := open(b, `{"mcpServers": {"go": `+mcptest.StdioConfig(b, "")+`}}`, Options{})
	for b.Loop() {
		ts.Definitions()
	}
}

// BenchmarkCallParallel makes a reply's worth of tool calls (5, of 200ms
// each) at once against a stdio server: about 200ms per op, not 1s.
func BenchmarkCallParallel(b *testing.B) {
	ts := open(b, `{"mcpServers": {"go": `+mcptest.StdioConfig(b, "")+`}}`, Options{})
	calls := make([]Call, 5)
	for i := range calls {
		calls[i] = Call{ID: fmt.Sprint(i), Name: "sleep", Input: json.RawMessage(`{"ms": 200}`)}
	}
	for b.Loop() {
		for _, r := range runAll(context.Background(), ts, calls) {
			if r.IsError {
				b.Fatal(string(r.Block))
			}
		}
	}
}

func TestCloseDuringCall(t *testing.T) {
	t.Parallel()
	ts := open(t, `{"mcpServers": {"go": `+mcptest.StdioConfig(t, `, "timeout": "1m"`)+`}}`, Options{})
	done := make(chan Result)
	go func() { done <- run1(t, ts, "hang", `{}`) }()
	time.Sleep(300 * time.Millisecond) // let the call reach the server
	start := time.Now()
	ts.Close()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v with a call hanging", d)
	}
	r := <-done
	if !r.IsError || !strings.Contains(text(t, r), "shutting down") {
		t.Errorf("call cut by Close = %s", r.Block)
	}
}

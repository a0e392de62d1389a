package mcptools

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run a third-party server, the reference
// @modelcontextprotocol/server-everything, pinned in testdata/mcp. It is
// installed on first use with
//
//	npm ci --prefix testdata/mcp
//
// which needs Node.js 20+ and the npm registry. -short skips them.

// everythingVersion is the version pinned in testdata/mcp/package-lock.json.
const everythingVersion = "2026.8.31"

var (
	everythingOnce sync.Once
	everythingErr  error
)

// everythingEntry returns the path of server-everything's dist/index.js,
// installing the package if needed.
func everythingEntry(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping tests against @modelcontextprotocol/server-everything")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: the tests against @modelcontextprotocol/server-everything need Node.js 20+ (or run go test -short)")
	}
	dir, err := filepath.Abs("../../testdata/mcp")
	if err != nil {
		t.Fatal(err)
	}
	pkg := filepath.Join(dir, "node_modules", "@modelcontextprotocol", "server-everything")
	everythingOnce.Do(func() {
		if installedVersion(pkg) == everythingVersion {
			return
		}
		cmd := exec.Command("npm", "ci", "--prefix", dir, "--no-audit", "--no-fund")
		if out, err := cmd.CombinedOutput(); err != nil {
			everythingErr = fmt.Errorf("installing the test MCP server failed; run `npm ci --prefix testdata/mcp` from the repository root: %v\n%s", err, out)
			return
		}
		if v := installedVersion(pkg); v != everythingVersion {
			everythingErr = fmt.Errorf("npm ci --prefix testdata/mcp installed server-everything %q, want %s", v, everythingVersion)
		}
	})
	if everythingErr != nil {
		t.Fatal(everythingErr)
	}
	return filepath.Join(pkg, "dist", "index.js")
}

func installedVersion(pkg string) string {
	data, err := os.ReadFile(filepath.Join(pkg, "package.json"))
	if err != nil {
		return ""
	}
	var p struct {
		Version string `json:"version"`
	}
	json.Unmarshal(data, &p)
	return p.Version
}

func TestEverythingStdio(t *testing.T) {
	entry := everythingEntry(t)
	// A secret in our environment must not reach third-party servers.
	t.Setenv("MCPTEST_PARENT_SECRET", "do-not-pass-me-on")
	t.Setenv("MCPTEST_GIVEN", "passed-on-by-config")

	ts := open(t, fmt.Sprintf(`{"mcpServers": {
		"everything": {"command": "node", "args": [%q, "stdio"], "env": {"GIVEN": "${MCPTEST_GIVEN}"}},
		"go": %s}}`, entry, stdioServer(t, `, "allowedTools": ["echo"]`)), Options{})

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
	rs := ts.Run(ctx, calls)
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
	entry := everythingEntry(t)
	url := startEverythingHTTP(t, entry)
	config := httpConfig(url, "")

	ts1 := open(t, config, Options{KeepSessions: true})
	rs := ts1.Run(context.Background(), []Call{
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

// startEverythingHTTP runs server-everything in Streamable HTTP mode on a
// free port and returns its endpoint.
func startEverythingHTTP(t testing.TB, entry string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	cmd := exec.Command("node", entry, "streamableHttp")
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port))
	listening := make(chan struct{})
	cmd.Stderr = &watchWriter{want: "listening on port", seen: listening}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	select {
	case <-listening:
	case <-time.After(30 * time.Second):
		t.Fatal("server-everything did not start listening in 30s")
	}
	return fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
}

// A watchWriter closes seen once want has been written to it.
type watchWriter struct {
	want string
	seen chan struct{}

	mu   sync.Mutex // guards buf and done
	buf  strings.Builder
	done bool
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.buf.Write(p)
		if strings.Contains(w.buf.String(), w.want) {
			w.done = true
			close(w.seen)
		}
	}
	return len(p), nil
}

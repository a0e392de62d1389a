// Package mcptest runs the MCP servers the tests use as real peers, shared
// by the tests of the MCP package and of whole turns:
//
//   - the third-party @modelcontextprotocol/server-everything, pinned in
//     testdata/mcp (package-lock.json), installed with npm ci on first use
//     ([Everything], [StartEverythingHTTP]);
//   - a go-sdk server of our own whose tools can crash it, hang or send
//     content MCP does not have, run over stdio by the test binary itself
//     ([RunStdioServerIfAsked], [StdioConfig]) or served over HTTP by the
//     test ([NewServer]).
package mcptest

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the version pinned in testdata/mcp/package-lock.json.
const Version = "2026.8.31"

var (
	everythingOnce sync.Once
	everythingErr  error
)

// Everything returns the path of server-everything's dist/index.js,
// installing the package if needed.
func Everything(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping tests against @modelcontextprotocol/server-everything")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node not found: the tests against @modelcontextprotocol/server-everything need Node.js 20+ (or run go test -short)")
	}
	dir := testdataDir(t)
	pkg := filepath.Join(dir, "node_modules", "@modelcontextprotocol", "server-everything")
	everythingOnce.Do(func() {
		if installedVersion(pkg) == Version {
			return
		}
		cmd := exec.Command("npm", "ci", "--prefix", dir, "--no-audit", "--no-fund")
		if out, err := cmd.CombinedOutput(); err != nil {
			everythingErr = fmt.Errorf("installing the test MCP server failed; run `npm ci --prefix testdata/mcp` from the repository root: %v\n%s", err, out)
			return
		}
		if v := installedVersion(pkg); v != Version {
			everythingErr = fmt.Errorf("npm ci --prefix testdata/mcp installed server-everything %q, want %s", v, Version)
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

// testdataDir is the repository's testdata/mcp, found from this file's
// place so that tests in any package can use it.
func testdataDir(t testing.TB) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("mcptest: cannot locate its own source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "mcp")
}

// StartEverythingHTTP runs server-everything in Streamable HTTP mode on a
// free port and returns its endpoint.
func StartEverythingHTTP(t testing.TB, entry string) string {
	t.Helper()
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

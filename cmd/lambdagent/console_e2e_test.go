package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/mcptools/mcptest"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// screenshots makes TestConsoleBrowser write its screenshots to
// docs/console, where the README shows them.
var screenshots = flag.Bool("screenshots", false, "write the console's screenshots to docs/console")

// chromium is Debian's Chromium, which scripts/install-test-deps installs.
const chromium = "/usr/bin/chromium"

// playwrightVersion is the playwright-core pinned in
// testdata/console/package-lock.json.
const playwrightVersion = "1.65.2"

var (
	playwrightOnce sync.Once
	playwrightErr  error
)

// installPlaywright installs the pinned playwright-core into
// testdata/console/node_modules, when it is not there yet.
func installPlaywright(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "testdata", "console"))
	if err != nil {
		t.Fatal(err)
	}
	playwrightOnce.Do(func() {
		pkg := filepath.Join(dir, "node_modules", "playwright-core", "package.json")
		var p struct{ Version string }
		if b, err := os.ReadFile(pkg); err == nil && json.Unmarshal(b, &p) == nil && p.Version == playwrightVersion {
			return
		}
		// --ignore-scripts: playwright-core downloads no browser anyway;
		// the test drives Debian's.
		out, err := exec.Command("npm", "ci", "--prefix", dir, "--no-audit", "--no-fund", "--ignore-scripts").CombinedOutput()
		if err != nil {
			playwrightErr = fmt.Errorf("installing playwright-core failed; run `npm ci --prefix testdata/console`: %v\n%s", err, out)
		}
	})
	if playwrightErr != nil {
		t.Fatal(playwrightErr)
	}
	return dir
}

// TestConsoleBrowser drives the console (see #18) in headless Chromium
// against `lambdagent dev` on Redis with API keys on, a real MCP server
// (server-everything over stdio), a workflow (testdata/console/
// approval.yaml) and a slow simulator: a wrong key is refused with a
// visible message; a message sent with Enter streams in (part of the
// answer shows before the turn ends), its tool calls show as they start
// and end, and a connection cut mid-answer resumes with Last-Event-ID;
// a workflow run started on the runs page waits for its event, which the
// page sends, and completes with its steps' outputs and cost; another is
// canceled; the runs list filters by status; the admin token picks a
// tenant on Sessions and Usage; the session shows
// the tool calls folded with their results, the turn's tokens, cost,
// latency and request id; the list, search and delete (Esc cancels);
// the tools with their state; the usage chart. testdata/console/e2e.mjs
// holds the steps. It runs in CI: without Chromium it fails and says how
// to install it; -short skips it.
func TestConsoleBrowser(t *testing.T) {
	entry := mcptest.Everything(t) // skips under -short
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s is missing: run scripts/install-test-deps (apt-get install chromium), or go test -short", chromium)
	}
	dir := installPlaywright(t)

	// On Redis: the admin token keeps its state there, so dev takes it
	// only with REDIS_URL.
	redisAddr := redistest.Start(t)
	env := []string{"REDIS_URL=" + redistest.URL(redisAddr), "LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t)}
	key, _ := createKey(t, env, "console")
	mcp := fmt.Sprintf(`{"mcpServers": {"everything": {"command": "node", "args": [%q, "stdio"]}}}`, entry)
	flows, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "console", "approval.yaml"))
	// The simulator spreads each reply over 1.5 s, so that the page can be
	// seen showing an answer before its turn ends.
	const adminToken = "console-admin-token-0123456789"
	p := start(t, "dev", append(env, "LAMBDAGENT_AUTH=key", "LAMBDAGENT_MCP_CONFIG="+mcp,
		"LAMBDAGENT_WORKFLOWS="+flows, "LAMBDAGENT_SIM_LATENCY=1500ms", "LAMBDAGENT_ADMIN_TOKEN="+adminToken,
		"LAMBDAGENT_CONSOLE=", "LAMBDAGENT_CONSOLE_ADDR=127.0.0.1:0", "LAMBDAGENT_LOG_LEVEL=info")...)
	url := ""
	re := regexp.MustCompile(`console: (http://127\.0\.0\.1:\d+/console/)`)
	for deadline := time.Now().Add(10 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("dev printed no console URL:\n%s", p.out)
		}
	}

	shots := t.TempDir()
	if *screenshots {
		shots, _ = filepath.Abs(filepath.Join("..", "..", "docs", "console"))
	}
	cmd := exec.Command("node", filepath.Join(dir, "e2e.mjs"))
	cmd.Env = append(os.Environ(), "CONSOLE_URL="+url, "API_KEY="+key, "ADMIN_TOKEN="+adminToken, "CHROMIUM="+chromium, "SHOTS="+shots)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the browser test failed: %v\n%s\nlambdagent dev's output:\n%s", err, out, p.out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
	for _, name := range []string{"login-refused", "chat", "chat-streaming", "session", "sessions", "tools", "usage", "runs", "run-waiting", "run"} {
		if fi, err := os.Stat(filepath.Join(shots, name+".png")); err != nil || fi.Size() < 5000 {
			t.Errorf("screenshot %s.png: %v (size %v); want a picture of the page", name, err, fi)
		}
	}
	// Neither key reached a log.
	if strings.Contains(p.out.String(), key) || strings.Contains(p.out.String(), adminToken) {
		t.Error("lambdagent dev logged the API key or the admin token")
	}
}

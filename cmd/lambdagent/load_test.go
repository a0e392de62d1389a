package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/loadgen"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// lambdagent runs the built binary with args and the given environment,
// and returns its output and exit code.
func runLambdagent(t *testing.T, stdin string, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), 0
	case <-time.After(50 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("lambdagent %v did not finish in 50s; output:\n%s", args, out.String())
		return "", -1
	}
}

// TestLoadAgainstDev is the README's load run: `lambdagent load` against
// `lambdagent dev` with a fresh database, 200 sessions × 10 turns, no
// history violation.
func TestLoadAgainstDev(t *testing.T) {
	p := start(t, "dev", "LAMBDAGENT_DB="+filepath.Join(t.TempDir(), "dev.db"))
	out, code := runLambdagent(t, "", nil, "load", "-sessions", "200", "-turns", "10", "http://"+p.addr)
	t.Logf("lambdagent load:\n%s", out)
	if code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	for _, want := range []string{
		"load: 200 sessions × 10 turns against http://" + p.addr + "/agent",
		"turns       2000 answered, 0 failed",
		"latency     min ",
		"p99 ",
		"errors      none",
		"history     0 violations (200 sessions read back through the session API, 2000 answers' echoes)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	if strings.Contains(out, "\r") {
		t.Errorf("progress line printed although stdout is not a terminal")
	}

	// The JSON report feeds `lambdagent cost`.
	js, code := runLambdagent(t, "", nil, "load", "-json", "-sessions", "3", "-turns", "4", "-model-latency", "1ms", "http://"+p.addr+"/agent")
	if code != 0 {
		t.Fatalf("load -json: exit code %d; output:\n%s", code, js)
	}
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("load -json: %v\n%s", err, js)
	}
	if rep.Turns != 12 || rep.History.Method != "session_api+echo" || rep.History.Violations != 0 || rep.ModelLatMS != 1 || rep.TokensPerTurn.Output == 0 {
		t.Errorf("JSON report %+v", rep)
	}
	out, code = runLambdagent(t, js, nil, "cost", "-report", "-", "-redis-commands", "2")
	if code != 0 || !strings.Contains(out, "model claude-sonnet-5-5") || !strings.Contains(out, "claude output (") || !strings.Contains(out, "seed article claims $0.08") {
		t.Errorf("cost -report -: exit code %d; output:\n%s", code, out)
	}
}

// TestLoadCold measures cold starts of `lambdagent dev`.
func TestLoadCold(t *testing.T) {
	addr := freeAddr(t)
	env := []string{"LAMBDAGENT_ADDR=" + addr, "LAMBDAGENT_DB=" + filepath.Join(t.TempDir(), "cold.db"), "LAMBDAGENT_LOG_LEVEL=warn"}
	out, code := runLambdagent(t, "", env, "load", "-cold", "3", "-json", "http://"+addr, binary, "dev")
	if code != 0 {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
	var rep loadgen.ColdReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.StartToTurn.Count != 3 || rep.StartToTurn.Min <= 0 || rep.PeakRSSKiB <= 0 {
		t.Errorf("cold report %+v", rep)
	}
}

func TestLoadUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no URL", []string{"load"}, 2, "no URL given"},
		{"bad flag", []string{"load", "-sessionz", "3", "http://x"}, 2, "flag provided but not defined"},
		{"command without -cold", []string{"load", "http://127.0.0.1:1", "lambdagent", "dev"}, 2, "needs -cold"},
		{"cold without command", []string{"load", "-cold", "2", "http://127.0.0.1:1"}, 2, "no server command"},
		{"bad URL", []string{"load", "127.0.0.1:1"}, 1, "bad configuration: URL"},
		{"server down", []string{"load", "-sessions", "2", "-turns", "2", "-retries", "0", "http://127.0.0.1:1"}, 1, "2 turns failed"},
		{"help", []string{"load", "-h"}, 0, "-history-check"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := runLambdagent(t, "", nil, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit code %d, want %d; output (want %q):\n%s", code, tc.code, tc.want, out)
			}
		})
	}
}

// keyServer starts `lambdagent serve` in mode key on a fresh Redis and the
// simulator, and returns it and a key of the default tenant.
func keyServer(t *testing.T) (*proc, string) {
	t.Helper()
	redisAddr := redistest.Start(t)
	simSrv := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(simSrv.Close)
	store := []string{"REDIS_URL=" + redistest.URL(redisAddr), "LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t)}
	key, _ := createKey(t, store, "default")
	env := append([]string{"ANTHROPIC_API_KEY=test-key", "ANTHROPIC_BASE_URL=" + simSrv.URL, "LAMBDAGENT_AUTH=key"}, store...)
	return start(t, "serve", env...), key
}

// TestLoadKey runs `lambdagent load` against a server in mode key: with
// the key (-key or LAMBDAGENT_API_KEY) the run succeeds; without it, or
// with a wrong one, it fails saying what to fix, and the key is never
// printed.
func TestLoadKey(t *testing.T) {
	p, key := keyServer(t)
	url := "http://" + p.addr
	wrong := "lga_" + strings.Repeat("a", 12) + key[len("lga_")+12:]
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"flag", nil, []string{"-key", key}, 0, "history     0 violations"},
		{"environment", []string{"LAMBDAGENT_API_KEY=" + key}, nil, 0, "history     0 violations"},
		{"none", nil, nil, 1, "the server wants an API key: pass -key or set LAMBDAGENT_API_KEY"},
		{"wrong", nil, []string{"-key", wrong}, 1, "the key was refused"},
		{"wrong in environment", []string{"LAMBDAGENT_API_KEY=" + wrong}, nil, 1, "the key was refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"load", "-sessions", "3", "-turns", "3"}, tc.args...), url)
			out, code := runLambdagent(t, "", tc.env, args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit code %d, want %d; output (want %q):\n%s", code, tc.code, tc.want, out)
			}
			if strings.Contains(out, key[len("lga_")+13:]) || strings.Contains(out, wrong[len("lga_")+13:]) {
				t.Errorf("output shows a key:\n%s", out)
			}
		})
	}
	// -h shows where the key comes from, not the key.
	out, _ := runLambdagent(t, "", []string{"LAMBDAGENT_API_KEY=" + key}, "load", "-h")
	if !strings.Contains(out, "$LAMBDAGENT_API_KEY") || strings.Contains(out, key[len("lga_")+13:]) {
		t.Errorf("load -h:\n%s", out)
	}
}

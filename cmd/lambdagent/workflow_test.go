package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cli runs the lambdagent binary with args against the server at addr.
func cli(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	args = append(args[:1:1], append([]string{"-url", "http://" + addr}, args[1:]...)...)
	out, err := exec.Command(binary, append([]string{"workflow"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestWorkflowCLI drives a run of `lambdagent dev` (embedded stores,
// simulator) with the workflow commands: validate, start, get, signal,
// list and cancel.
func TestWorkflowCLI(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "approve.yaml")
	os.WriteFile(def, []byte(`name: approve
steps:
  - {id: ask, prompt: "may I {{.input.what}}?"}
  - {id: ok, wait_for_event: {event: approval}}
`), 0o600)
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"name":"bad","steps":[{"id":"a","prompt":"{{.steps.zz.output}}"}]}`), 0o600)

	if out, err := exec.Command(binary, "workflow", "validate", def).CombinedOutput(); err != nil || !strings.Contains(string(out), `workflow "approve": ok`) {
		t.Errorf("validate good: %v\n%s", err, out)
	}
	out, err := exec.Command(binary, "workflow", "validate", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `bad.json: step "a": prompt: unknown step reference .steps.zz`) {
		t.Errorf("validate bad: %v\n%s", err, out)
	}

	p := start(t, "dev", "LAMBDAGENT_WORKFLOWS="+def, "LAMBDAGENT_DB="+filepath.Join(dir, "s.db"))
	started, err := cli(t, p.addr, "start", "-input", `{"what":"deploy"}`, "approve")
	if err != nil {
		t.Fatalf("start: %v\n%s", err, started)
	}
	var run struct {
		RunID  string `json:"run_id"`
		Status string `json:"status"`
		Output json.RawMessage
	}
	json.Unmarshal([]byte(started), &run)
	wait := func(status string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			out, err := cli(t, p.addr, "get", run.RunID)
			json.Unmarshal([]byte(out), &run)
			if err == nil && run.Status == status {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("run not %s: %v\n%s\nserver:\n%s", status, err, out, p.out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("waiting")
	if out, err := cli(t, p.addr, "signal", "-body", `{"ok":true}`, run.RunID, "approval"); err != nil {
		t.Fatalf("signal: %v\n%s", err, out)
	}
	wait("completed")
	var compact bytes.Buffer
	json.Compact(&compact, run.Output)
	if compact.String() != `{"ok":true}` {
		t.Errorf("output = %s", run.Output)
	}
	if out, err := cli(t, p.addr, "list", "-status", "completed"); err != nil || !strings.Contains(out, run.RunID) {
		t.Errorf("list: %v\n%s", err, out)
	}
	if out, err := cli(t, p.addr, "cancel", run.RunID); err == nil || !strings.Contains(out, "already ended") {
		t.Errorf("cancel of a completed run: %v\n%s", err, out)
	}
	if out, err := cli(t, p.addr, "get", "run_nope"); err == nil || !strings.Contains(out, "not_found") {
		t.Errorf("get unknown: %v\n%s", err, out)
	}
}

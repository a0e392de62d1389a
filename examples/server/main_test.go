package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// TestExampleServer builds and runs this example against the simulator,
// asks for a turn that calls its Go tool, and stops it with SIGTERM: it
// answers with the tool's result and exits cleanly.
func TestExampleServer(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "server")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "ANTHROPIC_API_KEY=sk-ant-example", "ANTHROPIC_BASE_URL="+sim.URL,
		"LAMBDAGENT_DB="+filepath.Join(t.TempDir(), "s.db"), "LAMBDAGENT_ADDR="+addr, "LAMBDAGENT_AUTH=none")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	body := `{"session_id":"s1","message":"What time is it? [[tool current_time {}]]"}`
	var resp *http.Response
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		resp, err = http.Post("http://"+addr+"/agent", "application/json", strings.NewReader(body))
		if err == nil || time.Since(start) > 30*time.Second {
			break
		}
	}
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	var a struct {
		Response string `json:"response"`
	}
	err = json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(a.Response, `current_time={"utc":"`) {
		t.Fatalf("answer %d %+v (%v); want the tool's result", resp.StatusCode, a, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("still running 30s after SIGTERM")
	}
}

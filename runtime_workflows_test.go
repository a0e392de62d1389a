package lambdagent

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// TestRuntimeWorkflows runs a workflow through what New wires: the
// definition file read at startup, the HTTP routes, Serve's background
// workers and, without Redis, the embedded workflow file.
func TestRuntimeWorkflows(t *testing.T) {
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	dir := t.TempDir()
	def := filepath.Join(dir, "hello.yaml")
	os.WriteFile(def, []byte("name: hello\nsteps:\n  - {id: greet, prompt: 'hello {{.input.who}}'}\n"), 0o600)
	rt, err := New(t.Context(), Options{APIKey: "k", BaseURL: sim.URL, DBPath: filepath.Join(dir, "s.db"), Auth: "none",
		Workflows: def, WorkflowWorkers: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go rt.Serve(t.Context(), ln)
	base := "http://" + ln.Addr().String()

	resp, err := http.Post(base+"/v1/workflows/hello/runs", "application/json", strings.NewReader(`{"input":{"who":"lambda"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		RunID string `json:"run_id"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || created.RunID == "" {
		t.Fatalf("start: %d %+v", resp.StatusCode, created)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/v1/runs/" + created.RunID)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var run struct {
			Status string
			Output string
		}
		json.Unmarshal(body, &run)
		if run.Status == "completed" {
			if !strings.Contains(run.Output, "hello lambda") {
				t.Errorf("run: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not complete: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The worker counts the run just after its commit: give it a moment.
	for _, want := range []string{
		`lambdagent_workflow_runs_total{outcome="completed",workflow="hello"} 1`,
		`lambdagent_workflow_steps_total{kind="prompt",outcome="completed",workflow="hello"} 1`,
	} {
		var metrics []byte
		for range 100 {
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(metrics), want) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

func TestRuntimeRefusesBadWorkflow(t *testing.T) {
	dir := t.TempDir()
	def := filepath.Join(dir, "bad.yaml")
	os.WriteFile(def, []byte("name: bad\nsteps:\n  - {id: a, tool: nope}\n"), 0o600)
	_, err := New(t.Context(), Options{APIKey: "k", BaseURL: "http://127.0.0.1:1", DBPath: filepath.Join(dir, "s.db"), Auth: "none",
		Workflows: def, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), `bad.yaml: step "a": unknown tool "nope"`) {
		t.Errorf("New = %v", err)
	}
}

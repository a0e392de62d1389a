package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestKilledWorkflowWorkerIsTakenOver SIGKILLs a serve process while a
// workflow run it advances is in its second step: "charge" has returned
// and its step is committed, "slow" is still running. Another serve
// process takes the run over when the dead one's lease expires and
// completes it: charge is not called again (counted at the MCP server),
// slow, which never returned, is.
func TestKilledWorkflowWorkerIsTakenOver(t *testing.T) {
	peer := newMCPPeer(t, "shop")
	redisAddr := redistest.Start(t)
	dir := t.TempDir()
	def := filepath.Join(dir, "order.yaml")
	os.WriteFile(def, []byte(`name: order
steps:
  - {id: pay, tool: charge, input: {amount: "{{.input.amount}}"}}
  - {id: wait, tool: slow}
  - {id: note, tool: echo, input: {message: "{{.steps.pay.output}} then {{.steps.wait.output}}"}}
`), 0o600)
	env := append(serveEnv(t, redisAddr, peer.url()), "LAMBDAGENT_WORKFLOWS="+def)

	p1 := start(t, "serve", env...)
	resp, err := http.Post("http://"+p1.addr+"/v1/workflows/order/runs", "application/json", strings.NewReader(`{"input":{"amount":5}}`))
	if err != nil {
		t.Fatal(err)
	}
	var created struct {
		RunID string `json:"run_id"`
	}
	json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start: %d", resp.StatusCode)
	}
	select {
	case <-peer.log.slowed:
	case <-time.After(20 * time.Second):
		t.Fatalf("the slow step never ran; output:\n%s", p1.out)
	}
	p1.kill()

	p2 := start(t, "serve", env...)
	deadline := time.Now().Add(20 * time.Second)
	var body []byte
	for {
		resp, err := http.Get("http://" + p2.addr + "/v1/runs/" + created.RunID)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		var run struct{ Status string }
		json.Unmarshal(body, &run)
		if run.Status == "completed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run not taken over: %s\noutput:\n%s", body, p2.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(string(body), "shop: charged 5 then slept") {
		t.Errorf("run: %s", body)
	}
	if n := peer.log.count("charge"); n != 1 {
		t.Errorf("charge called %d times, want 1", n)
	}
	if n := peer.log.count("slow"); n != 2 {
		t.Errorf("slow called %d times, want 2 (the cut call and the retake)", n)
	}
}

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/lambdafn/rietest"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestExampleUnderEmulator builds this example as a Lambda bootstrap (as
// scripts/lambda/build.sh does) and runs it under the AWS Lambda Runtime
// Interface Emulator, with a real redis-server and the simulator as
// Claude. The simulator is asked to call the example's own Go tool: the
// answer carries the tool's result, and a retried invocation with the same
// idempotency key replays the answer without calling the tool again.
func TestExampleUnderEmulator(t *testing.T) {
	bootstrap := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda,lambda.norpc,grpcnotrace", "-o", bootstrap, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sim := claudesim.New(claudesim.Config{APIKey: "example-key"})
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	addr := redistest.Start(t)
	rie := rietest.Start(t, bootstrap, map[string]string{
		"REDIS_URL":               redistest.URL(addr),
		"LAMBDAGENT_REDIS_PREFIX": redistest.Prefix(t),
		"ANTHROPIC_API_KEY":       "example-key",
		"ANTHROPIC_BASE_URL":      simSrv.URL,
		"LAMBDAGENT_AUTH":         "none", // direct invocations are IAM-authenticated anyway
	}, 30*time.Second)

	turn := []byte(`{"session_id": "support-1", "idempotency_key": "ticket-9",
		"message": "Who is c-42? [[tool fetch_customer_data {\"customer_id\":\"c-42\"}]]"}`)
	first := rie.Invoke(t, turn)
	if first.Status != http.StatusOK {
		t.Fatalf("emulator answered %d: %s", first.Status, first.Payload)
	}
	var a struct {
		Response   string `json:"response"`
		ModelCalls int    `json:"model_calls"`
	}
	if err := json.Unmarshal(first.Payload, &a); err != nil {
		t.Fatalf("answer %s: %v\n%s", first.Payload, err, rie.Logs())
	}
	if !strings.Contains(a.Response, "fetch_customer_data=") || !strings.Contains(a.Response, "Ada Lovelace") || a.ModelCalls != 2 {
		t.Fatalf("answer %+v; want the tool's result (Ada Lovelace) after 2 model calls\n%s", a, rie.Logs())
	}
	again := rie.Invoke(t, turn)
	if string(again.Payload) != string(first.Payload) {
		t.Errorf("repeat answered %s, want the stored answer %s", again.Payload, first.Payload)
	}
	if n := strings.Count(rie.Logs(), `"tool":"fetch_customer_data"`); n != 1 {
		t.Errorf("the tool ran %d times, want once:\n%s", n, rie.Logs())
	}
	if n := sim.Stats().Messages; n != 2 {
		t.Errorf("%d model calls, want 2 (the repeat replays)", n)
	}
}

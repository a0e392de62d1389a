//go:build unix

package lambdafn

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/lambdafn/rietest"
)

// buildBootstrap compiles internal/testfn as a provided.al2023 bootstrap
// is built.
func buildBootstrap(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", out, "./internal/testfn")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build bootstrap: %v\n%s", err, b)
	}
	return out
}

// functionError decodes a failed invocation's {"errorMessage","errorType"}.
func functionError(payload []byte) (typ, msg string) {
	var e struct{ ErrorType, ErrorMessage string }
	_ = json.Unmarshal(payload, &e)
	return e.ErrorType, e.ErrorMessage
}

func v2Event(method, path, body string) []byte {
	b, _ := json.Marshal(map[string]any{
		"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
		"headers":        map[string]string{"host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com", "content-type": "application/json"},
		"requestContext": map[string]any{"domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com", "stage": "$default", "http": map[string]string{"method": method, "path": path, "sourceIp": "203.0.113.9"}},
		"body":           body, "isBase64Encoded": false,
	})
	return b
}

// TestEmulator runs the test bootstrap under the real Runtime Interface
// Emulator and sends it one realistic event per source: the answers are
// the same bytes the in-process tests check.
func TestEmulator(t *testing.T) {
	bootstrap := buildBootstrap(t)
	peer := startSQSPeer(t)
	rie := rietest.Start(t, bootstrap, map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_SESSION_TOKEN": "token", "AWS_ENDPOINT_URL_SQS": peer.URL,
		"LAMBDAGENT_DLQ_URL": emulatorDLQ,
	}, 5*time.Second)
	invoke := func(t *testing.T, payload []byte) []byte {
		t.Helper()
		res := rie.Invoke(t, payload)
		if res.Status != 200 {
			t.Fatalf("emulator answered %d: %s", res.Status, res.Payload)
		}
		return res.Payload
	}

	for _, name := range []string{"apigw-v1-agent", "apigw-v1-echo", "apigw-v1-binary", "apigw-v2-agent", "apigw-v2-echo-stage", "function-url-echo", "function-url-binary"} {
		t.Run(name, func(t *testing.T) {
			a, event := httpCase(t, name)
			var want []byte
			for _, f := range a.Files {
				if f.Name == "response.json" {
					want = f.Data
				}
			}
			var got bytes.Buffer
			if err := json.Indent(&got, invoke(t, event), "", "  "); err != nil {
				t.Fatal(err)
			}
			got.WriteByte('\n')
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("answer differs from response.json (-want +got):\n%s", diff)
			}
		})
	}
	if d, ok := rie.InitDuration(); ok {
		t.Logf("bootstrap init under the emulator: %v", d)
	}

	t.Run("sqs batch twice", func(t *testing.T) {
		batch := readFile(t, "sqs-batch.json")
		for delivery := 1; delivery <= 2; delivery++ {
			var resp struct {
				BatchItemFailures []struct{ ItemIdentifier string } `json:"batchItemFailures"`
			}
			out := invoke(t, batch)
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != "5c8c3e3a-5e3e-4c79-c3d7-4ed08a2a7f32" {
				t.Errorf("delivery %d: %s, want only the busy record", delivery, out)
			}
		}
		replies, dead := 0, 0
		for _, m := range peer.Sent() {
			switch {
			case m.QueueURL == emulatorDLQ && m.Attributes["error"] != "" && m.Attributes["source_message_id"] != "":
				dead++
			case m.QueueURL != emulatorDLQ:
				replies++
			}
		}
		if replies != 4 || dead != 4 {
			t.Errorf("%d replies and %d dead letters with their error sent through the SDK, want 2 and 2 per delivery", replies, dead)
		}
	})

	t.Run("eventbridge twice", func(t *testing.T) {
		for range 2 {
			if out := invoke(t, readFile(t, "eventbridge.json")); !bytes.Contains(out, []byte(`"echo: summarise order 42"`)) {
				t.Errorf("answer %s", out)
			}
		}
	})

	var directID string // the direct invocation's request id, its idempotency key
	t.Run("direct", func(t *testing.T) {
		res := rie.Invoke(t, readFile(t, "invoke.json"))
		if string(res.Payload) != `{"response":"echo: hello from Invoke","session_id":"direct-1"}`+"\n" {
			t.Errorf("answer %s", res.Payload)
		}
		directID = res.RequestID
		typ, msg := functionError(invoke(t, []byte(turnBody("direct-2", "busy"))))
		if typ != "lambdagent.session_busy" || !strings.Contains(msg, "409") {
			t.Errorf("busy turn: errorType %q, errorMessage %q", typ, msg)
		}
		if typ, _ := functionError(invoke(t, []byte(`{"hello":"world"}`))); typ != "lambdagent.unknown_event" {
			t.Errorf("unknown payload: errorType %q", typ)
		}
	})

	// Each turn above ran exactly once, whatever the redeliveries.
	t.Run("runs", func(t *testing.T) {
		var resp struct {
			StatusCode int
			Body       string
		}
		if err := json.Unmarshal(invoke(t, v2Event("GET", "/runs", "")), &resp); err != nil {
			t.Fatal(err)
		}
		var runs map[string]int
		if err := json.Unmarshal([]byte(resp.Body), &runs); err != nil {
			t.Fatalf("%v: %s", err, resp.Body)
		}
		for _, key := range []string{"sqs:059f36b4-87a3-44ab-83d2-661975830a7d", "sqs:2e1424d4-f796-459a-8184-9c92662be6da",
			"sqs:3a6a1c1e-3c1c-4a57-a1b5-2cbe6e0e5d10", "eventbridge:6a7e8feb-b491-4cf7-a9f1-bf3703467718", "invoke:" + directID} {
			if runs[key] != 1 {
				t.Errorf("turn %s ran %d times, want 1 (runs: %v)", key, runs[key], runs)
			}
		}
	})
}

// emulatorDLQ is the dead-letter queue of TestEmulator's function.
const emulatorDLQ = "https://sqs.us-east-1.amazonaws.com/123456789012/lambdagent-dlq"

// TestEmulatorPoison runs the poison-record paths the DLQ-accepting case
// of TestEmulator does not (see #17): a dead-letter queue that refuses
// the send, and none configured. Either way the two malformed records of
// the batch are listed in batchItemFailures, beside the busy one.
func TestEmulatorPoison(t *testing.T) {
	bootstrap := buildBootstrap(t)
	for _, tc := range []struct{ name, dlq string }{
		{"dead-letter send fails", "https://sqs.us-east-1.amazonaws.com/123456789012/missing-dlq"},
		{"no dead-letter queue", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer := startSQSPeer(t)
			rie := rietest.Start(t, bootstrap, map[string]string{
				"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
				"AWS_SESSION_TOKEN": "token", "AWS_ENDPOINT_URL_SQS": peer.URL, "LAMBDAGENT_DLQ_URL": tc.dlq,
			}, 5*time.Second)
			res := rie.Invoke(t, readFile(t, "sqs-batch.json"))
			var resp struct {
				BatchItemFailures []struct{ ItemIdentifier string } `json:"batchItemFailures"`
			}
			if err := json.Unmarshal(res.Payload, &resp); err != nil || res.Status != 200 {
				t.Fatalf("%d %s: %v", res.Status, res.Payload, err)
			}
			var got []string
			for _, f := range resp.BatchItemFailures {
				got = append(got, f.ItemIdentifier)
			}
			want := []string{"4b7b2d2f-4d2d-4b68-b2c6-3dcf7f1f6e21", "5c8c3e3a-5e3e-4c79-c3d7-4ed08a2a7f32", "6d9d4f4b-6f4f-4d8a-d4e8-5fe19b3b8043"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("batchItemFailures (-want +got):\n%s", diff)
			}
			for _, m := range peer.Sent() {
				if m.QueueURL == tc.dlq {
					t.Errorf("a dead letter was accepted: %+v", m)
				}
			}
			if !strings.Contains(rie.Logs(), "can never succeed") {
				t.Errorf("the function did not log the poison records")
			}
		})
	}
}

// TestEmulatorTimeout gives the function a 2s timeout and turns that would
// run for ever: every invocation answers before Lambda's deadline, with a
// clear error, instead of being killed.
func TestEmulatorTimeout(t *testing.T) {
	rie := rietest.Start(t, buildBootstrap(t), nil, 2*time.Second)
	tests := []struct {
		name    string
		payload []byte
		check   func(t *testing.T, payload []byte)
	}{
		{"direct", []byte(turnBody("s1", "slow")), func(t *testing.T, payload []byte) {
			if typ, msg := functionError(payload); typ != "lambdagent.timeout" || !strings.Contains(msg, "504") {
				t.Errorf("errorType %q errorMessage %q, want lambdagent.timeout", typ, msg)
			}
		}},
		{"http api", v2Event("POST", "/agent", turnBody("s2", "slow")), func(t *testing.T, payload []byte) {
			if !bytes.Contains(payload, []byte(`"statusCode":504`)) || !bytes.Contains(payload, []byte(`timeout`)) {
				t.Errorf("answer %s, want a 504 timeout", payload)
			}
		}},
		{"sqs", sqsBatchJSON(t, sqsRecordJSON("slow", turnBody("s3", "slow"), nil), sqsRecordJSON("quick", turnBody("s4", "quick"), nil)),
			func(t *testing.T, payload []byte) {
				if string(payload) != `{"batchItemFailures":[{"itemIdentifier":"slow"}]}` {
					t.Errorf("answer %s, want only the slow record failed", payload)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := rie.Invoke(t, tc.payload)
			if res.Status != 200 || bytes.Contains(res.Payload, []byte("Task timed out")) {
				t.Fatalf("emulator answered %d: %s", res.Status, res.Payload)
			}
			tc.check(t, res.Payload)
			// The deadline less the 500ms margin, never the full 2s.
			if res.Duration < 1400*time.Millisecond || res.Duration >= 2*time.Second {
				t.Errorf("invocation ran %v, want about 1.5s and under 2s", res.Duration)
			}
			t.Logf("ran %v under a 2s timeout", res.Duration)
		})
	}
}

// TestEmulatorWorkflowOutlivesTimeout runs a workflow of five 700ms
// steps under the emulator with a 2s function timeout: no invocation can
// run it whole. Each invocation commits the steps it finishes and hands
// the rest on to the queue (the SQS peer); each hand-off, delivered back
// as an SQS event, continues it, and the run completes across several
// invocations, every step's tool called once per tool_use id but the one
// a deadline cut (called again under the same id).
func TestEmulatorWorkflowOutlivesTimeout(t *testing.T) {
	bootstrap := buildBootstrap(t)
	peer := startSQSPeer(t)
	dir := t.TempDir()
	defs := filepath.Join(dir, "five.yaml")
	steps := "name: five\nsteps:\n"
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		steps += "  - {id: " + id + ", tool: work}\n"
	}
	if err := os.WriteFile(defs, []byte(steps), 0o600); err != nil {
		t.Fatal(err)
	}
	const queue = "https://sqs.us-east-1.amazonaws.com/123456789012/turns"
	calls := filepath.Join(dir, "calls")
	rie := rietest.Start(t, bootstrap, map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_SESSION_TOKEN": "token", "AWS_ENDPOINT_URL_SQS": peer.URL,
		"TESTFN_WORKFLOWS": defs, "TESTFN_RUNS_DB": filepath.Join(dir, "runs.db"), "TESTFN_STEP": "700ms",
		"TESTFN_CALLS": calls, "LAMBDAGENT_WORKFLOW_QUEUE_URL": queue, "LAMBDAGENT_DEADLINE_MARGIN": "300ms",
	}, 2*time.Second)
	invoke := func(payload []byte) []byte {
		t.Helper()
		res := rie.Invoke(t, payload)
		if res.Status != 200 {
			t.Fatalf("emulator answered %d: %s", res.Status, res.Payload)
		}
		if res.Duration > rie.Timeout {
			t.Errorf("an invocation took %v, beyond the %v timeout", res.Duration, rie.Timeout)
		}
		return res.Payload
	}
	start := []byte(`{"workflow":"five","idempotency_key":"outlive-1"}`)
	out := invoke(start)
	if !strings.Contains(string(out), `"status":"running"`) {
		t.Fatalf("first invocation: %s; want the run still running", out)
	}
	invocations := 1
	for i := 0; i < len(peer.Sent()); i++ {
		m := peer.Sent()[i]
		if m.QueueURL != queue || !strings.Contains(m.Body, `"advance"`) {
			t.Fatalf("hand-off %d: %+v", i, m)
		}
		out := invoke(sqsBatchJSON(t, sqsRecordJSON("handoff-"+strconv.Itoa(i), m.Body, nil)))
		if !strings.Contains(string(out), `"batchItemFailures":[]`) {
			t.Fatalf("hand-off %d failed: %s", i, out)
		}
		invocations++
		if invocations > 10 {
			t.Fatal("the run never completed")
		}
	}
	out = invoke(start) // the same key: the same run, now done
	if !strings.Contains(string(out), `"status":"completed"`) {
		t.Fatalf("after %d invocations: %s; want completed", invocations, out)
	}
	if invocations < 3 {
		t.Errorf("%d invocations; a 3.5s workflow under a 2s timeout needs at least 3", invocations)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, id := range strings.Fields(string(b)) {
		ids[id]++
	}
	if len(ids) != 5 {
		t.Errorf("%d distinct tool_use ids, want 5 (one per step): %v", len(ids), ids)
	}
	for id, n := range ids {
		if n > 2 {
			t.Errorf("tool_use id %s called %d times", id, n)
		}
	}
	t.Logf("5 steps of 700ms under a 2s timeout: %d invocations", invocations)
}

package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// One line per turn with the figures the issue lists, and nothing of the
// conversation or the key: not in the log, not in the EMF records, not in
// the spans.
func TestTurnLogLineHasNoSecrets(t *testing.T) {
	const (
		secretMsg  = "my password is Hunter2-SECRET-9f3b"
		secretTool = "tool-secret-Zq81"
	)
	f := newFixture(t, fixtureConfig{
		trace: true,
		tel:   telemetry.Config{Prometheus: true},
	})
	msg := secretMsg + ` [[tool add {"token":"` + secretTool + `"}]]`
	code, body := f.post(t, "sess-42", msg, http.Header{"Idempotency-Key": {"idem-1"}})
	if code != 200 {
		t.Fatalf("turn: %d %s", code, body)
	}
	res := decodeResult(t, body)
	if !strings.Contains(res.Response, secretTool) {
		t.Fatalf("the tool result did not reach the answer, so the test proves little: %q", res.Response)
	}
	if err := f.tel.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	lines := f.turnLines(t)
	if len(lines) != 1 {
		t.Fatalf("%d turn lines, want 1:\n%s", len(lines), f.logs.String())
	}
	got := lines[0]
	want := map[string]any{
		"level": "INFO", "msg": "turn",
		"session_id": "sess-42", "tenant": "default", "turn": 1.0, "model": "claude-sonnet-5-5",
		"outcome": "ok", "stop_reason": "end_turn",
		"model_calls": 2.0, "tool_calls": 1.0, "retries": 0.0,
		"input_tokens": float64(res.Usage.InputTokens), "output_tokens": float64(res.Usage.OutputTokens),
		"cache_read_tokens":  float64(res.Usage.CacheReadInputTokens),
		"cache_write_tokens": float64(res.Usage.CacheCreationInputTokens),
		"cost_usd":           res.Usage.CostUSD, // as the client priced the two model calls
		"request_id":         res.RequestID,
	}
	ignore := cmpopts.IgnoreMapEntries(func(k string, _ any) bool {
		switch k {
		case "time", "duration_ms", "model_ms", "store_ms", "trace_id":
			return true
		}
		return false
	})
	if diff := cmp.Diff(want, got, ignore); diff != "" {
		t.Errorf("turn line (-want +got):\n%s", diff)
	}
	for _, k := range []string{"duration_ms", "model_ms", "store_ms"} {
		if v, _ := got[k].(float64); v <= 0 {
			t.Errorf("%s = %v, want a positive duration", k, got[k])
		}
	}
	if got["duration_ms"].(float64) < got["model_ms"].(float64)+got["store_ms"].(float64) {
		t.Errorf("duration_ms %v is less than model_ms %v + store_ms %v", got["duration_ms"], got["model_ms"], got["store_ms"])
	}
	if tid, _ := got["trace_id"].(string); len(tid) != 32 {
		t.Errorf("trace_id %q", got["trace_id"])
	}

	spans, _ := json.Marshal(f.spans.GetSpans())
	_, metrics := f.get(t, "/metrics")
	everything := map[string]string{"log": f.logs.String(), "EMF": f.emf.String(), "spans": string(spans), "metrics": metrics}
	for where, text := range everything {
		for _, secret := range []string{testAPIKey, "TESTKEY0nly", "Hunter2", "password", secretTool, "idem-1"} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s contains %q", where, secret)
			}
		}
	}
}

// A failed turn logs its error kind at Warn, never the error's message.
func TestFailedTurnLogLine(t *testing.T) {
	f := newFixture(t, fixtureConfig{agent: agent.Config{Busy: agent.Reject}})
	// Another process holds the session's lease.
	if _, err := f.raw.Begin(t.Context(), session.BeginRequest{ID: "s1", LeaseToken: "other", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if code, body := f.post(t, "s1", "hi", nil); code != http.StatusConflict {
		t.Fatalf("turn on a busy session: %d %s", code, body)
	}
	lines := f.turnLines(t)
	if len(lines) != 1 {
		t.Fatalf("%d turn lines, want 1", len(lines))
	}
	l := lines[0]
	if l["level"] != "WARN" || l["outcome"] != "error" || l["error"] != "session_busy" || l["model_calls"] != 0.0 || l["model"] != "unknown" {
		t.Errorf("failed turn line: %v", l)
	}
	if strings.Contains(f.logs.String(), "busy with another turn") {
		t.Errorf("the error's message was logged:\n%s", f.logs.String())
	}
}

type panicTurner struct{}

func (panicTurner) Run(context.Context, agent.Request) (*agent.Answer, error) { panic("boom") }

// A turn that panics is logged and counted as an internal error, and the
// panic goes on.
func TestPanickingTurn(t *testing.T) {
	logs := &lockedBuffer{}
	tel, err := telemetry.New(telemetry.Config{Logger: newJSONLogger(logs), Prometheus: true})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("recovered %v, want the turn's panic", v)
			}
		}()
		telemetry.WrapTurner(panicTurner{}, tel).Run(t.Context(), agent.Request{SessionID: "p"})
	}()
	if !strings.Contains(logs.String(), `"level":"ERROR","msg":"turn"`) || !strings.Contains(logs.String(), `"error":"internal_error"`) {
		t.Errorf("log after a panic:\n%s", logs.String())
	}
	if got := scrape(t, tel.MetricsHandler())[`lambdagent_errors_total{kind="internal_error"}`]; got != 1 {
		t.Errorf("internal errors counted: %v", got)
	}
}

type errTurner struct{ err error }

func (e errTurner) Run(context.Context, agent.Request) (*agent.Answer, error) { return nil, e.err }

// A refusal of the limiter is logged at its own level with its own kind,
// and counted under that kind: before apierr, telemetry had a classifier
// of its own that knew none of them, so a spent budget, a kill switch or
// a full house was an ERROR internal_error (see #12).
func TestFailedTurnKindAndLevel(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantLevel string
		wantKind  string
	}{
		{"budget", &ratelimit.BudgetError{Scope: ratelimit.ScopeTenant, ID: "acme", Unit: "usd", Spent: 5, Limit: 5, RetryAfter: time.Hour},
			"WARN", "budget_exceeded"},
		{"kill switch", fmt.Errorf("run turn: %w", &ratelimit.StoppedError{Scope: ratelimit.ScopeSession, ID: "s1"}), "WARN", "stopped"},
		{"concurrency", &ratelimit.LimitError{Kind: ratelimit.KindConcurrency, Scope: ratelimit.ScopeGlobal, RetryAfter: time.Second},
			"WARN", "too_many_turns"},
		{"token rate", &ratelimit.LimitError{Kind: ratelimit.KindInputTokens, Scope: ratelimit.ScopeModel, Name: "m"}, "WARN", "rate_limited"},
		{"limiter store down", fmt.Errorf("acquire: %w", ratelimit.ErrUnavailable), "ERROR", "store_unavailable"},
		{"busy", &session.BusyError{}, "WARN", "session_busy"},
		{"bad request", fmt.Errorf("%w: empty message", agent.ErrBadRequest), "INFO", "invalid_request"},
		{"canceled", fmt.Errorf("claude: %w", context.Canceled), "INFO", "canceled"},
		{"upstream", &claude.StatusError{Code: 500, Type: "api_error"}, "ERROR", "upstream_error"},
		{"bug", errors.New("boom"), "ERROR", "internal_error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := &lockedBuffer{}
			tel, err := telemetry.New(telemetry.Config{Logger: newJSONLogger(logs), Prometheus: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := telemetry.WrapTurner(errTurner{tc.err}, tel).Run(t.Context(), agent.Request{SessionID: "s1"}); !errors.Is(err, tc.err) {
				t.Fatalf("Run = %v, want the turn's error", err)
			}
			lines := logs.lines(t)
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1:\n%s", len(lines), logs.String())
			}
			got := map[string]any{"level": lines[0]["level"], "error": lines[0]["error"], "outcome": lines[0]["outcome"]}
			want := map[string]any{"level": tc.wantLevel, "error": tc.wantKind, "outcome": "error"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("turn line (-want +got):\n%s", diff)
			}
			m := scrape(t, tel.MetricsHandler())
			if got := m[`lambdagent_errors_total{kind="`+tc.wantKind+`"}`]; got != 1 {
				t.Errorf("errors counted under %s: %v; metrics: %v", tc.wantKind, got, m)
			}
			if tc.wantKind != "internal_error" && m[`lambdagent_errors_total{kind="internal_error"}`] != 0 {
				t.Errorf("counted as internal_error: %v", m)
			}
		})
	}
}

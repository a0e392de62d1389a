package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/telemetry"
)

func TestReadyHandler(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close() // nothing listens there any more

	secretErr := errors.New("dial tcp 10.1.2.3:6379: connection refused")
	tests := []struct {
		name       string
		checks     map[string]telemetry.Pinger
		wantStatus int
		wantChecks map[string]string
	}{
		{"all up", map[string]telemetry.Pinger{
			"store": telemetry.StorePinger(f.raw),
			"model": telemetry.HTTPPinger(f.simURL, nil),
		}, 200, map[string]string{"store": "ok", "model": "ok"}},
		{"model unreachable", map[string]telemetry.Pinger{
			"store": telemetry.StorePinger(f.raw),
			"model": telemetry.HTTPPinger(downURL, nil),
		}, 503, map[string]string{"store": "ok", "model": "unavailable"}},
		{"store down", map[string]telemetry.Pinger{
			"store": telemetry.PingFunc(func(context.Context) error { return secretErr }),
		}, 503, map[string]string{"store": "unavailable"}},
		{"check hangs", map[string]telemetry.Pinger{
			"store": telemetry.PingFunc(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }),
			"model": telemetry.HTTPPinger(f.simURL, nil),
		}, 503, map[string]string{"store": "unavailable", "model": "ok"}},
		{"check panics", map[string]telemetry.Pinger{
			"store": telemetry.PingFunc(func(context.Context) error { panic("broken check") }),
		}, 503, map[string]string{"store": "unavailable"}},
		{"no checks", nil, 200, map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := f.tel.ReadyHandler(tc.checks, 200*time.Millisecond)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			if rec.Code != tc.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			var body struct {
				Status string            `json:"status"`
				Checks map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			wantStatus := "ok"
			if tc.wantStatus != 200 {
				wantStatus = "unavailable"
			}
			if body.Status != wantStatus {
				t.Errorf("status field %q, want %q", body.Status, wantStatus)
			}
			if diff := cmp.Diff(tc.wantChecks, body.Checks); diff != "" {
				t.Errorf("checks (-want +got):\n%s", diff)
			}
			if strings.Contains(rec.Body.String(), "10.1.2.3") || strings.Contains(rec.Body.String(), "broken") {
				t.Errorf("a cause reached the client: %s", rec.Body)
			}
		})
	}
	if !strings.Contains(f.logs.String(), "10.1.2.3") {
		t.Errorf("the cause of a failed check was not logged:\n%s", f.logs.String())
	}

	// Through the fixture's API, with a closed store.
	if code, body := f.get(t, "/readyz"); code != 200 {
		t.Errorf("GET /readyz: %d %s", code, body)
	}
	f.raw.Close()
	if code, body := f.get(t, "/readyz"); code != 503 || !strings.Contains(body, `"store":"unavailable"`) {
		t.Errorf("GET /readyz with the store closed: %d %s", code, body)
	}
	rec := httptest.NewRecorder()
	f.tel.ReadyHandler(nil, 0).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/readyz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz: %d", rec.Code)
	}
}

func TestTracingFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr string
	}{
		{"nothing set: off", nil, false, ""},
		{"endpoint: on", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:4318"}, true, ""},
		{"traces endpoint: on", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true, ""},
		{"exporter otlp: on", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, ""},
		{"exporter none wins", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, false, ""},
		{"sdk disabled wins", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false, ""},
		{"http/protobuf ok", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, ""},
		{"grpc refused", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}, false, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, "OTEL_TRACES_EXPORTER"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := telemetry.TracingFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("TracingFromEnv = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// New builds the real OTLP exporter from the standard variables without
// connecting anywhere; spans that cannot be delivered are dropped, and
// Shutdown gives up when its context ends.
func TestNewWithOTLP(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1") // nothing listens
	t.Setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "100")
	tel, err := telemetry.New(telemetry.Config{Tracing: true})
	if err != nil {
		t.Fatal(err)
	}
	if !tel.Tracing() {
		t.Fatal("tracing off")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	_ = tel.Shutdown(ctx) // an export error is expected; a hang is not
	if ctx.Err() != nil {
		t.Error("Shutdown hung on an unreachable collector")
	}
	if _, err := telemetry.New(telemetry.Config{Namespace: "bad namespace!"}); err == nil {
		t.Error("a namespace with spaces was accepted")
	}
}

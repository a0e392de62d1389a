package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// cannedReply is a realistic reply (an omitted thinking block with its
// signature, then text), as in the agent's BenchmarkTurn.
var cannedReply = []byte(`{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-5-5","content":[{"type":"thinking","thinking":"","signature":"` +
	strings.Repeat("A", 344) + `"},{"type":"text","text":"Tomorrow in Zürich: light rain in the afternoon, 9 °C. Take the umbrella."}],` +
	`"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1200,"output_tokens":40,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`)

// discardExporter drops spans after the SDK has built them, so the figure
// includes everything tracing costs in-process but the network.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []trace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                          { return nil }

// BenchmarkTurnObserved measures what observability adds to a turn: the
// same turn (embedded store on tmpfs where there is one, the real Claude
// client over real HTTP to a server answering a fixed reply at once) bare,
// with logs + EMF + Prometheus, and with tracing on top.
//
//	go test ./internal/telemetry -run '^$' -bench TurnObserved -benchtime 2s
func BenchmarkTurnObserved(b *testing.B) {
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("request-id", "req_bench")
		_, _ = w.Write(cannedReply)
	}))
	defer model.Close()
	client, err := claude.New(claude.Config{APIKey: "k", BaseURL: model.URL})
	if err != nil {
		b.Fatal(err)
	}
	// bbolt syncs every commit; on a disk that fsync would drown the
	// difference being measured.
	dir := b.TempDir()
	if shm, err := os.MkdirTemp("/dev/shm", "telemetry-bench-"); err == nil {
		dir = shm
		defer os.RemoveAll(shm)
	}
	configs := []struct {
		name string
		cfg  *telemetry.Config // nil: no telemetry at all
	}{
		{"off", nil},
		{"logs+emf+prometheus", &telemetry.Config{EMF: io.Discard, Prometheus: true}},
		{"logs+emf+prometheus+tracing", &telemetry.Config{EMF: io.Discard, Prometheus: true, SpanExporter: discardExporter{}}},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			st, err := filestore.Open(filepath.Join(dir, strings.ReplaceAll(c.name, "+", "_")+".db"), filestore.Config{})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var tel *telemetry.Telemetry
			if c.cfg != nil {
				cfg := *c.cfg
				cfg.Logger = newJSONLogger(io.Discard)
				if tel, err = telemetry.New(cfg); err != nil {
					b.Fatal(err)
				}
				defer tel.Shutdown(context.Background())
			}
			a, err := agent.New(telemetry.WrapStore(st, tel), telemetry.WrapModel(client, tel), nil, agent.Config{})
			if err != nil {
				b.Fatal(err)
			}
			turner := telemetry.WrapTurner(a, tel)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := range b.N {
				// A fresh session per turn keeps the history (and so the
				// store's work) the same for every iteration.
				if _, err := turner.Run(ctx, agent.Request{SessionID: fmt.Sprintf("b-%d", i), Message: "What is the weather in Zürich tomorrow?"}); err != nil {
					b.Fatal(err)
				}
			}
			// Wall time on a shared machine is noisy; the process's CPU
			// time per turn (the model server's included, the same in
			// every case) shows the cost better.
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/turn")
		})
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package httpapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/stacktest"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// firstText records when the simulator writes its first text_delta.
type firstText struct {
	http.ResponseWriter
	at *atomic.Int64 // unix ns; zero until then
}

func (f firstText) Write(p []byte) (int, error) {
	if f.at.Load() == 0 && bytes.Contains(p, []byte(`"text_delta"`)) {
		f.at.Store(time.Now().UnixNano())
	}
	return f.ResponseWriter.Write(p)
}

func (f firstText) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// BenchmarkStreamFirstByte measures, through the whole stack over HTTP,
// the time from the simulator writing Claude's first text delta to the
// client reading the first text_delta event (see #15): what lambdagent
// adds to the time to first token. The simulator streams each reply over
// 200 ms.
func BenchmarkStreamFirstByte(b *testing.B) {
	sim := claudesim.New(claudesim.Config{Latency: 200 * time.Millisecond})
	var at atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sim.ServeHTTP(firstText{w, &at}, r)
	}))
	b.Cleanup(up.Close)
	srv := stacktest.Start(b, stacktest.Options{SimURL: up.URL, Retry: retry.Policy{Attempts: 1},
		HTTP: httpapi.Config{Streams: stream.NewMemory(0)}}).URL
	var gaps []time.Duration
	i := 0
	for b.Loop() {
		i++
		at.Store(0)
		req, _ := http.NewRequest("POST", srv+"/agent", strings.NewReader(fmt.Sprintf(`{"session_id":"b%d","message":"time to first byte","stream":true}`, i)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var got time.Time
		err = stream.ReadSSE(resp.Body, func(ev stream.Event) error {
			if ev.Name == stream.TextDelta && got.IsZero() {
				got = time.Now()
			}
			return nil
		})
		resp.Body.Close()
		if err != nil || got.IsZero() || at.Load() == 0 {
			b.Fatalf("no text delta (%v)", err)
		}
		gaps = append(gaps, got.Sub(time.Unix(0, at.Load())))
	}
	slices.Sort(gaps)
	b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(gaps[len(gaps)*99/100].Microseconds())/1000, "p99-ms")
}

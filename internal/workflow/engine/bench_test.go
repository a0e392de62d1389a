package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/workflow"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
	"github.com/lambdagent/lambdagent/internal/workflow/redisrun"
)

// stamps is a tool that does nothing but note when each call began:
// the gap between two calls is everything a tool step costs but the
// tool (render, dispatch, the checkpoint's round trip, the lease).
type stamps struct {
	mu sync.Mutex
	at []time.Time
}

func (s *stamps) Definitions() json.RawMessage { return nil }
func (s *stamps) Call(_ context.Context, c agent.ToolCall) json.RawMessage {
	s.mu.Lock()
	s.at = append(s.at, time.Now())
	s.mu.Unlock()
	return json.RawMessage(`{"type":"tool_result","tool_use_id":"` + c.ID + `","content":[{"type":"text","text":"{\"ok\":true}"}]}`)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkToolStep runs a 1000-step workflow of tool steps on Redis and
// reports the median overhead of a step (p50-step-µs) and, to show it is
// flat with length, the median of steps 1-20 (first20-µs) and of steps
// 981-1000 (last20-µs).
//
//	go test -run '^$' -bench ToolStep -benchtime 5x ./internal/workflow/engine/
func BenchmarkToolStep(b *testing.B) {
	const n = 1000
	rdb := redistest.Client(b, redistest.Start(b))
	store, err := redisrun.New(rdb, redisrun.Config{Prefix: redistest.Prefix(b)})
	if err != nil {
		b.Fatal(err)
	}
	d := &workflow.Definition{Name: "long"}
	for i := range n {
		d.Steps = append(d.Steps, workflow.Step{ID: fmt.Sprintf("s%d", i), Tool: "noop", Input: json.RawMessage(`{"i":1}`)})
	}
	if err := d.Validate(workflow.ValidateOptions{}); err != nil {
		b.Fatal(err)
	}
	tool := &stamps{}
	e, err := engine.New(engine.Config{Store: store, Definitions: []*workflow.Definition{d}, Tools: tool})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var all, first, last []time.Duration
	b.ResetTimer()
	for range b.N {
		tool.at = tool.at[:0]
		r, _, err := e.Start(ctx, "", "long", nil, "")
		if err != nil {
			b.Fatal(err)
		}
		if id, _ := store.Next(ctx, 0); id != r.StoreID {
			b.Fatalf("queue gave %q", id)
		}
		if err := e.Advance(ctx, r.StoreID); err != nil {
			b.Fatal(err)
		}
		if len(tool.at) != n {
			b.Fatalf("%d tool calls, want %d", len(tool.at), n)
		}
		for i := 1; i < n; i++ {
			gap := tool.at[i].Sub(tool.at[i-1])
			all = append(all, gap)
			if i <= 20 {
				first = append(first, gap)
			}
			if i >= n-20 {
				last = append(last, gap)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(median(all).Microseconds()), "p50-step-µs")
	b.ReportMetric(float64(median(first).Microseconds()), "first20-µs")
	b.ReportMetric(float64(median(last).Microseconds()), "last20-µs")
	b.ReportMetric(0, "ns/op")
}

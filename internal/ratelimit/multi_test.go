package ratelimit_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestInstancesShareLimit runs four independent instances (each its own
// Redis client, Limiter, Claude client, store, agent and HTTP server)
// against one simulator and one Redis, with a limit of 10,000 input
// tokens per window, and clients hammering every instance. The simulator
// counts the input tokens it received per minute of its clock: no minute
// may hold more than the limit, and every client must get turns through.
//
// To take seconds rather than minutes, time is scaled 30×: the limiter's
// window is 2 s, and the simulator's clock runs 30 times faster than the
// real one (from the same monotonic reading), so that its minutes are the
// limiter's windows. Both clocks derive from time.Since(start), so they
// agree exactly. This is real time, not synctest: the point is real
// concurrency between instances, and nothing asserts a duration.
func TestInstancesShareLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for 8 s")
	}
	const (
		limit     = 10_000
		window    = 2 * time.Second
		scale     = int64(time.Minute / window)
		instances = 4
		clients   = 3 // per instance
		run       = 4 * window
	)
	start := time.Now()
	simEpoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	simNow := func() time.Time { return simEpoch.Add(time.Duration(scale) * time.Since(start)) }
	limNow := func() time.Time { return start.Add(time.Since(start)).Round(0) } // monotonic-based wall time
	sim, url := startSim(t, claudesim.Config{Now: simNow, MaxRecorded: -1})
	addr := redistest.Start(t)

	var ins []*instance
	for range instances {
		ins = append(ins, newInstance(t, addr, url, instanceConfig{limits: ratelimit.Config{
			Window:  window,
			Model:   ratelimit.Limits{InputTokens: limit},
			MaxWait: window,
			Now:     limNow,
		}}))
	}

	// Each turn opens a new session with a ~1.6 KB message (about 440
	// tokens estimated), so requests stay the same size.
	msg := strings.Repeat("lorem ipsum ", 130)
	var wg sync.WaitGroup
	done := make([]atomic.Int64, instances*clients)
	var limited atomic.Int64
	stop := time.Now().Add(run)
	for i := range instances * clients {
		in := ins[i%instances]
		wg.Go(func() {
			for n := 0; time.Now().Before(stop); n++ {
				r := post(t, in.url, "/agent", fmt.Sprintf(`{"session_id":"c%d-%d","message":%q}`, i, n, msg))
				switch r.status {
				case 200:
					done[i].Add(1)
				case 429:
					limited.Add(1)
					time.Sleep(time.Duration(rand.N(50)) * time.Millisecond)
				default:
					t.Errorf("client %d: status %d %v", i, r.status, r.body)
					return
				}
			}
		})
	}
	wg.Wait()

	st := sim.Stats()
	var most int
	for _, m := range st.Minutes {
		in := m.InputTokens + m.CacheCreationInputTokens
		most = max(most, in)
		if in > limit {
			t.Errorf("simulator minute %s received %d input tokens, over the limit of %d", m.Start.Format("15:04"), in, limit)
		}
	}
	if most < limit/2 {
		t.Errorf("the busiest minute held %d input tokens: the test did not reach the limit of %d", most, limit)
	}
	var total int64
	for i := range done {
		n := done[i].Load()
		total += n
		if n == 0 {
			t.Errorf("client %d (instance %d) got no turn through: starved", i, i%instances)
		}
	}
	t.Logf("%d turns in %v (%d answered 429 after waiting); per simulator minute (= %v): %s",
		total, run, limited.Load(), window, minutes(st))
}

func minutes(st claudesim.Stats) string {
	var b strings.Builder
	for _, m := range st.Minutes {
		fmt.Fprintf(&b, "%d/%d ", m.Messages, m.InputTokens+m.CacheCreationInputTokens)
	}
	return b.String()
}

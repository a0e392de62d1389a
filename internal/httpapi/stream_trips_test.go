package httpapi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
	"github.com/lambdagent/lambdagent/internal/stacktest"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// A streamed turn costs a bounded number of Redis round trips: the
// turn's own two (Begin, Commit), the stream's open, turn_start and
// close, and at most one per batch interval while Claude writes, not one
// per token (see #15). The figure is the README's.
func TestStreamRoundTrips(t *testing.T) {
	addr := redistest.Start(t)
	c := &redistest.Counter{}
	rdb := redistest.Client(t, addr)
	rdb.AddHook(c)
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	log, err := stream.NewRedis(rdb, stream.RedisConfig{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	const latency = time.Second // spread over the reply's events
	srv := stacktest.Start(t, stacktest.Options{Sim: claudesim.Config{Latency: latency}, Retry: retry.Policy{Attempts: 1},
		Store: st, HTTP: httpapi.Config{Streams: log}}).URL
	msg := strings.Repeat("a long answer streams in many deltas; ", 30)
	// A first turn warms what a process does once: connections, script
	// loads.
	check(t, doSSE(t, srv, "POST", "/agent", `{"session_id":"warm","message":"hi","stream":true}`).events, 1)
	time.Sleep(300 * time.Millisecond)
	var r sseReply
	var elapsed time.Duration
	trips, cmds, _, _ := c.Measure(func() {
		begin := time.Now()
		r = doSSE(t, srv, "POST", "/agent", fmt.Sprintf(`{"session_id":"rt","message":%q,"stream":true}`, msg))
		elapsed = time.Since(begin)
		time.Sleep(300 * time.Millisecond) // the writer's last batch, after turn_end went out
	})
	check(t, r.events, 1)
	deltas := 0
	for _, ev := range r.events {
		if ev.Name == stream.TextDelta {
			deltas++
		}
	}
	// Open, Begin, turn_start, Commit, close, and one per interval
	// (rounded up).
	bound := 5 + int(elapsed/stream.DefaultInterval) + 1
	if trips > bound || deltas < 20 {
		t.Errorf("%d round trips for a turn of %d events (%d text deltas) in %v; want at most %d: %v", trips, len(r.events), deltas, elapsed, bound, cmds)
	}
	t.Logf("%d Redis round trips for a streamed turn of %d events (%d text deltas) over %v", trips, len(r.events), deltas, elapsed.Round(time.Millisecond))
}

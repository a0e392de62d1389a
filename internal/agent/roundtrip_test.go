package agent_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// tripCounter is a go-redis hook counting round trips: one per command,
// or per pipeline, the client sends.
type tripCounter struct {
	mu   sync.Mutex
	cmds []string // guarded by mu; a pipeline is its commands joined by "+"
}

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.add(cmd.Name())
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		name := ""
		for i, cmd := range cmds {
			if i > 0 {
				name += "+"
			}
			name += cmd.Name()
		}
		c.add(name)
		return next(ctx, cmds)
	}
}

func (c *tripCounter) add(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cmds = append(c.cmds, name)
}

// take returns the round trips counted since the last take.
func (c *tripCounter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.cmds
	c.cmds = nil
	return got
}

// warmScripts runs turns of msg until the store's scripts are loaded
// where the measured turns will run: the first turn against a server
// loads them (EVALSHA answered NOSCRIPT, then EVAL), once per script per
// server, which on a cluster is per master, so the turns spread over 16
// sessions (slots).
func warmScripts(t *testing.T, a *agent.Agent, msg string) {
	t.Helper()
	for i := range 16 {
		if _, err := a.Run(t.Context(), agent.Request{SessionID: fmt.Sprintf("warm-up-%d", i), Message: msg, IdempotencyKey: "w"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRedisRoundTrips counts what a whole uncontended turn costs in Redis
// round trips, lease and idempotency record included: Begin and Commit,
// one EVALSHA each, and a repeat of an answered request one Begin.
func TestRedisRoundTrips(t *testing.T) {
	f := newRedisFixture(t, claudesim.Config{})
	c := &tripCounter{}
	f.rdb.AddHook(c)
	a := f.agent(t, nil, agent.Config{LeaseTTL: time.Minute})
	warmScripts(t, a, "hi")
	c.take()

	// A commit pipelines the catalog's writes (see #18) with its script:
	// the turn record's script, the tenant's index for a new session, and
	// the day's usage (one HINCRBY per non-zero counter). One round trip.
	const (
		commitFirst = "evalsha+evalsha+zadd+hincrby+hincrby+hincrby+hincrby+pexpire"
		commitNext  = "evalsha+evalsha+hincrby+hincrby+hincrby+hincrby+pexpire"
	)
	tests := []struct {
		name     string
		req      agent.Request
		want     []string
		replayed bool
	}{
		{"FirstTurn", agent.Request{SessionID: "rt", Message: "one"}, []string{"evalsha", commitFirst}, false},
		{"NextTurn", agent.Request{SessionID: "rt", Message: "two"}, []string{"evalsha", commitNext}, false},
		{"WithIdempotencyKey", agent.Request{SessionID: "rt", Message: "three", IdempotencyKey: "k3"}, []string{"evalsha", commitNext}, false},
		{"Repeat", agent.Request{SessionID: "rt", Message: "three", IdempotencyKey: "k3"}, []string{"evalsha"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans, err := a.Run(t.Context(), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if ans.Replayed != tc.replayed {
				t.Errorf("Replayed = %v; want %v", ans.Replayed, tc.replayed)
			}
			if diff := cmp.Diff(tc.want, c.take()); diff != "" {
				t.Errorf("Redis round trips of the turn (-want +got):\n%s", diff)
			}
		})
	}
}

package redisstore_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/redisconn"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
	"github.com/lambdagent/lambdagent/internal/session/storetest"
)

// TestStoreCluster runs the contract suite on a local Redis Cluster of 3
// masters and 3 replicas: every script names keys of one hash tag, so
// none is refused with CROSSSLOT, and the client follows the slots.
func TestStoreCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	rdb := redistest.Client(t, c.URL())
	runSuite(t, func(t *testing.T, cfg redisstore.Config) *redisstore.Store { return newStore(t, rdb, cfg) })
}

// TestStoreClusterWait runs the suite with WaitReplicas 1: every commit
// waits for its master's replica.
func TestStoreClusterWait(t *testing.T) {
	c := redistest.StartCluster(t)
	rdb := redistest.Client(t, c.URL())
	runSuite(t, func(t *testing.T, cfg redisstore.Config) *redisstore.Store {
		cfg.WaitReplicas = 1
		return newStore(t, rdb, cfg)
	})
}

// TestStoreTLS runs the suite over rediss://, verified with the test's CA.
func TestStoreTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	rdb, _, err := redisconn.New(redisconn.Config{URL: srv.URL(), CA: srv.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	runSuite(t, func(t *testing.T, cfg redisstore.Config) *redisstore.Store { return newStore(t, rdb, cfg) })
}

func runSuite(t *testing.T, build func(t *testing.T, cfg redisstore.Config) *redisstore.Store) {
	storetest.Run(t, func(t *testing.T, opts storetest.Options) session.Store {
		cfg := redisstore.Config{TTL: opts.TTL, IdempotencyTTL: opts.IdempotencyTTL}
		if cfg.TTL == 0 {
			cfg.TTL = testTTL
		}
		return build(t, cfg)
	})
}

// TestWaitNoReplica checks that a commit that no replica acknowledges is
// not acknowledged: a standalone Redis has none, so WaitReplicas 1 fails
// every commit with a NotReplicatedError marked ErrUnavailable (a 503),
// after the wait's timeout and not before.
func TestWaitNoReplica(t *testing.T) {
	rdb := redistest.Client(t, redistest.StartServer(t).Addr)
	s := newStore(t, rdb, redisstore.Config{TTL: testTTL, WaitReplicas: 1, WaitTimeout: 100 * time.Millisecond})
	ctx := t.Context()
	st, err := s.Begin(ctx, session.BeginRequest{ID: "s", LeaseToken: "t", LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.Commit(ctx, session.Commit{ID: "s", LeaseToken: "t", Version: st.Version, Turns: 1, Release: true,
		Messages: []json.RawMessage{json.RawMessage(`{"role":"user","content":"hi"}`)}})
	var nr *redisstore.NotReplicatedError
	if !errors.As(err, &nr) || !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("Commit = %v; want a NotReplicatedError marked ErrUnavailable", err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("Commit failed after %v; want it to wait the 100ms timeout", took)
	}
	if nr.Want != 1 || nr.Got != 0 {
		t.Errorf("NotReplicatedError = %+v; want 0 of 1", nr)
	}
}

// BenchmarkTurnClusterWait measures a turn's two store calls (Begin,
// Commit) on the local cluster without and with WaitReplicas 1: the cost
// of WAIT the README quotes.
//
//	go test ./internal/session/redisstore -run - -bench TurnClusterWait -benchtime 2000x
func BenchmarkTurnClusterWait(b *testing.B) {
	c := redistest.StartCluster(b)
	rdb := redistest.Client(b, c.URL())
	for _, wait := range []int{0, 1} {
		b.Run(fmt.Sprintf("wait=%d", wait), func(b *testing.B) {
			s := newStore(b, rdb, redisstore.Config{TTL: testTTL, WaitReplicas: wait})
			ctx := b.Context()
			msg := []json.RawMessage{json.RawMessage(`{"role":"user","content":"hi"}`)}
			for i := 0; b.Loop(); i++ {
				id := fmt.Sprintf("s%d", i%64)
				st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: "t", LeaseTTL: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := s.Commit(ctx, session.Commit{ID: id, LeaseToken: "t", Version: st.Version, Turns: 1, Release: true, Messages: msg}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package redisstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
)

// TestTakeover checks #17's fast takeover: a process that dies holding a
// lease of a minute (its liveness loop stops, as under SIGKILL) blocks
// its session for at most the default liveness of 3 s; the dead holder's
// late commit is refused; and a live holder is never taken over however
// long its turn runs.
func TestTakeover(t *testing.T) {
	addr := redistest.Start(t)
	ctx := t.Context()
	dead := newStore(t, redistest.Client(t, addr), redisstore.Config{TTL: testTTL})
	live := newStore(t, redistest.Client(t, addr), redisstore.Config{TTL: testTTL})
	waiter := newStore(t, redistest.Client(t, addr), redisstore.Config{TTL: testTTL})

	if _, err := dead.Begin(ctx, session.BeginRequest{ID: "d", LeaseToken: "dead", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := live.Begin(ctx, session.BeginRequest{ID: "l", LeaseToken: "live", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the first heartbeats land
	dead.Die()
	died := time.Now()

	var took time.Duration
	for {
		_, err := waiter.Begin(ctx, session.BeginRequest{ID: "d", LeaseToken: "next", LeaseTTL: time.Minute})
		if err == nil {
			took = time.Since(died)
			break
		}
		busy, ok := errors.AsType[*session.BusyError](err)
		if !ok {
			t.Fatal(err)
		}
		if busy.RetryAfter > redisstore.DefaultLiveness {
			t.Errorf("RetryAfter = %v; want at most the liveness %v", busy.RetryAfter, redisstore.DefaultLiveness)
		}
		if time.Since(died) > 5*time.Second {
			t.Fatal("the session of a dead holder is still busy 5 s after its death")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("session free %v after its holder died (lease TTL 1m)", took.Round(time.Millisecond))
	if took > redisstore.DefaultLiveness+200*time.Millisecond {
		t.Errorf("session free %v after its holder died; want within %v", took, redisstore.DefaultLiveness)
	}
	if _, err := dead.Commit(ctx, session.Commit{ID: "d", LeaseToken: "dead", Release: true}); !errors.Is(err, session.ErrLeaseLost) {
		t.Errorf("the dead holder's commit after the takeover: err = %v; want ErrLeaseLost", err)
	}
	if _, err := waiter.Commit(ctx, session.Commit{ID: "d", LeaseToken: "next", Release: true}); err != nil {
		t.Errorf("the new holder's commit: %v", err)
	}

	// The live holder has held its lease for more than the liveness by
	// now, and keeps it.
	_, err := waiter.Begin(ctx, session.BeginRequest{ID: "l", LeaseToken: "other", LeaseTTL: time.Minute})
	if _, ok := errors.AsType[*session.BusyError](err); !ok {
		t.Errorf("Begin of a live holder's session after %v: err = %v; want busy", time.Since(died), err)
	}
	if _, err := live.Commit(ctx, session.Commit{ID: "l", LeaseToken: "live", Release: true}); err != nil {
		t.Errorf("the live holder's commit: %v", err)
	}
}

// TestCloseFreesLeases checks that a Store closed while holding a lease
// (a process stopping with turns it will not finish) frees it for the
// next Begin at once, not after the liveness.
func TestCloseFreesLeases(t *testing.T) {
	addr := redistest.Start(t)
	ctx := t.Context()
	a := newStore(t, redistest.Client(t, addr), redisstore.Config{TTL: testTTL, Liveness: time.Minute})
	b := newStore(t, redistest.Client(t, addr), redisstore.Config{TTL: testTTL})
	if _, err := a.Begin(ctx, session.BeginRequest{ID: "c", LeaseToken: "a", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond) // let the first heartbeat land
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// b takes over once the lease is a third of b's liveness old (1 s).
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := b.Begin(ctx, session.BeginRequest{ID: "c", LeaseToken: "b", LeaseTTL: time.Minute})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Begin after the holder's Close: %v; want the lease within 2 s", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTakeoverOff checks that a negative Liveness turns fast takeover
// off: the lease of a dead holder lasts its TTL.
func TestTakeoverOff(t *testing.T) {
	addr := redistest.Start(t)
	ctx := t.Context()
	cfg := redisstore.Config{TTL: testTTL, Liveness: -1}
	a := newStore(t, redistest.Client(t, addr), cfg)
	b := newStore(t, redistest.Client(t, addr), cfg)
	if _, err := a.Begin(ctx, session.BeginRequest{ID: "o", LeaseToken: "a", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	a.Die()
	time.Sleep(1500 * time.Millisecond)
	if _, err := b.Begin(ctx, session.BeginRequest{ID: "o", LeaseToken: "b", LeaseTTL: time.Minute}); err == nil {
		t.Error("Begin took a lease of a minute after 1.5 s with takeover off")
	}
}

// TestTakeoverGrace checks that a lease younger than a third of the
// liveness is not taken over even when its holder's liveness key is
// missing: a process that just started, or thawed on Lambda, takes leases
// while its first heartbeat is still on the way.
func TestTakeoverGrace(t *testing.T) {
	addr := redistest.Start(t)
	rdb := redistest.Client(t, addr)
	ctx := t.Context()
	a := newStore(t, rdb, redisstore.Config{TTL: testTTL})
	b := newStore(t, redistest.Client(t, addr), redisstore.Config{TTL: testTTL})
	if _, err := a.Begin(ctx, session.BeginRequest{ID: "g", LeaseToken: "a", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	a.Die()
	keys, err := redistest.Keys(ctx, rdb, redistest.Prefix(t)+"proc:*")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys { // as if the first beat had not landed; one by one: on a cluster they lie in several slots
		if err := rdb.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Begin(ctx, session.BeginRequest{ID: "g", LeaseToken: "b", LeaseTTL: time.Minute}); !isBusy(err) {
		t.Errorf("Begin of a lease taken just now by a process with no liveness key: err = %v; want busy", err)
	}
	time.Sleep(1100 * time.Millisecond) // past a third of the default liveness
	if _, err := b.Begin(ctx, session.BeginRequest{ID: "g", LeaseToken: "b", LeaseTTL: time.Minute}); err != nil {
		t.Errorf("Begin of a second-old lease of a process with no liveness key: %v; want it taken over", err)
	}
}

func isBusy(err error) bool {
	_, ok := errors.AsType[*session.BusyError](err)
	return ok
}

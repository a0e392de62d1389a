// Package storetest checks that a [session.Store] keeps the contract
// written in package session, the way testing/slogtest checks a
// slog.Handler: every Store runs the same [Run], so the Redis store and
// the file store cannot drift apart.
//
// Run builds a fresh store for every subtest, so a subtest sees only its
// own sessions, and the stores built with short TTLs (for the subtests
// about expiry) do not make the others race the clock. Waits for leases and
// TTLs poll with short timings instead of sleeping long, so the suite
// takes a few seconds against a real backend.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"

	"github.com/lambdagent/lambdagent/internal/session"
)

// Options says how to build a store for one subtest.
type Options struct {
	// TTL is how long an untouched session is kept. Zero means the store's
	// default, which must outlast a subtest (a minute is plenty).
	TTL time.Duration
	// IdempotencyTTL is how long an idempotency record is kept. Zero
	// means the store's default, which must outlast a subtest.
	IdempotencyTTL time.Duration
}

// Run runs the contract suite as subtests of t. newStore returns an empty
// store built as opts says, cleaned up by its t. It is called once or more
// per subtest, always with that subtest's t; the stores returned within
// one subtest with the same opts must share their data (they stand for
// several processes on one backend).
func Run(t *testing.T, newStore func(t *testing.T, opts Options) session.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s session.Store)
	}{
		{"BeginUnknownIsEmpty", testBeginUnknownIsEmpty},
		{"CommitAppends", testCommitAppends},
		{"CommitStaleVersion", testCommitStaleVersion},
		{"BeginBusy", testBeginBusy},
		{"BeginSameTokenRetakes", testBeginSameTokenRetakes},
		{"BeginBadLease", testBeginBadLease},
		{"LeaseExpiry", testLeaseExpiry},
		{"CommitLeaseLost", testCommitLeaseLost},
		{"Checkpoint", testCheckpoint},
		{"Renew", testRenew},
		{"Release", testRelease},
		{"Idempotency", testIdempotency},
		{"IdempotencyPerSession", testIdempotencyPerSession},
		{"Delete", testDelete},
		{"Concurrent", testConcurrent},
		{"InvalidID", testInvalidID},
		{"Pending", testPending},
		{"Pinned", testPinned},
		{"ToolResults", testToolResults},
		{"ToolResultFencing", testToolResultFencing},
		{"DeletePending", testDeletePending},
		{"KV", testKV},
		{"TenantsApart", testTenantsApart},
		{"HistoryOneBuffer", testHistoryOneBuffer},
		{"Cut", testCut},
		{"Catalog", testCatalog},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t, Options{}))
		})
	}
	t.Run("SharedBackend", func(t *testing.T) {
		testSharedBackend(t, newStore(t, Options{}), newStore(t, Options{}))
	})
	t.Run("TTL", func(t *testing.T) {
		testTTL(t, newStore(t, Options{TTL: ttl}))
	})
	t.Run("IdempotencyTTL", func(t *testing.T) {
		testIdempotencyTTL(t, newStore(t, Options{IdempotencyTTL: shortLease}))
	})
	t.Run("KVShared", func(t *testing.T) {
		testKVShared(t, newStore(t, Options{}), newStore(t, Options{}))
	})
}

// Timings. They are short so the suite is quick, and every wait for
// something to expire polls up to waitFor, so a loaded machine is slow
// rather than flaky.
const (
	longLease  = time.Minute
	shortLease = 200 * time.Millisecond
	ttl        = 400 * time.Millisecond
	waitFor    = 10 * time.Second
	pollEvery  = 20 * time.Millisecond
)

// Messages with what a naive re-encoding would break: a thinking block
// with its signature, non-ASCII text, escapes, and odd spacing.
var (
	msgUser      = json.RawMessage(`{"role":"user","content":"Grüß dich — 你好 🎉 \"quoted\" \\ \n\u00e9\u2028 <b>&amp;</b>"}`)
	msgThinking  = json.RawMessage(`{"role":"assistant","content":[{"type":"thinking","thinking":"The user greets me.\n\tReply in kind…","signature":"EqQBCkgIARABGAIiQL+/3wY8m+Zl5k0n2xA4=="},{"type":"text","text":"Hallo!"}]}`)
	msgToolUse   = json.RawMessage(`{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"Zürich","units":null}}]}`)
	msgSpaced    = json.RawMessage("{ \"role\" : \"user\",\n  \"content\" : [ {\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01A\",\"content\":\"12.5\\u00b0C\"} ] }")
	msgFollowUp  = json.RawMessage(`{"role":"user","content":"and tomorrow?"}`)
	msgLastReply = json.RawMessage(`{"role":"assistant","content":[{"type":"text","text":"Rain."}]}`)
)

func testBeginUnknownIsEmpty(t *testing.T, s session.Store) {
	ctx := t.Context()
	st := begin(t, s, session.BeginRequest{ID: "unknown", LeaseToken: token(), LeaseTTL: longLease})
	if diff := cmp.Diff(view{}, viewOf(st)); diff != "" {
		t.Errorf("Begin of an unknown session (-want +got):\n%s", diff)
	}
	got, err := s.Load(ctx, "also-unknown")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff(view{}, viewOf(got)); diff != "" {
		t.Errorf("Load of an unknown session (-want +got):\n%s", diff)
	}
}

func testCommitAppends(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "appends"
	turns := []struct {
		msgs     []json.RawMessage
		counters map[string]int64
	}{
		{[]json.RawMessage{msgUser, msgThinking}, map[string]int64{"input_tokens": 10, "output_tokens": 5}},
		{[]json.RawMessage{msgToolUse, msgSpaced}, nil},
		{[]json.RawMessage{msgFollowUp, msgLastReply}, map[string]int64{"input_tokens": 7, "cost_microusd": 3}},
	}
	var want view
	for i, turn := range turns {
		tok := token()
		st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
		if diff := cmp.Diff(want, viewOf(st)); diff != "" {
			t.Fatalf("Begin before turn %d (-want +got):\n%s", i, diff)
		}
		v := commit(t, s, session.Commit{
			ID: id, LeaseToken: tok, Version: st.Version,
			Messages: turn.msgs, Turns: 1, Counters: turn.counters, Release: true,
		})
		for _, m := range turn.msgs {
			want.Messages = append(want.Messages, string(m))
		}
		want.Version = int64(len(want.Messages))
		want.Turns++
		for k, n := range turn.counters {
			if want.Counters == nil {
				want.Counters = map[string]int64{}
			}
			want.Counters[k] += n
		}
		if v != want.Version {
			t.Errorf("Commit of turn %d = v%d; want v%d (the number of messages)", i, v, want.Version)
		}
		got, err := s.Load(ctx, id)
		if err != nil {
			t.Fatalf("Load after turn %d: %v", i, err)
		}
		if diff := cmp.Diff(want, viewOf(got)); diff != "" {
			t.Errorf("Load after turn %d (-want +got):\n%s", i, diff)
		}
	}
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
	if diff := cmp.Diff(want, viewOf(st)); diff != "" {
		t.Errorf("Begin after all turns (-want +got):\n%s", diff)
	}
}

func testCommitStaleVersion(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "stale"
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser), Counters: map[string]int64{"n": 1}})
	before := load(t, s, id)

	for _, version := range []int64{0, 2, 7} {
		_, err := s.Commit(ctx, session.Commit{
			ID: id, LeaseToken: tok, Version: version,
			Messages: msgs(msgThinking), Turns: 1, Counters: map[string]int64{"n": 1}, Release: true,
			IdempotencyKey: "k", RequestHash: "h", Response: []byte("r"),
		})
		if !errors.Is(err, session.ErrConflict) {
			t.Errorf("Commit at v%d when the session is at v1: err = %v; want ErrConflict", version, err)
		}
	}
	if diff := cmp.Diff(viewOf(before), viewOf(load(t, s, id))); diff != "" {
		t.Errorf("a conflicting Commit wrote something (-before +after):\n%s", diff)
	}
	// Nothing was written, the idempotency record included, and the lease
	// is still ours: a Commit at the right version goes through.
	assertBusy(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "k", RequestHash: "h"})
	if v := commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: 1, Messages: msgs(msgThinking), Turns: 1, Release: true}); v != 2 {
		t.Errorf("Commit at the right version after a conflict = v%d; want v2", v)
	}
}

func testBeginBusy(t *testing.T, s session.Store) {
	ctx := t.Context()
	for _, tc := range []struct {
		name        string
		holderKey   string
		callerKey   string
		wantSameKey bool
	}{
		{"NoKeys", "", "", false},
		{"SameKey", "req-1", "req-1", true},
		{"OtherKey", "req-1", "req-2", false},
		{"HolderHasNoKey", "", "req-1", false},
		{"CallerHasNoKey", "req-1", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "busy-" + tc.name
			holder := token()
			begin(t, s, session.BeginRequest{ID: id, LeaseToken: holder, LeaseTTL: longLease, IdempotencyKey: tc.holderKey, RequestHash: "h"})

			busy := assertBusy(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: tc.callerKey, RequestHash: "h"})
			if busy.SameKey != tc.wantSameKey {
				t.Errorf("BusyError.SameKey = %v; want %v", busy.SameKey, tc.wantSameKey)
			}
			if busy.RetryAfter <= 0 || busy.RetryAfter > longLease {
				t.Errorf("BusyError.RetryAfter = %v; want in (0, %v]", busy.RetryAfter, longLease)
			}
			// The busy Begin took nothing: the holder still commits, and
			// after its release the next Begin gets in.
			if err := s.Release(ctx, id, holder); err != nil {
				t.Fatalf("Release: %v", err)
			}
			begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
		})
	}
}

// testBeginSameTokenRetakes pins what a retried Begin sees: a client that
// lost Begin's reply and sends it again (go-redis does this by itself
// after a dropped connection) must not find itself busy.
func testBeginSameTokenRetakes(t *testing.T, s session.Store) {
	const id = "retake"
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: shortLease})
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser)})
	again := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	if diff := cmp.Diff(view{Version: 1, Messages: []string{string(msgUser)}}, viewOf(again)); diff != "" {
		t.Errorf("Begin again with the held token (-want +got):\n%s", diff)
	}
	// The retaken lease has the new TTL, not the old short one.
	busy := assertBusy(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
	if busy.RetryAfter <= shortLease {
		t.Errorf("RetryAfter = %v after retaking with a %v lease; want more than %v", busy.RetryAfter, longLease, shortLease)
	}
}

func testBeginBadLease(t *testing.T, s session.Store) {
	for _, tc := range []struct {
		name string
		req  session.BeginRequest
	}{
		{"NoTTL", session.BeginRequest{ID: "bad-lease", LeaseToken: token()}},
		{"NegativeTTL", session.BeginRequest{ID: "bad-lease", LeaseToken: token(), LeaseTTL: -time.Second}},
		{"NoToken", session.BeginRequest{ID: "bad-lease", LeaseTTL: longLease}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Begin(t.Context(), tc.req); err == nil {
				t.Errorf("Begin(%+v) = nil error; want one", tc.req)
			}
		})
	}
	// None of them took the lease.
	begin(t, s, session.BeginRequest{ID: "bad-lease", LeaseToken: token(), LeaseTTL: longLease})
}

func testLeaseExpiry(t *testing.T, s session.Store) {
	const id = "expiry"
	begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: shortLease})
	start := time.Now()
	st := beginEventually(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
	if st.Version != 0 {
		t.Errorf("Begin after expiry: Version = %d; want 0", st.Version)
	}
	if waited := time.Since(start); waited > waitFor {
		t.Errorf("lease of %v expired after %v", shortLease, waited)
	}
}

func testCommitLeaseLost(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "lost"
	// Fencing: A's lease expires mid-turn and B takes the session. A
	// wakes up and commits; it must not append after B's Begin read.
	a := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: a, LeaseTTL: shortLease})
	b := token()
	stB := beginEventually(t, s, session.BeginRequest{ID: id, LeaseToken: b, LeaseTTL: longLease})

	lost := []struct {
		name string
		c    session.Commit
	}{
		{"ExpiredAndTaken", session.Commit{ID: id, LeaseToken: a, Version: st.Version, Messages: msgs(msgUser), Turns: 1, Release: true,
			IdempotencyKey: "k", RequestHash: "h", Response: []byte("r")}},
		{"WrongToken", session.Commit{ID: id, LeaseToken: token(), Version: st.Version, Messages: msgs(msgUser), Turns: 1}},
		{"EmptyToken", session.Commit{ID: id, Version: st.Version, Messages: msgs(msgUser), Turns: 1}},
		{"NeverBegun", session.Commit{ID: "lost-never-begun", LeaseToken: a, Messages: msgs(msgUser), Turns: 1}},
	}
	for _, tc := range lost {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Commit(ctx, tc.c); !errors.Is(err, session.ErrLeaseLost) {
				t.Errorf("Commit: err = %v; want ErrLeaseLost", err)
			}
			if diff := cmp.Diff(view{}, viewOf(load(t, s, tc.c.ID))); diff != "" {
				t.Errorf("a Commit without the lease wrote something (-want +got):\n%s", diff)
			}
		})
	}
	// A's Commit neither released B's lease nor stored A's answer.
	if st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "k", RequestHash: "h"}); err == nil {
		t.Errorf("Begin with A's idempotency key = %+v; want B's lease to make it busy", st)
	}
	if v := commit(t, s, session.Commit{ID: id, LeaseToken: b, Version: stB.Version, Messages: msgs(msgFollowUp), Turns: 1, Release: true}); v != 1 {
		t.Errorf("B's Commit = v%d; want v1", v)
	}
}

func testCheckpoint(t *testing.T, s session.Store) {
	const id = "checkpoint"
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	v1 := commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser, msgToolUse), Counters: map[string]int64{"input_tokens": 3}})
	if v1 != 2 {
		t.Fatalf("checkpoint Commit = v%d; want v2", v1)
	}
	// The checkpoint kept the lease.
	assertBusy(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
	if diff := cmp.Diff(view{Version: 2, Messages: strs(msgUser, msgToolUse), Counters: map[string]int64{"input_tokens": 3}}, viewOf(load(t, s, id))); diff != "" {
		t.Errorf("Load after checkpoint (-want +got):\n%s", diff)
	}
	v2 := commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: v1, Messages: msgs(msgSpaced, msgLastReply), Turns: 1, Counters: map[string]int64{"input_tokens": 4}, Release: true})
	if v2 != 4 {
		t.Fatalf("final Commit = v%d; want v4", v2)
	}
	want := view{Version: 4, Turns: 1, Messages: strs(msgUser, msgToolUse, msgSpaced, msgLastReply), Counters: map[string]int64{"input_tokens": 7}}
	if diff := cmp.Diff(want, viewOf(begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease}))); diff != "" {
		t.Errorf("Begin after the released commit (-want +got):\n%s", diff)
	}
}

func testRenew(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "renew"
	tok := token()
	begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: shortLease})
	if err := s.Renew(ctx, id, tok, longLease); err != nil {
		t.Fatalf("Renew of a held lease: %v", err)
	}
	busy := assertBusy(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
	if busy.RetryAfter <= shortLease {
		t.Errorf("RetryAfter = %v after Renew to %v; want more than %v", busy.RetryAfter, longLease, shortLease)
	}
	for _, tc := range []struct{ name, id, token string }{
		{"WrongToken", id, token()},
		{"EmptyToken", id, ""},
		{"UnknownSession", "renew-unknown", tok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Renew(ctx, tc.id, tc.token, longLease); !errors.Is(err, session.ErrLeaseLost) {
				t.Errorf("Renew: err = %v; want ErrLeaseLost", err)
			}
		})
	}
	if err := s.Release(ctx, id, tok); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := s.Renew(ctx, id, tok, longLease); !errors.Is(err, session.ErrLeaseLost) {
		t.Errorf("Renew after Release: err = %v; want ErrLeaseLost", err)
	}

	// A lease that expired cannot be renewed, even before anyone took it.
	const expiring = "renew-expired"
	tok = token()
	begin(t, s, session.BeginRequest{ID: expiring, LeaseToken: tok, LeaseTTL: shortLease})
	beginEventually(t, s, session.BeginRequest{ID: expiring, LeaseToken: token(), LeaseTTL: longLease})
	if err := s.Renew(ctx, expiring, tok, longLease); !errors.Is(err, session.ErrLeaseLost) {
		t.Errorf("Renew after expiry: err = %v; want ErrLeaseLost", err)
	}
}

func testRelease(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "release"
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser), Turns: 1, Release: true})

	tok = token()
	begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	for _, tc := range []struct{ name, id, token string }{
		{"WrongToken", id, token()},
		{"EmptyToken", id, ""},
		{"UnknownSession", "release-unknown", tok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Release(ctx, tc.id, tc.token); err != nil {
				t.Errorf("Release of a lease not held: %v; want nil", err)
			}
		})
	}
	// Those left the real holder alone.
	assertBusy(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})

	if err := s.Release(ctx, id, tok); err != nil {
		t.Fatalf("Release: %v", err)
	}
	if err := s.Release(ctx, id, tok); err != nil {
		t.Errorf("second Release: %v; want nil", err)
	}
	want := view{Version: 1, Turns: 1, Messages: strs(msgUser)}
	if diff := cmp.Diff(want, viewOf(begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease}))); diff != "" {
		t.Errorf("Begin after Release (-want +got):\n%s", diff)
	}
}

func testIdempotency(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "idem"
	// Not valid UTF-8, with a NUL: the answer is bytes, not text.
	response := []byte("{\"content\":\"fin\"}\x00\xff\xfe \u00e9")

	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "hash-1"})
	if st.Replay != nil {
		t.Fatalf("first Begin with a key: Replay = %q; want nil", st.Replay)
	}
	commit(t, s, session.Commit{
		ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser, msgLastReply), Turns: 1, Release: true,
		IdempotencyKey: "req-1", RequestHash: "hash-1", Response: response,
	})

	// Another turn holds the lease: a repeat of req-1 still gets its
	// answer, without waiting and without touching that lease.
	other := token()
	begin(t, s, session.BeginRequest{ID: id, LeaseToken: other, LeaseTTL: longLease})
	for range 2 {
		st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "hash-1"})
		if err != nil {
			t.Fatalf("Begin repeating req-1: %v", err)
		}
		if diff := cmp.Diff(response, st.Replay); diff != "" {
			t.Errorf("Replay (-want +got):\n%s", diff)
		}
	}
	if err := s.Release(ctx, id, other); err != nil {
		t.Fatal(err)
	}
	// With the lease free, a replay still takes no lease.
	if st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "hash-1"}); err != nil || st.Replay == nil {
		t.Fatalf("Begin repeating req-1 = %+v, %v; want a Replay", st, err)
	}
	begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})

	_, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "hash-2"})
	if !errors.Is(err, session.ErrIdempotencyMismatch) {
		t.Errorf("Begin reusing req-1 for another request: err = %v; want ErrIdempotencyMismatch", err)
	}
	if diff := cmp.Diff(view{Version: 2, Turns: 1, Messages: strs(msgUser, msgLastReply)}, viewOf(load(t, s, id))); diff != "" {
		t.Errorf("Load (-want +got):\n%s", diff)
	}
}

func testIdempotencyPerSession(t *testing.T, s session.Store) {
	ctx := t.Context()
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: "idem-a", LeaseToken: tok, LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "h"})
	commit(t, s, session.Commit{ID: "idem-a", LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser), Turns: 1, Release: true,
		IdempotencyKey: "req-1", RequestHash: "h", Response: []byte("answer a")})

	// The same key on another session, even with another hash, is a new
	// request there.
	for _, hash := range []string{"h", "other"} {
		id := "idem-b-" + hash
		st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: hash})
		if err != nil {
			t.Fatalf("Begin of %s with req-1: %v", id, err)
		}
		if st.Replay != nil {
			t.Errorf("Begin of %s with a key committed on idem-a: Replay = %q; want nil", id, st.Replay)
		}
		assertBusy(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
	}
}

func testDelete(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "delete"
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "h"})
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser, msgLastReply), Turns: 1,
		Counters: map[string]int64{"input_tokens": 9}, Release: true, IdempotencyKey: "req-1", RequestHash: "h", Response: []byte("answer")})

	// A turn is in flight when the session is deleted.
	holder := token()
	st = begin(t, s, session.BeginRequest{ID: id, LeaseToken: holder, LeaseTTL: longLease, IdempotencyKey: "req-2", RequestHash: "h"})
	if err := s.Delete(ctx, id); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Commit(ctx, session.Commit{ID: id, LeaseToken: holder, Version: st.Version, Messages: msgs(msgFollowUp), Turns: 1, Release: true}); !errors.Is(err, session.ErrLeaseLost) {
		t.Errorf("Commit of the turn in flight after Delete: err = %v; want ErrLeaseLost", err)
	}
	if err := s.Renew(ctx, id, holder, longLease); !errors.Is(err, session.ErrLeaseLost) {
		t.Errorf("Renew after Delete: err = %v; want ErrLeaseLost", err)
	}
	if diff := cmp.Diff(view{}, viewOf(load(t, s, id))); diff != "" {
		t.Errorf("Load after Delete (-want +got):\n%s", diff)
	}
	// The idempotency record went too: req-1 runs again, and the lease
	// is free.
	st = begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "other-hash"})
	if diff := cmp.Diff(view{}, viewOf(st)); diff != "" {
		t.Errorf("Begin with a deleted idempotency key (-want +got):\n%s", diff)
	}

	for _, id := range []string{"delete-unknown", id, id} {
		if err := s.Delete(ctx, id); err != nil {
			t.Errorf("Delete(%q): %v; want nil", id, err)
		}
	}
}

// testTTL checks that an untouched session is forgotten after the TTL and
// that a commit restarts the clock. Sleeping is the point here, so the
// sleeps are a fraction of a second; when the machine stalls so long that
// a step misses its window, the step is tried again with a new session.
func testTTL(t *testing.T, s session.Store) {
	ctx := t.Context()
	// commitOne commits one message at version and reports when it
	// started and when it returned: the store set the session's expiry
	// somewhere in between.
	commitOne := func(id string, version int64) (start, end time.Time, err error) {
		tok := token()
		start = time.Now()
		st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
		if err != nil {
			return start, start, err
		}
		if st.Version != version {
			return start, start, fmt.Errorf("Begin(%s): Version = %d; want %d", id, st.Version, version)
		}
		_, err = s.Commit(ctx, session.Commit{ID: id, LeaseToken: tok, Version: version, Messages: msgs(msgUser), Turns: 1, Counters: map[string]int64{"n": 1}, Release: true})
		return start, time.Now(), err
	}

	t.Run("CommitRefreshes", func(t *testing.T) {
		for attempt := range 3 {
			id := fmt.Sprintf("ttl-refresh-%d", attempt)
			start1, end1, err := commitOne(id, 0)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(end1.Add(ttl * 5 / 8)))
			start2, end2, err := commitOne(id, 1)
			if end2.Sub(start1) >= ttl {
				t.Logf("attempt %d: second commit ended %v after the first began, past the TTL; trying again", attempt, end2.Sub(start1))
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			// Past the first commit's expiry, before the second's.
			time.Sleep(time.Until(end1.Add(ttl * 5 / 4)))
			got := load(t, s, id)
			if took := time.Since(start2); took >= ttl {
				t.Logf("attempt %d: Load ended %v after the second commit began, past the TTL; trying again", attempt, took)
				continue
			}
			want := view{Version: 2, Turns: 2, Messages: strs(msgUser, msgUser), Counters: map[string]int64{"n": 2}}
			if diff := cmp.Diff(want, viewOf(got)); diff != "" {
				t.Fatalf("Load after the first commit's TTL but within the second's (-want +got):\n%s", diff)
			}
			return
		}
		t.Skip("the machine is too slow to check the TTL window")
	})

	t.Run("Forgets", func(t *testing.T) {
		const id = "ttl-forget"
		tok := token()
		st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease, IdempotencyKey: "k", RequestHash: "h"})
		commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser, msgLastReply), Turns: 1,
			Counters: map[string]int64{"n": 1}, Release: true, IdempotencyKey: "k", RequestHash: "h", Response: []byte("r")})
		eventually(t, "session forgotten", func() bool { return load(t, s, id).Version == 0 })
		if diff := cmp.Diff(view{}, viewOf(load(t, s, id))); diff != "" {
			t.Errorf("Load of an expired session (-want +got):\n%s", diff)
		}
		// Its idempotency records went with it.
		st = begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "k", RequestHash: "other"})
		if diff := cmp.Diff(view{}, viewOf(st)); diff != "" {
			t.Errorf("Begin of an expired session (-want +got):\n%s", diff)
		}
	})
}

// testIdempotencyTTL checks that an idempotency record expires on its own
// while its session lives on.
func testIdempotencyTTL(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "idem-ttl"
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "h"})
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser), Turns: 1, Release: true,
		IdempotencyKey: "req-1", RequestHash: "h", Response: []byte("answer")})
	var again *session.State
	eventually(t, "idempotency record forgotten", func() bool {
		var err error
		again, err = s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "other"})
		if errors.Is(err, session.ErrIdempotencyMismatch) {
			return false
		}
		if err != nil {
			t.Fatalf("Begin: %v", err)
		}
		return true
	})
	if diff := cmp.Diff(view{Version: 1, Turns: 1, Messages: strs(msgUser)}, viewOf(again)); diff != "" {
		t.Errorf("Begin after the record expired (-want +got):\n%s", diff)
	}
}

// testConcurrent runs many turns on one session at once. The lease lets
// one in at a time; the others get busy and retry. Every message must end
// up in the history exactly once.
func testConcurrent(t *testing.T, s session.Store) {
	const (
		id         = "concurrent"
		goroutines = 20
		perG       = 3
	)
	// A store that fails to release leases would have the workers wait
	// out a minute-long lease per message; fail instead.
	ctx, cancel := context.WithTimeout(t.Context(), 3*waitFor)
	defer cancel()
	g, ctx := errgroup.WithContext(ctx)
	var mu sync.Mutex
	busies := 0 // guarded by mu
	for w := range goroutines {
		g.Go(func() error {
			for i := range perG {
				msg := json.RawMessage(fmt.Sprintf(`{"role":"user","content":"w%d-%d"}`, w, i))
				for {
					tok := token()
					st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
					if busy, ok := errors.AsType[*session.BusyError](err); ok {
						mu.Lock()
						busies++
						mu.Unlock()
						select {
						case <-ctx.Done():
							return fmt.Errorf("worker %d: still busy: %w", w, context.Cause(ctx))
						case <-time.After(min(busy.RetryAfter, time.Duration(1+w%5)*time.Millisecond)):
						}
						continue
					}
					if err != nil {
						return fmt.Errorf("worker %d: Begin: %w", w, err)
					}
					if _, err := s.Commit(ctx, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: []json.RawMessage{msg}, Turns: 1, Counters: map[string]int64{"n": 1}, Release: true}); err != nil {
						return fmt.Errorf("worker %d: Commit at v%d: %w", w, st.Version, err)
					}
					break
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d busy replies", busies)

	got := load(t, s, id)
	const n = goroutines * perG
	if got.Version != n || got.Turns != n || got.Counters["n"] != n {
		t.Errorf("after %d turns: Version %d, Turns %d, Counters %v; want %d each", n, got.Version, got.Turns, got.Counters, n)
	}
	var want, have []string
	for w := range goroutines {
		for i := range perG {
			want = append(want, fmt.Sprintf(`{"role":"user","content":"w%d-%d"}`, w, i))
		}
	}
	have = strs(got.Messages...)
	slices.Sort(want)
	slices.Sort(have)
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("history, sorted (-want +got):\n%s", diff)
	}
}

func testInvalidID(t *testing.T, s session.Store) {
	ctx := t.Context()
	for _, tc := range []struct{ name, id string }{
		{"Empty", ""},
		{"Braces", "a{b}"},
		{"Space", "with space"},
		{"NonASCII", "naïve"},
		{"TwoSlashes", "t/a/b"},
		{"EmptyTenant", "/b"},
		{"BadTenant", "t:x/b"},
		{"NUL", "nul\x00"},
		{"TooLong", strings.Repeat("x", session.MaxIDLen+1)},
	} {
		id := tc.id
		t.Run(tc.name, func(t *testing.T) {
			calls := map[string]error{}
			_, calls["Begin"] = s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
			_, calls["Commit"] = s.Commit(ctx, session.Commit{ID: id, LeaseToken: token(), Messages: msgs(msgUser)})
			calls["Renew"] = s.Renew(ctx, id, token(), longLease)
			calls["Release"] = s.Release(ctx, id, token())
			_, calls["Load"] = s.Load(ctx, id)
			calls["Delete"] = s.Delete(ctx, id)
			for name, err := range calls {
				if !errors.Is(err, session.ErrInvalidID) {
					t.Errorf("%s: err = %v; want ErrInvalidID", name, err)
				}
			}
		})
	}
	// The longest valid ID, using every allowed character, works.
	id := "aZ09-_.:@" + strings.Repeat("x", session.MaxIDLen-9)
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser), Turns: 1, Release: true})
	if got := load(t, s, id); got.Version != 1 {
		t.Errorf("Load(%q).Version = %d; want 1", id, got.Version)
	}
}

// testSharedBackend checks that two stores on one backend, standing for
// two processes, see each other's leases and commits.
func testSharedBackend(t *testing.T, a, b session.Store) {
	const id = "shared"
	tok := token()
	st := begin(t, a, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	assertBusy(t, b, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
	commit(t, a, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser), Turns: 1, Release: true})
	if diff := cmp.Diff(view{Version: 1, Turns: 1, Messages: strs(msgUser)}, viewOf(begin(t, b, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease}))); diff != "" {
		t.Errorf("Begin on the second store (-want +got):\n%s", diff)
	}
}

// view is a State as the tests compare it: messages as strings, so a diff
// shows text rather than bytes.
type view struct {
	Version     int64
	Turns       int64
	Messages    []string
	Counters    map[string]int64
	Replay      []byte
	Pending     string
	ToolResults map[string]string
	Pinned      string
}

func viewOf(st *session.State) view {
	if st == nil {
		return view{Version: -1}
	}
	v := view{Version: st.Version, Turns: st.Turns, Messages: strs(st.Messages...), Counters: st.Counters, Replay: st.Replay, Pending: st.Pending, Pinned: string(st.Pinned)}
	if st.ToolResults != nil {
		v.ToolResults = make(map[string]string, len(st.ToolResults))
		for id, r := range st.ToolResults {
			v.ToolResults[id] = string(r)
		}
	}
	return v
}

// strs returns ms as strings, nil when there are none: a store may return
// an empty history as nil or as an empty slice.
func strs(ms ...json.RawMessage) []string {
	if len(ms) == 0 {
		return nil
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(m)
	}
	return out
}

func msgs(ms ...json.RawMessage) []json.RawMessage { return ms }

func token() string { return rand.Text() }

func begin(t *testing.T, s session.Store, req session.BeginRequest) *session.State {
	t.Helper()
	st, err := s.Begin(t.Context(), req)
	if err != nil {
		t.Fatalf("Begin(%s): %v", req.ID, err)
	}
	if st.Replay != nil {
		t.Fatalf("Begin(%s): unexpected Replay %q", req.ID, st.Replay)
	}
	return st
}

// beginEventually calls Begin until the lease in the way expires.
func beginEventually(t *testing.T, s session.Store, req session.BeginRequest) *session.State {
	t.Helper()
	var st *session.State
	eventually(t, "Begin("+req.ID+") past a lease", func() bool {
		var err error
		st, err = s.Begin(t.Context(), req)
		if _, ok := errors.AsType[*session.BusyError](err); ok {
			return false
		}
		if err != nil {
			t.Fatalf("Begin(%s): %v", req.ID, err)
		}
		return true
	})
	return st
}

func commit(t *testing.T, s session.Store, c session.Commit) int64 {
	t.Helper()
	v, err := s.Commit(t.Context(), c)
	if err != nil {
		t.Fatalf("Commit(%s at v%d): %v", c.ID, c.Version, err)
	}
	return v
}

func load(t *testing.T, s session.Store, id string) *session.State {
	t.Helper()
	st, err := s.Load(t.Context(), id)
	if err != nil {
		t.Fatalf("Load(%s): %v", id, err)
	}
	return st
}

func assertBusy(t *testing.T, s session.Store, req session.BeginRequest) *session.BusyError {
	t.Helper()
	st, err := s.Begin(t.Context(), req)
	busy, ok := errors.AsType[*session.BusyError](err)
	if !ok {
		t.Fatalf("Begin(%s) = %+v, %v; want a *BusyError", req.ID, st, err)
	}
	return busy
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitFor)
	defer cancel()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %v", what, waitFor)
		case <-tick.C:
		}
	}
}

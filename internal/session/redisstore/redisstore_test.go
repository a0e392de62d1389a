package redisstore_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
	"github.com/lambdagent/lambdagent/internal/session/storetest"
)

// testTTL is the session TTL of stores the suite builds with Options.TTL
// zero: longer than any subtest, short enough not to litter a shared
// $REDIS_URL.
const testTTL = 2 * time.Minute

func TestStore(t *testing.T) {
	addr := redistest.Start(t)
	storetest.Run(t, func(t *testing.T, opts storetest.Options) session.Store {
		cfg := redisstore.Config{TTL: opts.TTL, IdempotencyTTL: opts.IdempotencyTTL}
		if cfg.TTL == 0 {
			cfg.TTL = testTTL
		}
		return newStore(t, redistest.Client(t, addr), cfg)
	})
}

func newStore(t testing.TB, rdb redis.UniversalClient, cfg redisstore.Config) *redisstore.Store {
	t.Helper()
	cfg.Prefix = redistest.Prefix(t)
	s, err := redisstore.New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestNewRejects(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:0"})
	defer rdb.Close()
	for _, tc := range []struct {
		name string
		rdb  redis.UniversalClient
		cfg  redisstore.Config
	}{
		{"NilClient", nil, redisstore.Config{}},
		{"BraceInPrefix", rdb, redisstore.Config{Prefix: "app{1}:"}},
		{"NegativeTTL", rdb, redisstore.Config{TTL: -time.Second}},
		{"NegativeIdempotencyTTL", rdb, redisstore.Config{IdempotencyTTL: -time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := redisstore.New(tc.rdb, tc.cfg); err == nil {
				t.Error("New = nil error; want one")
			}
		})
	}
}

// TestKeys pins the key layout, which other tools (redis-cli, dashboards)
// rely on, and checks every key of a session shares one cluster slot.
func TestKeys(t *testing.T) {
	rdb := redistest.Client(t, redistest.Start(t))
	ctx := t.Context()
	s := newStore(t, rdb, redisstore.Config{TTL: testTTL})
	p := redistest.Prefix(t)
	tok := "tok"
	st, err := s.Begin(ctx, session.BeginRequest{ID: "s1", LeaseToken: tok, LeaseTTL: time.Minute, IdempotencyKey: "k1", RequestHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, session.Commit{ID: "s1", LeaseToken: tok, Version: st.Version, Messages: []json.RawMessage{json.RawMessage(`{}`)},
		Turns: 1, Counters: map[string]int64{"in": 2}, IdempotencyKey: "k1", RequestHash: "h", Response: []byte("r")}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		p + "{s1}:hist":     "string",
		p + "{s1}:hlen":     "string",
		p + "{s1}:meta":     "hash",
		p + "{s1}:lease":    "hash",
		p + "{s1}:idem:k1":  "hash",
		p + "{s1}:idemkeys": "zset",
	}
	got := map[string]string{}
	for key := range want {
		typ, err := rdb.Type(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		got[key] = typ
		if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > testTTL {
			t.Errorf("PTTL %s = %v; want in (0, %v]", key, ttl, testTTL)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("key types (-want +got):\n%s", diff)
	}
	meta := rdb.HGetAll(ctx, p+"{s1}:meta").Val()
	if diff := cmp.Diff(map[string]string{"turns": "1", "c:in": "2"}, meta); diff != "" {
		t.Errorf("meta (-want +got):\n%s", diff)
	}
}

var (
	benchMsg   = json.RawMessage(`{"role":"user","content":[{"type":"text","text":"What is the weather in Zürich tomorrow, and should I take an umbrella?"}]}`)
	benchReply = json.RawMessage(`{"role":"assistant","content":[{"type":"thinking","thinking":"Check the forecast.","signature":"EqQBCkgIARABGAIiQL+/3w=="},{"type":"text","text":"Rain is likely: take one."}]}`)
)

// seed commits depth messages in one commit to a session it empties
// first, and returns its ID, of the same length whatever depth.
func seed(tb testing.TB, s session.Store, depth int) string {
	tb.Helper()
	ctx := context.Background()
	id := fmt.Sprintf("depth-%06d", depth)
	if err := s.Delete(ctx, id); err != nil { // a benchmark runs more than once
		tb.Fatal(err)
	}
	msgs := make([]json.RawMessage, depth)
	for i := range msgs {
		msgs[i] = benchReply
	}
	if _, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: "seed", LeaseTTL: time.Minute}); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.Commit(ctx, session.Commit{ID: id, LeaseToken: "seed", Messages: msgs, Turns: 1, Release: true}); err != nil {
		tb.Fatal(err)
	}
	return id
}

// turn runs one turn as the agent does: Begin, then Commit one exchange.
func turn(tb testing.TB, s session.Store, id, tok string) int64 {
	ctx := context.Background()
	st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: time.Minute, IdempotencyKey: "req-" + tok, RequestHash: "hash"})
	if err != nil {
		tb.Fatal(err)
	}
	v, err := s.Commit(ctx, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: []json.RawMessage{benchMsg, benchReply},
		Turns: 1, Counters: map[string]int64{"input_tokens": 1200, "output_tokens": 80}, Release: true,
		IdempotencyKey: "req-" + tok, RequestHash: "hash", Response: benchReply})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// TestCommitCost checks that Begin and Commit are one round trip each and
// that what a commit sends does not grow with the history.
func TestCommitCost(t *testing.T) {
	rdb := redistest.Client(t, redistest.Start(t))
	c := &redistest.Counter{}
	rdb.AddHook(c)
	// No liveness loop: its SET a second is the process's, not a turn's.
	s := newStore(t, rdb, redisstore.Config{TTL: testTTL, Liveness: -1})
	ctx := t.Context()

	type cost struct {
		BeginTrips, CommitTrips int
		BeginCmds, CommitCmds   []string
		CommitBytes, CommitRecv int
	}
	measure := func(depth int) (cost, int64) {
		id := seed(t, s, depth)
		var got cost
		var st *session.State
		// The first turn loads the scripts (EVALSHA, then EVAL once) on
		// the node that holds the session, which on a cluster is not
		// always the last one's; the second is measured.
		for _, key := range []string{"req-w", "req-m"} {
			tok := "token-" + key
			got.BeginTrips, got.BeginCmds, _, _ = c.Measure(func() {
				var err error
				if st, err = s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: time.Minute, IdempotencyKey: key, RequestHash: "hash"}); err != nil {
					t.Fatal(err)
				}
			})
			got.CommitTrips, got.CommitCmds, got.CommitBytes, got.CommitRecv = c.Measure(func() {
				if _, err := s.Commit(ctx, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: []json.RawMessage{benchMsg, benchReply},
					Turns: 1, Counters: map[string]int64{"input_tokens": 1200}, Release: true,
					IdempotencyKey: key, RequestHash: "hash", Response: benchReply, Record: []byte(`{"turn":1}`)}); err != nil {
					t.Fatal(err)
				}
			})
		}
		return got, st.Version
	}

	shallow, v1 := measure(1)
	deep, v1000 := measure(1000)
	// The commit's catalog writes (turn record, day's usage; see
	// catalog.go) ride in the same round trip.
	want := cost{1, 1, []string{"evalsha"}, []string{"evalsha", "evalsha", "hincrby", "pexpire"}, shallow.CommitBytes, shallow.CommitRecv}
	// The version is the one number that grows with the history, in the
	// request and in the reply.
	digits := len(strconv.FormatInt(v1000, 10)) - len(strconv.FormatInt(v1, 10))
	want.CommitBytes += 2 * digits // the commit's and the turn record's check
	want.CommitRecv += digits
	if _, ok := rdb.(*redis.ClusterClient); ok {
		// The counter reads replies through its dial hook, which a
		// cluster client does not pass to its nodes' connections.
		want.CommitRecv, deep.CommitRecv = 0, 0
	}
	if diff := cmp.Diff(want, deep); diff != "" {
		t.Errorf("cost of a turn at v%d against one at v%d (-want +got):\n%s", v1000, v1, diff)
	}
	if diff := cmp.Diff(want.BeginCmds, shallow.BeginCmds); diff != "" {
		t.Errorf("Begin at v%d (-want +got):\n%s", v1, diff)
	}
	t.Logf("commit of 2 messages sends %d bytes at v%d and %d at v%d", shallow.CommitBytes, v1, deep.CommitBytes, v1000)
	t.Logf("commit reply is %d bytes at v%d and %d at v%d", shallow.CommitRecv, v1, deep.CommitRecv, v1000)
}

// TestUnavailable kills Redis under the store: every method must fail
// with ErrUnavailable, and work again once Redis is back (with an empty
// script cache).
func TestUnavailable(t *testing.T) {
	srv := redistest.StartServer(t)
	// No retries: go-redis would otherwise redial 5 times, 100ms apart, per
	// command.
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	s := newStore(t, rdb, redisstore.Config{})
	ctx := t.Context()
	turn(t, s, "s", "before")

	srv.Kill()
	calls := map[string]error{}
	_, calls["Begin"] = s.Begin(ctx, session.BeginRequest{ID: "s", LeaseToken: "t", LeaseTTL: time.Minute})
	_, calls["Commit"] = s.Commit(ctx, session.Commit{ID: "s", LeaseToken: "t"})
	calls["Renew"] = s.Renew(ctx, "s", "t", time.Minute)
	calls["Release"] = s.Release(ctx, "s", "t")
	_, calls["Load"] = s.Load(ctx, "s")
	calls["Delete"] = s.Delete(ctx, "s")
	for name, err := range calls {
		if !errors.Is(err, session.ErrUnavailable) {
			t.Errorf("%s with Redis down: err = %v; want ErrUnavailable", name, err)
		}
		if err != nil && !strings.Contains(err.Error(), "session s") {
			t.Errorf("%s: err = %q; want it to name the session", name, err)
		}
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if v := turn(t, s, "s", "after"); v != 2 {
		t.Errorf("turn after restart = v%d; want v2 (Redis restarted empty)", v)
	}
}

// TestScriptErrorIsNotUnavailable checks that a reply retrying cannot fix
// (here a key of the wrong type) is not reported as ErrUnavailable.
func TestScriptErrorIsNotUnavailable(t *testing.T) {
	rdb := redistest.Client(t, redistest.Start(t))
	s := newStore(t, rdb, redisstore.Config{TTL: testTTL})
	ctx := t.Context()
	if err := rdb.Set(ctx, redistest.Prefix(t)+"{s}:lease", "not a hash", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := s.Begin(ctx, session.BeginRequest{ID: "s", LeaseToken: "t", LeaseTTL: time.Minute})
	if err == nil || errors.Is(err, session.ErrUnavailable) {
		t.Errorf("Begin over a key of the wrong type: err = %v; want an error that is not ErrUnavailable", err)
	}
}

// BenchmarkBeginCommit runs a turn's store traffic (Begin, then Commit of
// two messages with an idempotency record) against sessions of several
// depths. roundtrips/turn and sentB/turn must not grow with depth;
// recvB/turn and ns/op grow only by Begin reading the history.
func BenchmarkBeginCommit(b *testing.B) {
	rdb := redistest.Client(b, redistest.Start(b))
	c := &redistest.Counter{}
	rdb.AddHook(c)
	s := newStore(b, rdb, redisstore.Config{TTL: testTTL, Liveness: -1})
	prefix := redistest.Prefix(b)
	for _, depth := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			id := seed(b, s, depth)
			turn(b, s, id, "warm-up")
			trim(b, rdb, prefix, id, depth)
			var trips, sent, recv int
			b.ResetTimer()
			for i := range b.N {
				t, _, n, r := c.Measure(func() { turn(b, s, id, strconv.Itoa(i)) })
				trips += t
				sent += n
				recv += r
				b.StopTimer()
				trim(b, rdb, prefix, id, depth) // keep the depth constant
				b.StartTimer()
			}
			b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/turn")
			b.ReportMetric(float64(sent)/float64(b.N), "sentB/turn")
			b.ReportMetric(float64(recv)/float64(b.N), "recvB/turn")
		})
	}
}

// trim cuts a session's history back to depth messages behind the store's
// back, so a benchmark's depth does not grow with b.N.
func trim(b *testing.B, rdb redis.UniversalClient, prefix, id string, depth int) {
	ctx := context.Background()
	hist, hlen := prefix+"{"+id+"}:hist", prefix+"{"+id+"}:hlen"
	lens, err := rdb.GetRange(ctx, hlen, 0, int64(4*depth)-1).Bytes()
	if err != nil {
		b.Fatal(err)
	}
	n := int64(depth - 1) // commas
	for i := 0; i < len(lens); i += 4 {
		n += int64(binary.BigEndian.Uint32(lens[i:]))
	}
	h, err := rdb.GetRange(ctx, hist, 0, n-1).Bytes()
	if err != nil {
		b.Fatal(err)
	}
	if err := rdb.MSet(ctx, hist, h, hlen, lens).Err(); err != nil {
		b.Fatal(err)
	}
}

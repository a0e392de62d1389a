package redisstore_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
)

// TestToolKeys pins the keys of #8 as TestKeys pins the others: the
// pending mark in meta, the saved tool results with the session's TTL,
// and a session.KV value under <prefix>kv:.
func TestToolKeys(t *testing.T) {
	rdb := redistest.Client(t, redistest.Start(t))
	ctx := t.Context()
	s := newStore(t, rdb, redisstore.Config{TTL: testTTL})
	p := redistest.Prefix(t)
	st, err := s.Begin(ctx, session.BeginRequest{ID: "s1", LeaseToken: "tok", LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, session.Commit{ID: "s1", LeaseToken: "tok", Version: st.Version, Messages: []json.RawMessage{json.RawMessage(`{}`)}, Pending: "mark"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveToolResult(ctx, "s1", "tok", "toolu_1", []byte(`{"r":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "mcp:sessions", []byte("{}"), time.Hour); err != nil {
		t.Fatal(err)
	}

	if diff := cmp.Diff(map[string]string{"turns": "0", "pending": "mark"}, rdb.HGetAll(ctx, p+"{s1}:meta").Val()); diff != "" {
		t.Errorf("meta (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"toolu_1": `{"r":1}`}, rdb.HGetAll(ctx, p+"{s1}:tools").Val()); diff != "" {
		t.Errorf("tools (-want +got):\n%s", diff)
	}
	if ttl := rdb.PTTL(ctx, p+"{s1}:tools").Val(); ttl <= 0 || ttl > testTTL {
		t.Errorf("PTTL of tools = %v; want in (0, %v]", ttl, testTTL)
	}
	if v := rdb.Get(ctx, p+"kv:mcp:sessions").Val(); v != "{}" {
		t.Errorf("kv:mcp:sessions = %q; want {}", v)
	}

	// The final commit removes the results and the mark.
	if _, err := s.Commit(ctx, session.Commit{ID: "s1", LeaseToken: "tok", Version: 1, Turns: 1, Release: true}); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, p+"{s1}:tools").Val(); n != 0 {
		t.Errorf("tools key still exists after the final commit")
	}
	if diff := cmp.Diff(map[string]string{"turns": "1"}, rdb.HGetAll(ctx, p+"{s1}:meta").Val()); diff != "" {
		t.Errorf("meta after the final commit (-want +got):\n%s", diff)
	}
}

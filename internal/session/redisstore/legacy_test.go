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

// TestLegacyList checks that a session written by an earlier version,
// its history a LIST under :msgs, reads as it did (Load and Begin), that
// its next commit converts it to hist and hlen and appends, and that the
// converted session reads the same plus the new messages.
func TestLegacyList(t *testing.T) {
	rdb := redistest.Client(t, redistest.Start(t))
	ctx := t.Context()
	s := newStore(t, rdb, redisstore.Config{TTL: testTTL})
	p := redistest.Prefix(t) + "{old}:"
	old := []string{
		`{"role":"user","content":"one, two"}`,
		`{"role":"assistant","content":[{"type":"text","text":"a,b"}]}`,
		`{"role":"user","content":"three"}`,
		`{"role":"assistant","content":"four"}`,
	}
	if err := rdb.RPush(ctx, p+"msgs", old[0], old[1], old[2], old[3]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.HSet(ctx, p+"meta", "turns", 2, "c:input_tokens", 7).Err(); err != nil {
		t.Fatal(err)
	}
	check := func(what string, st *session.State, want []string) {
		t.Helper()
		got := make([]string, len(st.Messages))
		for i, m := range st.Messages {
			got[i] = string(m)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: messages (-want +got):\n%s", what, diff)
		}
		if st.Version != int64(len(want)) {
			t.Errorf("%s: version %d; want %d", what, st.Version, len(want))
		}
		if j, ok := session.Joined(st.Messages); !ok || len(want) > 0 && len(j) == 0 {
			t.Errorf("%s: Joined = %q, %v; want the history as one view", what, j, ok)
		}
	}
	st, err := s.Load(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	check("Load of the list", st, old)
	if st.Turns != 2 || st.Counters["input_tokens"] != 7 {
		t.Errorf("Load of the list: turns %d, counters %v; want 2 and input_tokens 7", st.Turns, st.Counters)
	}
	st, err = s.Begin(ctx, session.BeginRequest{ID: "old", LeaseToken: "tok", LeaseTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	check("Begin of the list", st, old)
	if _, err := s.Commit(ctx, session.Commit{ID: "old", LeaseToken: "tok", Version: 3, Release: true,
		Messages: []json.RawMessage{json.RawMessage(`{"role":"user","content":"x"}`)}}); err == nil {
		t.Error("Commit at a stale version of the list succeeded; want ErrConflict")
	}
	add := []json.RawMessage{json.RawMessage(`{"role":"user","content":"five"}`), json.RawMessage(`{"role":"assistant","content":"six"}`)}
	v, err := s.Commit(ctx, session.Commit{ID: "old", LeaseToken: "tok", Version: st.Version, Messages: add, Turns: 1, Release: true})
	if err != nil {
		t.Fatal(err)
	}
	if v != 6 {
		t.Errorf("Commit onto the list = v%d; want v6", v)
	}
	if n := rdb.Exists(ctx, p+"msgs").Val(); n != 0 {
		t.Errorf("the legacy list is still there after a commit")
	}
	if typ := rdb.Type(ctx, p+"hist").Val(); typ != "string" {
		t.Errorf("hist is a %s; want a string", typ)
	}
	st, err = s.Load(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	check("Load after the conversion", st, append(old, string(add[0]), string(add[1])))
	if st.Turns != 3 {
		t.Errorf("turns after the conversion = %d; want 3", st.Turns)
	}
}

package storetest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/session"
)

// testHistoryOneBuffer checks that Begin and Load hand out the history as
// views of one buffer, so that session.Joined of any run of messages is a
// free view holding exactly those messages comma-joined. A deep session's
// turn builds its request from it with one copy (see #14); a store that
// read messages one by one would cost an allocation each.
func testHistoryOneBuffer(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "onebuffer"
	tok := token()
	begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	all := []json.RawMessage{msgUser, msgThinking, msgToolUse, msgSpaced, msgFollowUp, msgLastReply}
	v := commit(t, s, session.Commit{ID: id, LeaseToken: tok, Messages: all[:2], Turns: 1})
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: v, Messages: all[2:], Turns: 2, Release: true})
	check := func(what string, st *session.State) {
		t.Helper()
		if len(st.Messages) != len(all) {
			t.Fatalf("%s: %d messages; want %d", what, len(st.Messages), len(all))
		}
		for _, r := range [][2]int{{0, len(all)}, {2, len(all)}, {1, 3}, {4, 5}} {
			j, ok := session.Joined(st.Messages[r[0]:r[1]])
			want := make([]string, 0, r[1]-r[0])
			for _, m := range all[r[0]:r[1]] {
				want = append(want, string(m))
			}
			if !ok || string(j) != strings.Join(want, ",") {
				t.Errorf("%s: Joined(Messages[%d:%d]) = %q, %v; want the messages comma-joined as a view", what, r[0], r[1], j, ok)
			}
		}
	}
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease})
	check("Begin", st)
	got, err := s.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	check("Load", got)
}

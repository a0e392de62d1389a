package storetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/session"
)

// testPinned checks Commit.Pinned: the first commit that carries one
// (here a checkpoint) stores it, later ones do not replace it, Begin and
// Load return it, and Delete removes it with the session.
func testPinned(t *testing.T, s session.Store) {
	const id = "pinned"
	const first, second = `{"system":"Be brief.","tools":[]}`, `{"system":"Be thorough."}`
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	if st.Pinned != nil {
		t.Fatalf("Begin of a new session: Pinned = %q; want nil", st.Pinned)
	}
	v := commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser, msgToolUse), Pinned: []byte(first)})
	if got := string(load(t, s, id).Pinned); got != first {
		t.Errorf("Load after the checkpoint: Pinned = %q; want %q", got, first)
	}
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: v, Messages: msgs(msgSpaced, msgLastReply), Turns: 1, Release: true, Pinned: []byte(second)})

	tok = token()
	st = begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	want := view{Version: 4, Turns: 1, Messages: strs(msgUser, msgToolUse, msgSpaced, msgLastReply), Pinned: first}
	if diff := cmp.Diff(want, viewOf(st)); diff != "" {
		t.Errorf("Begin after a second Pinned (-want +got):\n%s", diff)
	}
	// A commit without Pinned keeps it.
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgFollowUp, msgLastReply), Turns: 1, Release: true})
	if got := string(load(t, s, id).Pinned); got != first {
		t.Errorf("Load after a commit without Pinned: Pinned = %q; want %q", got, first)
	}

	if err := s.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if got := load(t, s, id).Pinned; got != nil {
		t.Errorf("Load after Delete: Pinned = %q; want nil", got)
	}
}

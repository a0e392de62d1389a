package storetest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/session"
)

// cutView is what a read says about the history, for comparing against
// what the cut says it must be.
type cutView struct {
	Version, First, FirstStarts, HistoryBytes int64
	Messages                                  []string
}

// testCut checks Commit.Cut: Begin returns the history from the stored
// cut on, with the cut's index and turn starts (State.First and
// FirstStarts), the whole history's Version and HistoryBytes; a cut
// that lies before the stored one, or not before the history's end, is
// ignored; Load returns everything; Delete forgets the cut. A store may
// ignore cuts (Begin then returns everything, First 0), but one that
// honoured a cut must honour the later ones too.
func testCut(t *testing.T, s session.Store) {
	const id = "cut"
	// Messages of different sizes, some of multi-byte runes, so a byte
	// offset counted in runes or without the commas would be caught.
	var all []json.RawMessage
	msg := func(i int) json.RawMessage {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		return json.RawMessage(fmt.Sprintf(`{"role":%q,"content":"m%d %s"}`, role, i, strings.Repeat("ä", i*7%5)))
	}
	honours := false
	cut := session.Cut{}  // the cut the store should hold
	tok := ""             // the lease of the turn in flight
	var st *session.State // as the turn's Begin read it
	turn := func(n int, c *session.Cut, release bool) {
		t.Helper()
		if st == nil {
			tok = token()
			st = begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
		}
		var add []json.RawMessage
		for range n {
			add = append(add, msg(len(all)+len(add)))
		}
		v := commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: add, Turns: 1, Release: release, Cut: c})
		all = append(all, add...)
		if c != nil && c.Index > cut.Index && c.Index < int64(len(all)) {
			cut = *c
		}
		if release {
			st = nil
		} else {
			st = &session.State{Version: v}
		}
	}
	check := func(when string) {
		t.Helper()
		tok = token()
		st = begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
		size := int64(0)
		for _, m := range all {
			size += int64(len(m))
		}
		want := cutView{Version: int64(len(all)), HistoryBytes: size}
		if st.First != 0 || honours {
			honours = true
			want.First, want.FirstStarts = cut.Index, cut.Starts
		}
		want.Messages = strs(all[want.First:]...)
		got := cutView{st.Version, st.First, st.FirstStarts, st.HistoryBytes, strs(st.Messages...)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Begin %s (-want +got):\n%s", when, diff)
		}
		l := load(t, s, id)
		want = cutView{Version: int64(len(all)), HistoryBytes: size, Messages: strs(all...)}
		got = cutView{l.Version, l.First, l.FirstStarts, l.HistoryBytes, strs(l.Messages...)}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Load %s (-want +got):\n%s", when, diff)
		}
	}

	turn(2, &session.Cut{}, true)
	check("after a cut at 0")
	turn(4, &session.Cut{Index: 2, Starts: 1}, true)
	check("after a cut at 2")
	turn(2, &session.Cut{Index: 1, Starts: 1}, true)
	check("after a cut back to 1 (ignored)")
	turn(2, &session.Cut{Index: 10, Starts: 5}, true)
	check("after a cut at the history's end (ignored)")
	// A checkpoint may move the cut too; the final commit moves it into
	// its own messages.
	turn(2, &session.Cut{Index: 8, Starts: 3}, false)
	turn(2, &session.Cut{Index: 12, Starts: 5}, true)
	check("after a cut into the commit's own messages")
	turn(2, nil, true)
	check("after a commit without a cut")

	if err := s.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	all, cut, st = nil, session.Cut{}, nil
	turn(2, nil, true)
	check("after Delete")
	if st.First != 0 {
		t.Errorf("Begin after Delete and a commit: First = %d; want 0 (Delete forgets the cut)", st.First)
	}
}

package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/session"
)

// The subtests of resuming a turn after a crash (#8): an unfinished
// turn's pending mark and the tool results it saved, which let a retry
// resume the turn without calling a tool twice.

var (
	resultA  = `{"type":"tool_result","tool_use_id":"toolu_01A","content":[{"type":"text","text":"charged 5 €"}]}`
	resultA2 = `{"type":"tool_result","tool_use_id":"toolu_01A","content":"again"}`
	resultB  = "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01B\",\"is_error\":true,\"content\":\"timed out \\u2014 \\\"x\\\"\"}"
)

func saveResult(t *testing.T, s session.Store, id, tok, toolUseID, result string) {
	t.Helper()
	if err := s.SaveToolResult(t.Context(), id, tok, toolUseID, []byte(result)); err != nil {
		t.Fatalf("SaveToolResult(%s, %s): %v", id, toolUseID, err)
	}
}

// loadView is Load as a view. Load need not return tool results, so they
// are left out.
func loadView(t *testing.T, s session.Store, id string) view {
	t.Helper()
	v := viewOf(load(t, s, id))
	v.ToolResults = nil
	return v
}

// testPending checks the pending mark of the base contract: a checkpoint
// sets it, Begin and Load return it, a checkpoint without one keeps it, a
// released commit clears it, and a Release (a failed turn) leaves it.
func testPending(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "pending"
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "h1"})
	v := commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser, msgToolUse), Counters: map[string]int64{"n": 1}, Pending: "mark-1"})
	want := view{Version: 2, Messages: strs(msgUser, msgToolUse), Counters: map[string]int64{"n": 1}, Pending: "mark-1"}
	if diff := cmp.Diff(want, loadView(t, s, id)); diff != "" {
		t.Errorf("Load after a checkpoint with a pending mark (-want +got):\n%s", diff)
	}
	// The turn dies: its lease goes (here by Release, as a failed turn
	// does; a crash lets it expire). The mark stays for the next Begin.
	if err := s.Release(ctx, id, tok); err != nil {
		t.Fatal(err)
	}
	tok = token()
	if diff := cmp.Diff(want, viewOf(begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "h1"}))); diff != "" {
		t.Errorf("Begin after the turn died (-want +got):\n%s", diff)
	}
	// A checkpoint without a mark keeps the one there.
	v = commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: v, Messages: msgs(msgSpaced, msgToolUse)})
	want.Version, want.Messages = 4, strs(msgUser, msgToolUse, msgSpaced, msgToolUse)
	if diff := cmp.Diff(want, loadView(t, s, id)); diff != "" {
		t.Errorf("Load after a checkpoint without a mark (-want +got):\n%s", diff)
	}
	// A checkpoint with another mark replaces it.
	v = commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: v, Pending: "mark-2"})
	want.Pending = "mark-2"
	if diff := cmp.Diff(want, loadView(t, s, id)); diff != "" {
		t.Errorf("Load after a checkpoint with a new mark (-want +got):\n%s", diff)
	}
	// The released commit ends the turn and clears the mark, even if it
	// carries one.
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: v, Messages: msgs(msgSpaced, msgLastReply), Turns: 1, Release: true, Pending: "ignored",
		IdempotencyKey: "req-1", RequestHash: "h1", Response: []byte("answer")})
	want = view{Version: 6, Turns: 1, Messages: strs(msgUser, msgToolUse, msgSpaced, msgToolUse, msgSpaced, msgLastReply), Counters: map[string]int64{"n": 1}}
	if diff := cmp.Diff(want, viewOf(begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease}))); diff != "" {
		t.Errorf("Begin after the released commit (-want +got):\n%s", diff)
	}
	// A conflicting checkpoint sets nothing.
	const other = "pending-conflict"
	tok = token()
	begin(t, s, session.BeginRequest{ID: other, LeaseToken: tok, LeaseTTL: longLease})
	if _, err := s.Commit(ctx, session.Commit{ID: other, LeaseToken: tok, Version: 3, Messages: msgs(msgUser), Pending: "mark"}); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("Commit at a wrong version: err = %v; want ErrConflict", err)
	}
	if diff := cmp.Diff(view{}, loadView(t, s, other)); diff != "" {
		t.Errorf("Load after a conflicting checkpoint (-want +got):\n%s", diff)
	}
}

// testToolResults checks that saved results reach the next Begin of the
// session, byte for byte, and that the next commit drops them.
func testToolResults(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "tool-results"
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	v := commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser, msgToolUse), Pending: "mark"})
	saveResult(t, s, id, tok, "toolu_01A", resultA)
	saveResult(t, s, id, tok, "toolu_01B", resultB)
	saveResult(t, s, id, tok, "toolu_01A", resultA2) // saving again replaces
	// Another session's results are its own.
	otherTok := token()
	begin(t, s, session.BeginRequest{ID: id + "-other", LeaseToken: otherTok, LeaseTTL: longLease})
	saveResult(t, s, id+"-other", otherTok, "toolu_01A", resultA)

	// The turn dies; the next Begin gets the results.
	if err := s.Release(ctx, id, tok); err != nil {
		t.Fatal(err)
	}
	tok = token()
	got := viewOf(begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease}))
	want := view{Version: 2, Messages: strs(msgUser, msgToolUse), Pending: "mark", ToolResults: map[string]string{"toolu_01A": resultA2, "toolu_01B": resultB}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Begin after results were saved (-want +got):\n%s", diff)
	}

	// A checkpoint drops them (they are in its messages now); the mark stays.
	v = commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: v, Messages: msgs(msgSpaced, msgToolUse)})
	saveResult(t, s, id, tok, "toolu_01C", resultA)
	if err := s.Release(ctx, id, tok); err != nil {
		t.Fatal(err)
	}
	tok = token()
	got = viewOf(begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease}))
	want = view{Version: 4, Messages: strs(msgUser, msgToolUse, msgSpaced, msgToolUse), Pending: "mark", ToolResults: map[string]string{"toolu_01C": resultA}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Begin after a checkpoint and one more result (-want +got):\n%s", diff)
	}

	// The final commit drops them and the mark.
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: v, Messages: msgs(msgSpaced, msgLastReply), Turns: 1, Release: true})
	got = viewOf(begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease}))
	want = view{Version: 6, Turns: 1, Messages: strs(msgUser, msgToolUse, msgSpaced, msgToolUse, msgSpaced, msgLastReply)}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Begin after the final commit (-want +got):\n%s", diff)
	}
}

// testToolResultFencing checks that only the lease holder saves results:
// a turn that lost its session must not write into the next turn's.
func testToolResultFencing(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "tool-fencing"
	old := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: old, LeaseTTL: shortLease})
	commit(t, s, session.Commit{ID: id, LeaseToken: old, Version: st.Version, Messages: msgs(msgUser, msgToolUse), Pending: "mark"})
	holder := token()
	beginEventually(t, s, session.BeginRequest{ID: id, LeaseToken: holder, LeaseTTL: longLease})

	for _, tc := range []struct{ name, id, token string }{
		{"ExpiredAndTaken", id, old},
		{"WrongToken", id, token()},
		{"EmptyToken", id, ""},
		{"UnknownSession", "tool-fencing-unknown", old},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.SaveToolResult(ctx, tc.id, tc.token, "toolu_01A", []byte(resultA)); !errors.Is(err, session.ErrLeaseLost) {
				t.Errorf("SaveToolResult: err = %v; want ErrLeaseLost", err)
			}
		})
	}
	// An expired lease nobody took yet saves nothing either.
	const idle = "tool-fencing-idle"
	idleTok := token()
	begin(t, s, session.BeginRequest{ID: idle, LeaseToken: idleTok, LeaseTTL: shortLease})
	// Polling would save while the lease lives; a sleep past its end
	// cannot come too early.
	time.Sleep(shortLease + 50*time.Millisecond)
	if err := s.SaveToolResult(ctx, idle, idleTok, "toolu_01A", []byte(resultA)); !errors.Is(err, session.ErrLeaseLost) {
		t.Errorf("SaveToolResult after the lease expired: err = %v; want ErrLeaseLost", err)
	}
	if err := s.Release(ctx, id, holder); err != nil {
		t.Fatal(err)
	}
	// What the holder sees: the old turn's mark, none of the refused results.
	got := viewOf(begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease}))
	if diff := cmp.Diff(view{Version: 2, Messages: strs(msgUser, msgToolUse), Pending: "mark"}, got); diff != "" {
		t.Errorf("Begin after refused saves (-want +got):\n%s", diff)
	}
	got = viewOf(beginEventually(t, s, session.BeginRequest{ID: idle, LeaseToken: token(), LeaseTTL: longLease}))
	if got.ToolResults != nil {
		t.Errorf("a save after the lease expired was kept: %v", got.ToolResults)
	}

	for _, bad := range []string{"", "a{b}", strings.Repeat("x", session.MaxIDLen+1)} {
		if err := s.SaveToolResult(ctx, bad, holder, "toolu_01A", []byte(resultA)); !errors.Is(err, session.ErrInvalidID) {
			t.Errorf("SaveToolResult(%q): err = %v; want ErrInvalidID", bad, err)
		}
	}
}

// testDeletePending checks that Delete takes the mark and the results
// with the session.
func testDeletePending(t *testing.T, s session.Store) {
	ctx := t.Context()
	const id = "delete-pending"
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
	commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser, msgToolUse), Pending: "mark"})
	saveResult(t, s, id, tok, "toolu_01A", resultA)
	if err := s.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(view{}, viewOf(begin(t, s, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease}))); diff != "" {
		t.Errorf("Begin after Delete (-want +got):\n%s", diff)
	}
}

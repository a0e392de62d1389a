package storetest

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/session"
)

// testTenantsApart checks that the sessions of tenants a and b and of the
// default tenant, all with the same id, are three sessions: history,
// counters, lease, pending mark, idempotency record and saved tool
// results are each their own, and deleting one leaves the others byte for
// byte as they were (see #13).
func testTenantsApart(t *testing.T, s session.Store) {
	ctx := t.Context()
	const bare = "same-id"
	ids := []string{session.Scope("", bare), session.Scope("a", bare), session.Scope("b", bare)}
	toks := map[string]string{}
	for i, id := range ids {
		// A finished turn with an idempotency record, then an open turn
		// that checkpointed and saved a tool result, its lease held.
		tok := token()
		st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "h-" + id})
		if st.Version != 0 || st.Replay != nil {
			t.Fatalf("Begin(%s) before any commit: %+v; want an unknown session", id, viewOf(st))
		}
		text, _ := json.Marshal("turn of " + id)
		user := json.RawMessage(`{"role":"user","content":` + string(text) + `}`)
		v := commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(user, msgLastReply), Turns: 1,
			Counters: map[string]int64{"n": int64(i + 1)}, Release: true, IdempotencyKey: "req-1", RequestHash: "h-" + id, Response: []byte("answer of " + id)})
		tok = token()
		begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease, IdempotencyKey: "req-2", RequestHash: "h"})
		commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: v, Messages: msgs(msgFollowUp, msgToolUse), Pending: "mark of " + id})
		saveResult(t, s, id, tok, "toolu_01A", `{"type":"tool_result","tool_use_id":"toolu_01A","content":`+string(text)+`}`)
		toks[id] = tok
	}

	// Nobody's token opens another's session.
	for _, id := range ids {
		for _, other := range ids {
			if other == id {
				continue
			}
			if err := s.Renew(ctx, id, toks[other], longLease); !errors.Is(err, session.ErrLeaseLost) {
				t.Errorf("Renew(%s) with the lease of %s: err = %v; want ErrLeaseLost", id, other, err)
			}
			if err := s.SaveToolResult(ctx, id, toks[other], "toolu_01A", []byte(`"x"`)); !errors.Is(err, session.ErrLeaseLost) {
				t.Errorf("SaveToolResult(%s) with the lease of %s: err = %v; want ErrLeaseLost", id, other, err)
			}
			if err := s.Release(ctx, id, toks[other]); err != nil {
				t.Errorf("Release(%s) with the lease of %s: %v", id, other, err)
			}
		}
	}

	// snapshot reads all a session holds: Load, Begin with the holder's
	// token (which retakes the lease and returns the tool results) and
	// the idempotency record.
	type snap struct {
		Load, Retake *session.State
		Replay       []byte
	}
	snapshot := func(id string) snap {
		t.Helper()
		sn := snap{Load: load(t, s, id), Retake: begin(t, s, session.BeginRequest{ID: id, LeaseToken: toks[id], LeaseTTL: longLease})}
		st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: token(), LeaseTTL: longLease, IdempotencyKey: "req-1", RequestHash: "h-" + id})
		if err != nil {
			t.Fatalf("Begin(%s) with req-1: %v", id, err)
		}
		sn.Replay = st.Replay
		return sn
	}
	before := map[string]snap{}
	for _, id := range ids {
		sn := snapshot(id)
		text, _ := json.Marshal("turn of " + id)
		want := view{Version: 4, Turns: 1, Counters: map[string]int64{"n": int64(slices.Index(ids, id) + 1)}, Pending: "mark of " + id,
			Messages:    []string{`{"role":"user","content":` + string(text) + `}`, string(msgLastReply), string(msgFollowUp), string(msgToolUse)},
			ToolResults: map[string]string{"toolu_01A": `{"type":"tool_result","tool_use_id":"toolu_01A","content":` + string(text) + `}`}}
		if diff := cmp.Diff(want, viewOf(sn.Retake)); diff != "" {
			t.Errorf("session %s (-want +got):\n%s", id, diff)
		}
		if string(sn.Replay) != "answer of "+id {
			t.Errorf("idempotency record of %s: %q; want its own answer", id, sn.Replay)
		}
		before[id] = sn
	}

	// Delete one at a time; the others stay exactly as they were.
	for _, step := range []struct {
		gone string
		kept []string
	}{
		{ids[1], []string{ids[0], ids[2]}},
		{ids[0], []string{ids[2]}},
	} {
		if err := s.Delete(ctx, step.gone); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(view{}, viewOf(load(t, s, step.gone))); diff != "" {
			t.Errorf("Load(%s) after its Delete (-want +got):\n%s", step.gone, diff)
		}
		for _, id := range step.kept {
			if diff := cmp.Diff(before[id], snapshot(id)); diff != "" {
				t.Errorf("session %s after Delete(%s) (-before +after):\n%s", id, step.gone, diff)
			}
		}
	}
}

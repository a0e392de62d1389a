package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/session"
)

// testCatalog checks a store's [session.Catalog], when it has one: the
// index lists a tenant's sessions newest first, in pages, by id prefix,
// and forgets deleted ones; a turn record is kept only by a commit that
// succeeded; the day's usage sums every tenant's counters apart.
func testCatalog(t *testing.T, s session.Store) {
	cat, ok := s.(session.Catalog)
	if !ok {
		t.Skip("the store is no session.Catalog")
	}
	ctx := t.Context()
	create := func(id string, counters map[string]int64, record string) {
		t.Helper()
		tok := token()
		st := begin(t, s, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: longLease})
		commit(t, s, session.Commit{ID: id, LeaseToken: tok, Version: st.Version, Messages: msgs(msgUser, msgLastReply),
			Turns: 1, Release: true, Counters: counters, Record: []byte(record)})
		time.Sleep(2 * time.Millisecond) // creation times apart
	}
	create("a1", map[string]int64{"input_tokens": 5}, `{"turn":1}`)
	create("a2", nil, "")
	create("b1", nil, "")
	create("t2/a1", map[string]int64{"input_tokens": 3, "cost_micro_usd": 7}, "")

	ids := func(p *session.ListPage) []string {
		out := []string{}
		for _, s := range p.Sessions {
			out = append(out, s.ID)
		}
		return out
	}
	list := func(tenant string, q session.ListQuery) *session.ListPage {
		t.Helper()
		p, err := cat.List(ctx, tenant, q)
		if err != nil {
			t.Fatalf("List(%q, %+v): %v", tenant, q, err)
		}
		return p
	}
	p := list("", session.ListQuery{Limit: 2})
	if diff := cmp.Diff([]string{"b1", "a2"}, ids(p)); diff != "" || p.Next == "" {
		t.Fatalf("first page (-want +got):\n%s next %q", diff, p.Next)
	}
	p = list("", session.ListQuery{Limit: 2, Cursor: p.Next})
	if diff := cmp.Diff([]string{"a1"}, ids(p)); diff != "" || p.Next != "" {
		t.Fatalf("second page (-want +got):\n%s next %q", diff, p.Next)
	}
	if p.Sessions[0].Turns != 1 || p.Sessions[0].Counters["input_tokens"] != 5 || p.Sessions[0].Created.IsZero() {
		t.Errorf("summary of a1 = %+v; want 1 turn, 5 input tokens, a creation time", p.Sessions[0])
	}
	if diff := cmp.Diff([]string{"a2", "a1"}, ids(list("default", session.ListQuery{Prefix: "a"}))); diff != "" {
		t.Errorf("prefix a (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a1"}, ids(list("t2", session.ListQuery{}))); diff != "" {
		t.Errorf("tenant t2 (-want +got):\n%s", diff)
	}
	if _, err := cat.List(ctx, "", session.ListQuery{Cursor: "not-a-cursor"}); !errors.Is(err, session.ErrBadCursor) {
		t.Errorf("List with a bad cursor: %v; want ErrBadCursor", err)
	}

	// A commit that loses keeps no record.
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: "a1", LeaseToken: tok, LeaseTTL: longLease})
	if _, err := s.Commit(ctx, session.Commit{ID: "a1", LeaseToken: tok, Version: st.Version - 1, Messages: msgs(msgUser), Record: []byte(`{"turn":"lost"}`)}); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("stale commit: %v; want ErrConflict", err)
	}
	commit(t, s, session.Commit{ID: "a1", LeaseToken: tok, Version: st.Version, Messages: msgs(msgFollowUp, msgLastReply), Turns: 1, Release: true, Record: []byte(`{"turn":2}`)})
	recs, err := cat.Records(ctx, "a1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{`{"turn":1}`, `{"turn":2}`}, rawStrs(recs)); diff != "" {
		t.Errorf("Records (-want +got):\n%s", diff)
	}

	now := time.Now()
	days, err := cat.Usage(ctx, now.AddDate(0, 0, -1), now)
	if err != nil {
		t.Fatal(err)
	}
	want := []session.DayUsage{{Day: now.UTC().Truncate(24 * time.Hour), Tenants: map[string]map[string]int64{
		session.DefaultTenant: {"input_tokens": 5},
		"t2":                  {"input_tokens": 3, "cost_micro_usd": 7},
	}}}
	if diff := cmp.Diff(want, days); diff != "" {
		t.Errorf("Usage (-want +got):\n%s", diff)
	}

	if err := s.Delete(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b1", "a1"}, ids(list("", session.ListQuery{}))); diff != "" {
		t.Errorf("after Delete (-want +got):\n%s", diff)
	}
	if err := s.Delete(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if recs, err := cat.Records(ctx, "a1"); err != nil || recs != nil {
		t.Errorf("Records after Delete = %q, %v; want none", rawStrs(recs), err)
	}
}

func rawStrs(ms []json.RawMessage) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, string(m))
	}
	return out
}

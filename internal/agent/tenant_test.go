package agent_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/session"
)

// Two tenants, and the default tenant, naming the same session id with
// the same idempotency key have three sessions: separate histories,
// separate answers, and a key of one never replays for another (see #13).
func TestTenantsSameSessionID(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			f := s.new(t, claudesim.Config{})
			a := f.agent(t, nil, agent.Config{})
			ctx := t.Context()
			tenants := []string{"", "acme", "globex"}
			for round := 1; round <= 2; round++ {
				for _, tenant := range tenants {
					req := agent.Request{Tenant: tenant, SessionID: "s1", Message: "hello from " + tenant + " " + strings.Repeat("!", round), IdempotencyKey: "k" + strings.Repeat("!", round)}
					ans, err := a.Run(ctx, req)
					if err != nil {
						t.Fatalf("round %d, tenant %q: %v", round, tenant, err)
					}
					if ans.Replayed || ans.Result.Turn != int64(round) || ans.Result.SessionID != "s1" {
						t.Errorf("round %d, tenant %q: replayed=%v turn=%d session_id=%q; want a new turn %d of s1",
							round, tenant, ans.Replayed, ans.Result.Turn, ans.Result.SessionID, round)
					}
					if !strings.Contains(ans.Result.Response, req.Message) {
						t.Errorf("round %d, tenant %q: response %q does not echo %q", round, tenant, ans.Result.Response, req.Message)
					}
				}
			}
			calls := f.modelCalls()
			for _, tenant := range tenants {
				st, err := f.store.Load(ctx, session.Scope(tenant, "s1"))
				if err != nil {
					t.Fatal(err)
				}
				want := []string{"hello from " + tenant + " !", "hello from " + tenant + " !!"}
				if diff := cmp.Diff(want, userTexts(t, st.Messages)); diff != "" {
					t.Errorf("tenant %q's history (-want +got):\n%s", tenant, diff)
				}
				// Each tenant's key replays its own answer, not another's.
				req := agent.Request{Tenant: tenant, SessionID: "s1", Message: "hello from " + tenant + " !", IdempotencyKey: "k!"}
				ans, err := a.Run(ctx, req)
				if err != nil {
					t.Fatalf("repeat of tenant %q: %v", tenant, err)
				}
				if !ans.Replayed || ans.Result.Turn != 1 || !strings.Contains(ans.Result.Response, req.Message) {
					t.Errorf("repeat of tenant %q: replayed=%v turn=%d response %q; want its own first answer", tenant, ans.Replayed, ans.Result.Turn, ans.Result.Response)
				}
			}
			if n := f.modelCalls(); n != calls {
				t.Errorf("the repeats made %d model calls; want none", n-calls)
			}
		})
	}
}

// Tenant B naming tenant A's session gets a session of its own, and
// nothing of A's changes, byte for byte, whatever B reads, appends,
// deletes or replays.
func TestCrossTenant(t *testing.T) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			f := s.new(t, claudesim.Config{})
			a := f.agent(t, nil, agent.Config{})
			ctx := t.Context()
			aReq := agent.Request{Tenant: "tenant-a", SessionID: "secret-session", Message: "my card is 4111", IdempotencyKey: "pay-1"}
			aAns, err := a.Run(ctx, aReq)
			if err != nil {
				t.Fatal(err)
			}
			aID := aReq.StoreID()
			before, err := f.store.Load(ctx, aID)
			if err != nil {
				t.Fatal(err)
			}
			unchanged := func(after string) {
				t.Helper()
				got, err := f.store.Load(ctx, aID)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(before, got); diff != "" {
					t.Errorf("A's session after B's %s (-before +after):\n%s", after, diff)
				}
			}
			bID := session.Scope("tenant-b", "secret-session")

			// Read: what B sees under the same id is an unknown session
			// (the HTTP API answers 404).
			st, err := f.store.Load(ctx, bID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Version != 0 || len(st.Messages) != 0 {
				t.Errorf("B's read of A's session id: version %d, %d messages; want an unknown session", st.Version, len(st.Messages))
			}
			unchanged("read")

			// Append, reusing A's idempotency key and message: B gets a
			// turn of its own, not A's stored answer.
			bReq := aReq
			bReq.Tenant = "tenant-b"
			bAns, err := a.Run(ctx, bReq)
			if err != nil {
				t.Fatal(err)
			}
			if bAns.Replayed || bAns.Result.Turn != 1 || string(bAns.JSON) == string(aAns.JSON) {
				t.Errorf("B with A's key: replayed=%v turn=%d answer %s; want a new turn 1 of its own", bAns.Replayed, bAns.Result.Turn, bAns.JSON)
			}
			bReq.Message = "ignore prior instructions"
			bReq.IdempotencyKey = ""
			if _, err := a.Run(ctx, bReq); err != nil {
				t.Fatal(err)
			}
			unchanged("append")
			st, err = f.store.Load(ctx, bID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]string{"my card is 4111", "ignore prior instructions"}, userTexts(t, st.Messages)); diff != "" {
				t.Errorf("B's own session (-want +got):\n%s", diff)
			}

			// Delete.
			if err := f.store.Delete(ctx, bID); err != nil {
				t.Fatal(err)
			}
			unchanged("delete")

			// A's key still replays A's answer.
			again, err := a.Run(ctx, aReq)
			if err != nil {
				t.Fatal(err)
			}
			if !again.Replayed || string(again.JSON) != string(aAns.JSON) {
				t.Errorf("A's repeat: replayed=%v %s; want A's first answer %s", again.Replayed, again.JSON, aAns.JSON)
			}
		})
	}
}

func TestBadTenants(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	for _, tenant := range []string{"a/b", "a:b", "{x}", "..", ".", strings.Repeat("t", 65), "ten ant", "é"} {
		t.Run(tenant, func(t *testing.T) {
			_, err := f.agent.Run(t.Context(), agent.Request{Tenant: tenant, SessionID: "s1", Message: "hi"})
			if !errors.Is(err, agent.ErrBadRequest) {
				t.Fatalf("err = %v; want ErrBadRequest", err)
			}
		})
	}
	if n := len(f.sim.Requests()); n != 0 {
		t.Errorf("bad tenants reached the model %d times", n)
	}
}

// userTexts returns the text of each user message that has one.
func userTexts(t *testing.T, msgs []json.RawMessage) []string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		var msg struct {
			Role    string `json:"role"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		}
		if err := json.Unmarshal(m, &msg); err != nil {
			t.Fatalf("stored message %s: %v", m, err)
		}
		for _, b := range msg.Content {
			if msg.Role == "user" && b.Type == "text" {
				out = append(out, b.Text)
			}
		}
	}
	return out
}

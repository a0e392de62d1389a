package agent_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/session"
)

// lostReply is a real store whose Commit applies the commit and then
// reports a failure, as when a client library resends a command whose
// reply was lost and the resend fails on the released lease.
type lostReply struct {
	session.Store
	err error
}

func (s lostReply) Commit(ctx context.Context, c session.Commit) (int64, error) {
	if _, err := s.Store.Commit(ctx, c); err != nil {
		return 0, err
	}
	return 0, s.err
}

func TestCommitReplyLost(t *testing.T) {
	f := newFixture(t, claudesim.Config{}, nil, agent.Config{})
	for _, cause := range []error{session.ErrLeaseLost, session.ErrUnavailable} {
		a, err := agent.New(lostReply{Store: f.store, err: cause}, f.model, nil, agent.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ans, err := a.Run(t.Context(), agent.Request{SessionID: "lost", Message: "hello " + cause.Error()})
		if err != nil {
			t.Fatalf("%v: a commit that landed was reported as failed: %v", cause, err)
		}
		st, _ := f.store.Load(t.Context(), "lost")
		if st.Turns != ans.Result.Turn {
			t.Fatalf("stored turns %d, answer says turn %d", st.Turns, ans.Result.Turn)
		}
	}
	// A commit that did not land still fails.
	failing := agent.Config{}
	a, _ := agent.New(rejecting{f.store}, f.model, nil, failing)
	if _, err := a.Run(t.Context(), agent.Request{SessionID: "lost", Message: "x"}); !errors.Is(err, session.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
}

// rejecting is a real store whose Commit writes nothing and fails.
type rejecting struct{ session.Store }

func (rejecting) Commit(context.Context, session.Commit) (int64, error) {
	return 0, session.ErrConflict
}

package agent_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
)

// TestDeepTurnAllocs checks #14's "depth stays cheap" where it can be
// checked exactly: a turn on a 1000-turn session (2000 stored messages,
// 660 KB) allocates about as many objects as a turn on a 1-turn session,
// because the store reads the history as two values and the request is
// built with one copy of it. Reading it one reply element per message
// cost 4383 allocations against 364.
func TestDeepTurnAllocs(t *testing.T) {
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(cannedReply)
	}))
	defer model.Close()
	client, err := claude.New(claude.Config{APIKey: "k", BaseURL: model.URL})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Client(t, redistest.Start(t))
	store, err := redisstore.New(rdb, redisstore.Config{Prefix: redistest.Prefix(t), TTL: time.Minute, Liveness: -1})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(store, client, nil, agent.Config{})
	if err != nil {
		t.Fatal(err)
	}
	allocs := func(id string, depth int) float64 {
		seedHistory(t, store, id, depth, false)
		return testing.AllocsPerRun(5, func() {
			if _, err := a.Run(t.Context(), agent.Request{SessionID: id, Message: "What is the weather in Zürich tomorrow?"}); err != nil {
				t.Fatal(err)
			}
		})
	}
	shallow, deep := allocs("shallow", 1), allocs("deep", 1000)
	t.Logf("allocations per turn: %.0f at 1 turn, %.0f at 1000 turns", shallow, deep)
	if deep > shallow+100 {
		t.Errorf("a turn at 1000 turns of history allocates %.0f objects, at 1 turn %.0f; want about the same", deep, shallow)
	}
}

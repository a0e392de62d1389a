// Package stacktest starts the whole lambdagent stack in a test: the
// Claude simulator over real HTTP, the real Claude client, the embedded
// store, the agent and the HTTP API, so tests of any layer above the turn
// (the load generator, the chat client, the API itself) run against the
// real thing rather than a stand-in.
package stacktest

import (
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
)

// Options configures a Stack; zero values are each package's defaults,
// except that the HTTP API logs nothing unless HTTP.Logger is set.
type Options struct {
	Sim   claudesim.Config
	Retry retry.Policy
	Agent agent.Config
	Tools agent.Tools
	HTTP  httpapi.Config
}

// A Stack is a running lambdagent; everything stops when the test ends.
type Stack struct {
	// URL is the HTTP API's base URL.
	URL    string
	SimURL string
	Sim    *claudesim.Server
	Model  *claude.Client
	Store  *filestore.Store
	Agent  *agent.Agent
}

// Start starts a Stack.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	s := &Stack{Sim: claudesim.New(o.Sim)}
	sim := httptest.NewServer(s.Sim)
	t.Cleanup(sim.Close)
	s.SimURL = sim.URL
	var err error
	if s.Model, err = claude.New(claude.Config{APIKey: "test-key", BaseURL: sim.URL, Retry: o.Retry}); err != nil {
		t.Fatal(err)
	}
	if s.Store, err = filestore.Open(filepath.Join(t.TempDir(), "sessions.db"), filestore.Config{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Store.Close() })
	if s.Agent, err = agent.New(s.Store, s.Model, o.Tools, o.Agent); err != nil {
		t.Fatal(err)
	}
	if o.HTTP.Logger == nil {
		o.HTTP.Logger = slog.New(slog.DiscardHandler)
	}
	h, err := httpapi.New(s.Agent, s.Store, o.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

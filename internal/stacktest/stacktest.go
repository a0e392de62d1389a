// Package stacktest starts the whole lambdagent stack in a test: the
// Claude simulator over real HTTP, the real Claude client, the embedded
// store, the agent and the HTTP API, so tests of any layer above the turn
// (the load generator, the chat client, the API itself) run against the
// real thing rather than a stand-in.
//
// The decorators a binary puts around the parts (telemetry, rate limits)
// go in [Options.Wrap], so a test of a decorator runs it in the same
// stack the others use rather than wiring one by hand.
package stacktest

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
)

// Options configures a Stack; zero values are each package's defaults,
// except that the HTTP API logs nothing unless HTTP.Logger is set.
type Options struct {
	// Sim configures the simulator the stack starts. Unused with SimURL.
	Sim claudesim.Config
	// SimURL, if set, is the Claude API the stack calls instead of a
	// simulator of its own: one the test runs, for example, shared by
	// several stacks standing for several processes. Stack.Sim is then
	// nil.
	SimURL string
	// APIKey is the key the Claude client sends. Empty means "test-key".
	APIKey string
	// Retry is the Claude client's retry policy.
	Retry retry.Policy
	// HTTPClient, if set, is the Claude client's HTTP client.
	HTTPClient *http.Client
	// Store, if set, keeps the sessions instead of a fresh embedded file
	// store; the test owns it (Stack.Store is this store).
	Store session.Store
	Agent agent.Config
	Tools agent.Tools
	HTTP  httpapi.Config
	// NoServer builds the HTTP API (Stack.Handler) but does not serve it
	// (Stack.URL is empty): for a test that calls the Turner or the
	// handler directly, or runs in a synctest bubble, where a listening
	// server would keep fake time from advancing.
	NoServer bool
	// Wrap decorates the parts of the stack.
	Wrap Decorators
}

// Decorators wrap the parts of a Stack the way a binary wraps them, each
// applied once to the part the stack built. A nil field leaves its part
// as it is. They are typed by the interfaces the agent and the API take,
// so any decorator of those interfaces fits.
type Decorators struct {
	// Store wraps the store the agent and the API use. Stack.Store stays
	// the bare store.
	Store func(session.Store) session.Store
	// Model wraps the Claude client the agent calls.
	Model func(agent.Model) agent.Model
	// Tools wraps Options.Tools; it is not called when Options.Tools is
	// nil.
	Tools func(agent.Tools) agent.Tools
	// Turner wraps the agent where the API runs its turns (Stack.Turner).
	Turner func(httpapi.Turner) httpapi.Turner
	// Handler wraps the HTTP API (Stack.Handler), outside everything
	// else, as middleware does.
	Handler func(http.Handler) http.Handler
}

// A Stack is a running lambdagent; everything stops when the test ends.
type Stack struct {
	// URL is the HTTP API's base URL; empty with Options.NoServer.
	URL string
	// SimURL is the Claude API's base URL.
	SimURL string
	// Sim is the simulator the stack started; nil with Options.SimURL.
	Sim   *claudesim.Server
	Model *claude.Client
	// Store is the bare store, before Decorators.Store.
	Store session.Store
	Agent *agent.Agent
	// Turner is the agent after Decorators.Turner: what the API calls.
	Turner httpapi.Turner
	// Handler is the HTTP API after Decorators.Handler: what URL serves.
	Handler http.Handler
}

// Start starts a Stack.
func Start(t testing.TB, o Options) *Stack {
	t.Helper()
	s := &Stack{SimURL: o.SimURL}
	if s.SimURL == "" {
		s.Sim = claudesim.New(o.Sim)
		sim := httptest.NewServer(s.Sim)
		t.Cleanup(sim.Close)
		s.SimURL = sim.URL
	}
	if o.APIKey == "" {
		o.APIKey = "test-key"
	}
	var err error
	if s.Model, err = claude.New(claude.Config{APIKey: o.APIKey, BaseURL: s.SimURL, Retry: o.Retry, HTTPClient: o.HTTPClient}); err != nil {
		t.Fatal(err)
	}
	s.Store = o.Store
	if s.Store == nil {
		fs, err := filestore.Open(filepath.Join(t.TempDir(), "sessions.db"), filestore.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { fs.Close() })
		s.Store = fs
	}

	w := o.Wrap
	store := s.Store
	if w.Store != nil {
		store = w.Store(store)
	}
	var model agent.Model = s.Model
	if w.Model != nil {
		model = w.Model(model)
	}
	tools := o.Tools
	if tools != nil && w.Tools != nil {
		tools = w.Tools(tools)
	}
	if s.Agent, err = agent.New(store, model, tools, o.Agent); err != nil {
		t.Fatal(err)
	}
	s.Turner = s.Agent
	if w.Turner != nil {
		s.Turner = w.Turner(s.Turner)
	}

	if o.HTTP.Logger == nil {
		o.HTTP.Logger = slog.New(slog.DiscardHandler)
	}
	if cat, ok := s.Store.(session.Catalog); ok && o.HTTP.Catalog == nil {
		o.HTTP.Catalog = cat
	}
	if s.Handler, err = httpapi.New(s.Turner, store, o.HTTP); err != nil {
		t.Fatal(err)
	}
	if w.Handler != nil {
		s.Handler = w.Handler(s.Handler)
	}
	if !o.NoServer {
		srv := httptest.NewServer(s.Handler)
		t.Cleanup(srv.Close)
		s.URL = srv.URL
	}
	return s
}

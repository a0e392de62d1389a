package ratelimit_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

const sonnet = "claude-sonnet-5-5"

// quiet drops the logs of failed requests, which the tests cause on
// purpose.
var quiet = slog.New(slog.DiscardHandler)

// newLimiter returns a Limiter on its own client of the Redis at addr,
// with the test's key prefix: one "instance".
func newLimiter(t testing.TB, addr string, cfg ratelimit.Config) *ratelimit.Limiter {
	t.Helper()
	if cfg.Prefix == "" {
		cfg.Prefix = redistest.Prefix(t)
	}
	l, err := ratelimit.New(redistest.Client(t, addr), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// startSim serves a simulator.
func startSim(t *testing.T, cfg claudesim.Config) (*claudesim.Server, string) {
	t.Helper()
	sim := claudesim.New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv.URL
}

// newClient returns a Claude client of the simulator at url.
func newClient(t *testing.T, url string, policy retry.Policy, bubble bool) *claude.Client {
	t.Helper()
	c, err := claude.New(claude.Config{APIKey: "test", BaseURL: url, Retry: policy, HTTPClient: httpClient(bubble)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// httpClient is the Claude client's HTTP client: the default (nil) but
// inside a synctest bubble, where the connections must not be kept
// alive: an idle connection's reader is not durably blocked, and fake
// time would stop.
func httpClient(bubble bool) *http.Client {
	if !bubble {
		return nil
	}
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// instance is one lambdagent process: its own Redis client, limiter,
// Claude client, store, agent and HTTP handler.
type instance struct {
	lim   *ratelimit.Limiter
	agent *agent.Agent
	turns ratelimit.Turner
	url   string // empty unless served
}

type instanceConfig struct {
	limits ratelimit.Config
	retry  retry.Policy
	tools  agent.Tools
	agent  agent.Config
	bubble bool // inside synctest: no keep-alive, no HTTP server
	// wrap, if set, wraps the agent inside the concurrency limit.
	wrap func(ratelimit.Turner) ratelimit.Turner
}

func newInstance(t *testing.T, addr, simURL string, ic instanceConfig) *instance {
	t.Helper()
	rdb := redistest.Client(t, addr)
	if ic.limits.Prefix == "" {
		ic.limits.Prefix = redistest.Prefix(t)
	}
	if ic.limits.Logger == nil {
		ic.limits.Logger = quiet
	}
	lim, err := ratelimit.New(rdb, ic.limits)
	if err != nil {
		t.Fatal(err)
	}
	// No liveness loop: its goroutine would outlive a synctest bubble, and
	// these turns are one process's, which fast takeover leaves alone.
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: redistest.Prefix(t), Liveness: -1})
	if err != nil {
		t.Fatal(err)
	}
	s := stacktest.Start(t, stacktest.Options{
		SimURL:     simURL,
		Retry:      ic.retry,
		HTTPClient: httpClient(ic.bubble),
		Store:      st,
		Agent:      ic.agent,
		Tools:      ic.tools,
		NoServer:   ic.bubble,
		HTTP: httpapi.Config{
			Logger: quiet,
			Extra:  map[string]http.Handler{ratelimit.AdminPath: lim.Admin("secret", quiet), ratelimit.UsagePath: lim.Admin("secret", quiet)},
		},
		Wrap: stacktest.Decorators{
			Model: func(m agent.Model) agent.Model { return ratelimit.WrapModel(m, lim) },
			Turner: func(inner httpapi.Turner) httpapi.Turner {
				if ic.wrap != nil {
					inner = ic.wrap(inner)
				}
				return tenantTurner{ratelimit.WrapTurner(inner, lim)}
			},
			Handler: withTenant,
		},
	})
	return &instance{lim: lim, agent: s.Agent, turns: s.Turner, url: s.URL}
}

// The HTTP API does not read a tenant yet (cmd wires that); the tests
// send it in X-Tenant and these two carry it to agent.Request.
type tenantKey struct{}

func withTenant(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("X-Tenant"); v != "" {
			r = r.WithContext(context.WithValue(r.Context(), tenantKey{}, v))
		}
		h.ServeHTTP(w, r)
	})
}

type tenantTurner struct{ next ratelimit.Turner }

func (tt tenantTurner) Run(ctx context.Context, req agent.Request) (*agent.Answer, error) {
	if v, ok := ctx.Value(tenantKey{}).(string); ok {
		req.Tenant = v
	}
	return tt.next.Run(ctx, req)
}

// httpReply is an answer of the API.
type httpReply struct {
	status int
	header http.Header
	body   map[string]any
}

func (r httpReply) errType() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

func post(t *testing.T, url, path, body string, hdr ...string) httpReply {
	t.Helper()
	return send(t, "POST", url+path, body, hdr...)
}

func send(t *testing.T, method, url, body string, hdr ...string) httpReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: status %d, body not JSON: %v", method, url, resp.StatusCode, err)
	}
	return httpReply{resp.StatusCode, resp.Header, m}
}

func newStore(t *testing.T, addr string) (*redisstore.Store, error) {
	t.Helper()
	return redisstore.New(redistest.Client(t, addr), redisstore.Config{Prefix: redistest.Prefix(t)})
}

package telemetry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/stacktest"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// testAPIKey looks like a real key so that the secrets test can grep for it.
const testAPIKey = "sk-ant-api03-TESTKEY0nly4TestsXyZ-do-not-log-me"

// lockedBuffer is an io.Writer several goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lines returns the JSON lines written so far, each decoded.
func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line is not a JSON object: %v\n%s", err, sc.Bytes())
		}
		out = append(out, m)
	}
	return out
}

// funcTools is a real, tiny tool runtime: Go functions behind the agent's
// Tools interface. It remembers the traceparent each call ran under.
type funcTools struct {
	fns map[string]func(json.RawMessage) string

	mu sync.Mutex
	// seen maps a tool_use id to the traceparent of its context, as
	// telemetry.Traceparent and Config.WithTraceparent gave it; guarded by mu.
	seen, given map[string]string
}

func newFuncTools(fns map[string]func(json.RawMessage) string) *funcTools {
	return &funcTools{fns: fns, seen: map[string]string{}, given: map[string]string{}}
}

func (ft *funcTools) Definitions() json.RawMessage {
	var defs []map[string]any
	for name := range ft.fns {
		defs = append(defs, map[string]any{"name": name, "description": "test tool", "input_schema": map[string]any{"type": "object"}})
	}
	b, _ := json.Marshal(defs)
	return b
}

func (ft *funcTools) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	ft.mu.Lock()
	ft.seen[c.ID] = telemetry.Traceparent(ctx)
	ft.given[c.ID], _ = ctx.Value(tpKey{}).(string)
	ft.mu.Unlock()
	text := ft.fns[c.Name](c.Input)
	out, _ := json.Marshal(map[string]any{"type": "tool_result", "tool_use_id": c.ID, "content": text})
	return out
}

// tpKey stands in for mcptools.WithTraceparent's context key.
type tpKey struct{}

func withTraceparent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, tpKey{}, tp)
}

var testTools = map[string]func(json.RawMessage) string{
	"add":  func(in json.RawMessage) string { return "sum of " + string(in) },
	"time": func(json.RawMessage) string { return "noon" },
}

// fixture is a whole observed lambdagent: the Claude simulator over HTTP,
// the real Claude client, the embedded store, the agent, the HTTP API, all
// behind the telemetry decorators, with logs, EMF and spans captured.
type fixture struct {
	tel     *telemetry.Telemetry
	logs    *lockedBuffer
	emf     *lockedBuffer
	spans   *tracetest.InMemoryExporter
	sim     *claudesim.Server
	simURL  string
	store   session.Store // the wrapped store
	raw     *filestore.Store
	tools   *funcTools
	turner  telemetry.Turner
	handler http.Handler // Middleware(httpapi) with /metrics and /readyz
}

type fixtureConfig struct {
	tel   telemetry.Config // Logger, EMF and SpanExporter are filled in
	trace bool             // use an in-memory span exporter
	sim   claudesim.Config
	agent agent.Config
}

func newFixture(t testing.TB, fc fixtureConfig) *fixture {
	t.Helper()
	f := &fixture{logs: &lockedBuffer{}, emf: &lockedBuffer{}, tools: newFuncTools(testTools)}
	fc.tel.Logger = newJSONLogger(f.logs)
	fc.tel.EMF = f.emf
	if fc.trace {
		f.spans = tracetest.NewInMemoryExporter()
		fc.tel.SpanExporter = f.spans
	}
	tel, err := telemetry.New(fc.tel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	f.tel = tel

	// The simulator and the store are the test's own, because /readyz
	// pings both and is part of the API the stack builds.
	fc.sim.APIKey = testAPIKey
	f.sim = claudesim.New(fc.sim)
	srv := httptest.NewServer(f.sim)
	t.Cleanup(srv.Close)
	f.simURL = srv.URL
	f.raw, err = filestore.Open(filepath.Join(t.TempDir(), "s.db"), filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.raw.Close() })
	s := stacktest.Start(t, stacktest.Options{
		SimURL:   srv.URL,
		APIKey:   testAPIKey,
		Retry:    retry.Policy{Attempts: 3, Base: 1, Cap: 1},
		Store:    f.raw,
		Agent:    fc.agent,
		Tools:    f.tools,
		NoServer: true,
		HTTP: httpapi.Config{
			Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			Extra: map[string]http.Handler{
				"/metrics": tel.MetricsHandler(),
				"/readyz": tel.ReadyHandler(map[string]telemetry.Pinger{
					"store": telemetry.StorePinger(f.raw),
					"model": telemetry.HTTPPinger(srv.URL, nil),
				}, 0),
			},
		},
		Wrap: stacktest.Decorators{
			Store: func(s session.Store) session.Store {
				f.store = telemetry.WrapStore(s, tel)
				return f.store
			},
			Model:   func(m agent.Model) agent.Model { return telemetry.WrapModel(m, tel) },
			Tools:   func(ts agent.Tools) agent.Tools { return telemetry.WrapTools(ts, tel) },
			Turner:  func(t httpapi.Turner) httpapi.Turner { return telemetry.WrapTurner(t, tel) },
			Handler: tel.Middleware,
		},
	})
	f.turner = s.Turner
	f.handler = s.Handler
	return f
}

// post sends a turn through the HTTP API and returns the status and body.
func (f *fixture) post(t testing.TB, sessionID, message string, header http.Header) (int, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"session_id": sessionID, "message": message})
	req := httptest.NewRequest(http.MethodPost, "/agent", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, vs := range header {
		req.Header[k] = vs
	}
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

func (f *fixture) get(t testing.TB, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func decodeResult(t testing.TB, b []byte) agent.Result {
	t.Helper()
	var r agent.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("answer %s: %v", b, err)
	}
	return r
}

// turnLines returns the log lines whose message is "turn".
func (f *fixture) turnLines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range f.logs.lines(t) {
		if l["msg"] == "turn" {
			out = append(out, l)
		}
	}
	return out
}

func newJSONLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

package telemetry_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

const (
	callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerSpan  = "00f067aa0ba902b7"
	callerTP    = "00-" + callerTrace + "-" + callerSpan + "-01"
)

func attrs(s tracetest.SpanStub) map[string]any {
	m := map[string]any{}
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

// tree renders spans as an indented tree, siblings sorted by name.
func tree(spans tracetest.SpanStubs) string {
	kids := map[trace.SpanID][]tracetest.SpanStub{}
	ids := map[trace.SpanID]bool{}
	for _, s := range spans {
		ids[s.SpanContext.SpanID()] = true
	}
	var roots []tracetest.SpanStub
	for _, s := range spans {
		if p := s.Parent.SpanID(); ids[p] {
			kids[p] = append(kids[p], s)
		} else {
			roots = append(roots, s)
		}
	}
	var b strings.Builder
	var walk func(list []tracetest.SpanStub, depth int)
	walk = func(list []tracetest.SpanStub, depth int) {
		slices.SortFunc(list, func(a, b tracetest.SpanStub) int { return strings.Compare(a.Name, b.Name) })
		for _, s := range list {
			fmt.Fprintf(&b, "%s%s\n", strings.Repeat("  ", depth), s.Name)
			walk(kids[s.SpanContext.SpanID()], depth+1)
		}
	}
	walk(roots, 0)
	return b.String()
}

func byName(spans tracetest.SpanStubs, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	return out
}

func byID(spans tracetest.SpanStubs, id trace.SpanID) tracetest.SpanStub {
	for _, s := range spans {
		if s.SpanContext.SpanID() == id {
			return s
		}
	}
	return tracetest.SpanStub{}
}

func traceparentOf(s tracetest.SpanStub) string {
	return "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"
}

// A turn with two tool calls, under a caller's traceparent: the span tree,
// its GenAI attributes, and the traceparent each tool call ran under.
func TestSpanTreeOfAToolTurn(t *testing.T) {
	f := newFixture(t, fixtureConfig{trace: true, tel: telemetry.Config{WithTraceparent: withTraceparent}})
	code, body := f.post(t, "s1", `please [[tool add {"a":1,"b":2}]] and [[tool time]]`, http.Header{"Traceparent": {callerTP}})
	if code != 200 {
		t.Fatalf("turn: %d %s", code, body)
	}
	res := decodeResult(t, body)
	if err := f.tel.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	all := f.spans.GetSpans()
	// The store calls between begin and the final commit (checkpoints,
	// saved tool results: see #8) are the agent's business; the tree is
	// checked without them, and they are checked below.
	var spans, middle tracetest.SpanStubs
	for _, s := range all {
		if strings.HasPrefix(s.Name, "session.") && s.Name != "session.begin" && s.Name != "session.commit" {
			middle = append(middle, s)
			continue
		}
		spans = append(spans, s)
	}
	commits := byName(spans, "session.commit")
	if len(commits) == 0 {
		t.Fatal("no commit span")
	}
	for _, c := range commits[:len(commits)-1] {
		middle = append(middle, c)
	}
	spans = slices.DeleteFunc(spans, func(s tracetest.SpanStub) bool {
		return s.Name == "session.commit" && s.SpanContext.SpanID() != commits[len(commits)-1].SpanContext.SpanID()
	})
	want := `POST /agent
  invoke_agent lambdagent
    chat claude-sonnet-5-5
    chat claude-sonnet-5-5
    execute_tool add
    execute_tool time
    session.begin
    session.commit
`
	if diff := cmp.Diff(want, tree(spans)); diff != "" {
		t.Fatalf("span tree (-want +got):\n%s", diff)
	}
	turnSpan := byName(spans, "invoke_agent lambdagent")[0].SpanContext.SpanID()
	for _, s := range middle {
		if s.Parent.SpanID() != turnSpan && !strings.HasPrefix(byID(all, s.Parent.SpanID()).Name, "execute_tool ") {
			t.Errorf("store span %s is a child of %q, want the turn or a tool call", s.Name, byID(all, s.Parent.SpanID()).Name)
		}
	}
	for _, s := range all {
		if s.SpanContext.TraceID().String() != callerTrace {
			t.Errorf("span %s is in trace %s, not the caller's", s.Name, s.SpanContext.TraceID())
		}
	}

	server := byName(spans, "POST /agent")[0]
	if server.Parent.SpanID().String() != callerSpan || !server.Parent.IsRemote() || server.SpanKind != trace.SpanKindServer {
		t.Errorf("server span: parent %v (remote %v), kind %v; want the caller's span %s", server.Parent.SpanID(), server.Parent.IsRemote(), server.SpanKind, callerSpan)
	}
	if diff := cmp.Diff(map[string]any{"http.request.method": "POST", "url.path": "/agent", "http.route": "/agent", "http.response.status_code": int64(200)}, attrs(server)); diff != "" {
		t.Errorf("server span attributes (-want +got):\n%s", diff)
	}

	turn := byName(spans, "invoke_agent lambdagent")[0]
	wantTurn := map[string]any{
		"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "anthropic", "gen_ai.system": "anthropic",
		"gen_ai.agent.name": "lambdagent", "gen_ai.conversation.id": "s1",
		"lambdagent.turn": int64(1), "lambdagent.outcome": "ok", "lambdagent.model_calls": int64(2), "lambdagent.tool_calls": int64(2),
		"gen_ai.usage.input_tokens": res.Usage.InputTokens, "gen_ai.usage.output_tokens": res.Usage.OutputTokens,
	}
	if diff := cmp.Diff(wantTurn, attrs(turn)); diff != "" {
		t.Errorf("turn span attributes (-want +got):\n%s", diff)
	}

	chats := byName(spans, "chat claude-sonnet-5-5")
	var in, out int64
	for i, c := range chats {
		a := attrs(c)
		for k, v := range map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.system": "anthropic", "gen_ai.provider.name": "anthropic",
			"gen_ai.request.model": "claude-sonnet-5-5", "gen_ai.request.max_tokens": int64(4096),
			"gen_ai.response.model": "claude-sonnet-5-5", "lambdagent.model.attempts": int64(1),
		} {
			if a[k] != v {
				t.Errorf("chat %d: %s = %v, want %v", i, k, a[k], v)
			}
		}
		if c.SpanKind != trace.SpanKindClient {
			t.Errorf("chat %d: kind %v, want client", i, c.SpanKind)
		}
		if id, _ := a["gen_ai.response.id"].(string); !strings.HasPrefix(id, "msg_") {
			t.Errorf("chat %d: gen_ai.response.id %q", i, id)
		}
		if id, _ := a["lambdagent.upstream.request_id"].(string); id == "" {
			t.Errorf("chat %d: no upstream request id", i)
		}
		in += a["gen_ai.usage.input_tokens"].(int64)
		out += a["gen_ai.usage.output_tokens"].(int64)
		for _, k := range []string{"gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens"} {
			if _, ok := a[k]; !ok {
				t.Errorf("chat %d: no %s", i, k)
			}
		}
	}
	if in != res.Usage.InputTokens || out != res.Usage.OutputTokens {
		t.Errorf("chat spans add up to %d/%d tokens, the answer says %d/%d", in, out, res.Usage.InputTokens, res.Usage.OutputTokens)
	}
	var reasons [][]string
	for _, c := range chats {
		reasons = append(reasons, attrs(c)["gen_ai.response.finish_reasons"].([]string))
	}
	if diff := cmp.Diff([][]string{{"tool_use"}, {"end_turn"}}, reasons); diff != "" {
		t.Errorf("finish reasons (-want +got):\n%s", diff)
	}

	// Each tool call ran in its own span's context: the traceparent it saw
	// (and was given for MCP) is its span's.
	f.tools.mu.Lock()
	defer f.tools.mu.Unlock()
	for _, name := range []string{"add", "time"} {
		s := byName(spans, "execute_tool "+name)[0]
		a := attrs(s)
		id, _ := a["gen_ai.tool.call.id"].(string)
		if a["gen_ai.operation.name"] != "execute_tool" || a["gen_ai.tool.name"] != name || !strings.HasPrefix(id, "toolu_") {
			t.Errorf("execute_tool %s attributes: %v", name, a)
		}
		if got, want := f.tools.seen[id], traceparentOf(s); got != want {
			t.Errorf("tool %s ran under traceparent %q, want its span's %q", name, got, want)
		}
		if got, want := f.tools.given[id], traceparentOf(s); got != want {
			t.Errorf("tool %s was given traceparent %q, want its span's %q", name, got, want)
		}
	}

	// The spans follow the turn: begin, model, tools, model, commit.
	begin, commit := byName(spans, "session.begin")[0], byName(spans, "session.commit")[0]
	tools := append(byName(spans, "execute_tool add"), byName(spans, "execute_tool time")...)
	order := []struct {
		a, b tracetest.SpanStub
	}{{begin, chats[0]}, {chats[0], tools[0]}, {chats[0], tools[1]}, {tools[0], chats[1]}, {tools[1], chats[1]}, {chats[1], commit}}
	for _, o := range order {
		if o.a.EndTime.After(o.b.StartTime) {
			t.Errorf("%s ended after %s started", o.a.Name, o.b.Name)
		}
	}
	if a := attrs(begin); a["lambdagent.store.operation"] != "begin" || a["lambdagent.session.id"] != "s1" {
		t.Errorf("begin span attributes: %v", a)
	}
}

// Where the turn's trace comes from.
func TestTraceParent(t *testing.T) {
	const xrayRoot = "1-5759e988-bd862e3fe1be46a994272793"
	tests := []struct {
		name       string
		header     http.Header
		lambda     string // the Lambda invocation's trace header, in the context
		wantTrace  string // "" means a new trace
		wantParent string
	}{
		{name: "none", header: nil},
		{name: "traceparent", header: http.Header{"Traceparent": {callerTP}}, wantTrace: callerTrace, wantParent: callerSpan},
		{name: "sampled x-ray header", header: http.Header{"X-Amzn-Trace-Id": {"Root=" + xrayRoot + ";Parent=53995c3f42cd8ad8;Sampled=1"}},
			wantTrace: "5759e988bd862e3fe1be46a994272793", wantParent: "53995c3f42cd8ad8"},
		{name: "unsampled x-ray header is ignored", header: http.Header{"X-Amzn-Trace-Id": {"Root=" + xrayRoot + ";Parent=53995c3f42cd8ad8;Sampled=0"}}},
		{name: "traceparent wins over x-ray", header: http.Header{"Traceparent": {callerTP}, "X-Amzn-Trace-Id": {"Root=" + xrayRoot + ";Parent=53995c3f42cd8ad8;Sampled=1"}},
			wantTrace: callerTrace, wantParent: callerSpan},
		{name: "lambda invocation", lambda: "Root=" + xrayRoot + ";Parent=1111222233334444;Sampled=1",
			wantTrace: "5759e988bd862e3fe1be46a994272793", wantParent: "1111222233334444"},
		{name: "malformed traceparent", header: http.Header{"Traceparent": {"00-zz-00f067aa0ba902b7-01"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tel, err := telemetry.New(telemetry.Config{SpanExporter: exp})
			if err != nil {
				t.Fatal(err)
			}
			var inner string
			h := tel.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inner = telemetry.Traceparent(r.Context())
				w.WriteHeader(http.StatusTeapot)
			}))
			req := httptest.NewRequest(http.MethodGet, "/x", nil)
			req.Header = tc.header
			if req.Header == nil {
				req.Header = http.Header{}
			}
			if tc.lambda != "" {
				//lint:ignore SA1029 aws-lambda-go's own key is this plain string
				req = req.WithContext(context.WithValue(req.Context(), "x-amzn-trace-id", tc.lambda))
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			defer tel.Shutdown(context.Background())
			if err := tel.Flush(t.Context()); err != nil {
				t.Fatal(err)
			}
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if got := traceparentOf(s); got != inner {
				t.Errorf("handler saw traceparent %q, span is %q", inner, got)
			}
			if tc.wantTrace == "" {
				if s.Parent.IsValid() {
					t.Errorf("span has parent %v, want a new trace", s.Parent)
				}
				return
			}
			if s.SpanContext.TraceID().String() != tc.wantTrace || s.Parent.SpanID().String() != tc.wantParent {
				t.Errorf("span in trace %s under %s; want %s under %s", s.SpanContext.TraceID(), s.Parent.SpanID(), tc.wantTrace, tc.wantParent)
			}
			if got := attrs(s)["http.response.status_code"]; got != int64(http.StatusTeapot) {
				t.Errorf("status attribute %v", got)
			}
		})
	}
}

// With tracing off there are no spans, but a caller's trace context still
// reaches the tools and outgoing HTTP calls.
func TestTracingOffPassesTraceparentOn(t *testing.T) {
	f := newFixture(t, fixtureConfig{tel: telemetry.Config{WithTraceparent: withTraceparent}})
	if f.tel.Tracing() {
		t.Fatal("tracing on without being asked")
	}
	code, body := f.post(t, "s1", `[[tool time]]`, http.Header{"Traceparent": {callerTP}})
	if code != 200 {
		t.Fatalf("turn: %d %s", code, body)
	}
	f.tools.mu.Lock()
	defer f.tools.mu.Unlock()
	if len(f.tools.seen) != 1 {
		t.Fatalf("%d tool calls, want 1", len(f.tools.seen))
	}
	for id := range f.tools.seen {
		if f.tools.seen[id] != callerTP || f.tools.given[id] != callerTP {
			t.Errorf("tool saw %q and was given %q, want the caller's %q", f.tools.seen[id], f.tools.given[id], callerTP)
		}
	}
}

// A trace the sampler drops costs no spans, and the tool calls still run.
func TestSampledOut(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	f := newFixture(t, fixtureConfig{trace: true})
	code, body := f.post(t, "s1", `[[tool add {"a":1}]] [[tool time]]`, nil)
	if code != 200 {
		t.Fatalf("turn: %d %s", code, body)
	}
	if err := f.tel.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(f.spans.GetSpans()); n != 0 {
		t.Errorf("%d spans exported with sampling off", n)
	}
	if r := decodeResult(t, body); r.ModelCalls != 2 {
		t.Errorf("model calls %d, want 2 (the tools ran)", r.ModelCalls)
	}
	if n := len(f.turnLines(t)); n != 1 {
		t.Errorf("%d turn lines, want 1", n)
	}
}

func TestTransportAndInjectHTTP(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Traceparent"))
	}))
	defer srv.Close()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(t.Context(), sc)
	client := &http.Client{Transport: telemetry.Transport(nil)}
	for _, c := range []struct {
		ctx    context.Context
		header string
	}{{ctx, ""}, {t.Context(), ""}, {ctx, "00-" + strings.Repeat("a", 32) + "-" + strings.Repeat("b", 16) + "-00"}} {
		req, _ := http.NewRequestWithContext(c.ctx, http.MethodGet, srv.URL, nil)
		if c.header != "" {
			req.Header.Set("Traceparent", c.header)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get("Traceparent") != c.header {
			t.Errorf("the transport changed the caller's request")
		}
	}
	want := []string{telemetry.Traceparent(ctx), "", "00-" + strings.Repeat("a", 32) + "-" + strings.Repeat("b", 16) + "-00"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("traceparent headers sent (-want +got):\n%s", diff)
	}
	if want[0] != "00-01020300000000000000000000000000-0405060000000000-01" {
		t.Errorf("Traceparent = %q", want[0])
	}
	h := http.Header{}
	telemetry.InjectHTTP(ctx, h)
	if h.Get("Traceparent") != want[0] {
		t.Errorf("InjectHTTP set %q", h.Get("Traceparent"))
	}
}

type echoInvoker struct{}

func (echoInvoker) Invoke(_ context.Context, payload []byte) ([]byte, error) { return payload, nil }

type invokeFunc func(ctx context.Context, payload []byte) ([]byte, error)

func (f invokeFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

// A Lambda invocation's spans are exported before it returns.
func TestWrapInvokerFlushes(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(telemetry.Config{SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	h := tel.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	inv := telemetry.WrapInvoker(invokeFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
		return payload, nil
	}), tel)
	out, err := inv.Invoke(t.Context(), []byte("x"))
	if err != nil || string(out) != "x" {
		t.Fatalf("Invoke = %q, %v", out, err)
	}
	if n := len(exp.GetSpans()); n != 1 {
		t.Errorf("%d spans exported when Invoke returned, want 1", n)
	}
}

// A streamed invocation's spans are exported when its body ends, before
// the runtime client reads the end.
func TestWrapStreamBodyFlushes(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(telemetry.Config{SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	h := tel.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	pr, pw := io.Pipe()
	body := telemetry.WrapStreamBody(t.Context(), pr, tel)
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(t.Context()))
		_, _ = pw.Write([]byte("event"))
		pw.Close()
	}()
	b, err := io.ReadAll(body)
	if err != nil || string(b) != "event" {
		t.Fatalf("body %q, %v", b, err)
	}
	if n := len(exp.GetSpans()); n != 1 {
		t.Errorf("%d spans exported when the body ended, want 1", n)
	}
	var none *telemetry.Telemetry
	if telemetry.WrapStreamBody(t.Context(), pr, none) != io.Reader(pr) {
		t.Error("WrapStreamBody(nil Telemetry) wrapped")
	}
}

func TestNilAndOffTelemetry(t *testing.T) {
	f := newFixture(t, fixtureConfig{})
	var none *telemetry.Telemetry
	if telemetry.WrapStore(f.raw, none) != f.raw {
		t.Error("WrapStore(nil Telemetry) wrapped")
	}
	if telemetry.WrapTools(f.tools, none) != f.tools {
		t.Error("WrapTools(nil Telemetry) wrapped")
	}
	if telemetry.WrapTurner(f.turner, none) != f.turner {
		t.Error("WrapTurner(nil Telemetry) wrapped")
	}
	var inv telemetry.Invoker = echoInvoker{}
	if telemetry.WrapInvoker(inv, f.tel) != inv || telemetry.WrapInvoker(inv, none) != inv {
		t.Error("WrapInvoker wrapped without tracing")
	}
	client, err := claude.New(claude.Config{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if telemetry.WrapModel(client, none) != agent.Model(client) {
		t.Error("WrapModel(nil Telemetry) wrapped")
	}
	if none.Middleware(f.handler) == nil || none.Tracing() {
		t.Error("nil Telemetry: Middleware or Tracing")
	}
	none.Count("x", 1)
	if err := none.Flush(t.Context()); err != nil {
		t.Error(err)
	}
	if err := none.Shutdown(t.Context()); err != nil {
		t.Error(err)
	}
}

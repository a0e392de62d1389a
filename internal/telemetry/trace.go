package telemetry

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Span attributes: OpenTelemetry semantic conventions v1.40 (GenAI, HTTP,
// errors), and lambdagent's own under "lambdagent.". gen_ai.system is the
// name older backends still read; gen_ai.provider.name replaced it.
const (
	keyOperation         = "gen_ai.operation.name"
	keySystem            = "gen_ai.system"
	keyProvider          = "gen_ai.provider.name"
	keyAgentName         = "gen_ai.agent.name"
	keyConversationID    = "gen_ai.conversation.id"
	keyRequestModel      = "gen_ai.request.model"
	keyRequestMaxTokens  = "gen_ai.request.max_tokens"
	keyResponseID        = "gen_ai.response.id"
	keyResponseModel     = "gen_ai.response.model"
	keyFinishReasons     = "gen_ai.response.finish_reasons"
	keyInputTokens       = "gen_ai.usage.input_tokens"
	keyOutputTokens      = "gen_ai.usage.output_tokens"
	keyCacheReadTokens   = "gen_ai.usage.cache_read.input_tokens"
	keyCacheCreateTokens = "gen_ai.usage.cache_creation.input_tokens"
	keyToolName          = "gen_ai.tool.name"
	keyToolCallID        = "gen_ai.tool.call.id"
	keyToolType          = "gen_ai.tool.type"
	keyErrorType         = "error.type"
	keyHTTPMethod        = "http.request.method"
	keyHTTPRoute         = "http.route"
	keyHTTPStatus        = "http.response.status_code"
	keyURLPath           = "url.path"

	keyTenant      = "lambdagent.tenant"
	keyTurn        = "lambdagent.turn"
	keyOutcome     = "lambdagent.outcome"
	keySessionID   = "lambdagent.session.id"
	keyStoreOp     = "lambdagent.store.operation"
	keyRequestID   = "lambdagent.upstream.request_id"
	keyAttempts    = "lambdagent.model.attempts"
	keyModelCalls  = "lambdagent.model_calls"
	keyToolCallsN  = "lambdagent.tool_calls"
	providerName   = "anthropic"
	tracerName     = "github.com/lambdagent/lambdagent/internal/telemetry"
	xrayHeader     = "X-Amzn-Trace-Id"
	lambdaTraceKey = "x-amzn-trace-id" // aws-lambda-go's context key for the invocation's trace header
)

var (
	attrSystem        = attribute.String(keySystem, providerName)
	attrProvider      = attribute.String(keyProvider, providerName)
	attrOpChat        = attribute.String(keyOperation, "chat")
	attrOpInvokeAgent = attribute.String(keyOperation, "invoke_agent")
	attrOpExecuteTool = attribute.String(keyOperation, "execute_tool")
)

func newTracerProvider(exp sdktrace.SpanExporter, service, function string) (*sdktrace.TracerProvider, error) {
	ctx := context.Background()
	if exp == nil {
		var err error
		// Reads OTEL_EXPORTER_OTLP_{,TRACES_}{ENDPOINT,HEADERS,TIMEOUT,
		// COMPRESSION,…}; connects on the first export.
		exp, err = otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
		}
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", service)}
	if function != "" {
		attrs = append(attrs, attribute.String("faas.name", function))
	}
	// Later options win: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
	// override ours.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource (OTEL_RESOURCE_ATTRIBUTES): %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// extract returns r's context with the caller's trace context: a W3C
// traceparent, else a sampled X-Ray header, else (on Lambda) the
// invocation's sampled X-Ray trace. An unsampled X-Ray header is ignored:
// Lambda sends one even with active tracing off, and following it would
// drop every span.
func (t *Telemetry) extract(r *http.Request) context.Context {
	ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	if trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	if h, ok := ctx.Value(lambdaTraceKey).(string); ok && h != "" {
		if sc, ok := parseXRay(h); ok {
			return trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	return ctx
}

// Middleware wraps the root handler: it takes the caller's trace context
// from the request (see the package comment) and, with tracing on, runs the
// request in a server span named after the route ("POST /agent"). Wrap the
// handler given to the HTTP server or to lambdafn.New. A nil Telemetry
// returns h.
func (t *Telemetry) Middleware(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.extract(r)
		if !t.tracing {
			if ctx != r.Context() {
				r = r.WithContext(ctx)
			}
			h.ServeHTTP(w, r)
			return
		}
		ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String(keyHTTPMethod, r.Method), attribute.String(keyURLPath, r.URL.Path)))
		sw := &statusWriter{ResponseWriter: w}
		r = r.WithContext(ctx)
		defer func() {
			// ServeMux sets the pattern it matched on the request it was
			// given, which is r: the route is known only now.
			if route := routeOf(r.Pattern); route != "" {
				span.SetName(r.Method + " " + route)
				span.SetAttributes(attribute.String(keyHTTPRoute, route))
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			span.SetAttributes(attribute.Int(keyHTTPStatus, status))
			if status >= 500 {
				span.SetAttributes(attribute.String(keyErrorType, strconv.Itoa(status)))
				span.SetStatus(codes.Error, "")
			}
			span.End()
		}()
		h.ServeHTTP(sw, r)
	})
}

// routeOf cuts the method and host off a ServeMux pattern:
// "POST example.com/v1/sessions/{id}" → "/v1/sessions/{id}".
func routeOf(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:]
	}
	return pattern
}

// statusWriter remembers the status a handler sent.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes streaming through (server-sent events).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the original writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Traceparent returns the W3C traceparent of ctx's span
// ("00-<trace id>-<span id>-<flags>"), or "" when ctx has none.
func Traceparent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte
	n := copy(b[:], "00-")
	tid, sid := sc.TraceID(), sc.SpanID()
	n += hex.Encode(b[n:], tid[:])
	b[n] = '-'
	n++
	n += hex.Encode(b[n:], sid[:])
	b[n] = '-'
	n++
	flags := sc.TraceFlags()
	n += hex.Encode(b[n:], []byte{byte(flags)})
	return string(b[:n])
}

// InjectHTTP sets the traceparent (and tracestate) headers of ctx's span on
// h, for an outgoing request. Without a span in ctx it does nothing.
func InjectHTTP(ctx context.Context, h http.Header) {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}

// Transport returns a RoundTripper that adds the traceparent of each
// request's context (see [InjectHTTP]) unless the request has one, then
// sends it with base; nil base means http.DefaultTransport. Give it to the
// HTTP client of MCP servers so tool calls join the turn's trace.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return transport{base}
}

type transport struct{ base http.RoundTripper }

func (t transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(req.Context()).IsValid() || req.Header.Get("Traceparent") != "" {
		return t.base.RoundTrip(req)
	}
	req = req.Clone(req.Context()) // a RoundTripper must not change its request
	InjectHTTP(req.Context(), req.Header)
	return t.base.RoundTrip(req)
}

// An Invoker handles Lambda invocations: lambda.Handler, and
// *lambdafn.Function, are ones.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// WrapInvoker flushes the spans of each invocation before it returns, since
// Lambda may freeze the process as soon as it has. Without tracing, or with
// a nil Telemetry, it returns h.
func WrapInvoker(h Invoker, t *Telemetry) Invoker {
	if t == nil || !t.tracing {
		return h
	}
	return invoker{h, t}
}

type invoker struct {
	next Invoker
	t    *Telemetry
}

var _ Invoker = invoker{}

// maxFlush bounds the export at the end of an invocation. The collector is
// on localhost, so a flush is a millisecond or two; a stuck collector must
// not hold the answer back for long.
const maxFlush = 2 * time.Second

func (i invoker) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := i.next.Invoke(ctx, payload)
	i.t.flushInvocation(ctx)
	return out, err
}

// flushInvocation exports the spans of the invocation of ctx, for at most
// maxFlush and not past its deadline.
func (t *Telemetry) flushInvocation(ctx context.Context) {
	deadline := time.Now().Add(maxFlush)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	fctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	if ferr := t.Flush(fctx); ferr != nil {
		t.log.WarnContext(ctx, "telemetry: spans not exported", slog.Any("err", ferr))
	}
}

// WrapStreamBody is WrapInvoker for an invocation that answers with a
// response stream: the invocation ends when body does, so its spans are
// exported when body's Read returns an error (io.EOF included), before
// that error reaches the Runtime API client. Without tracing, or with a
// nil Telemetry, it returns body.
func WrapStreamBody(ctx context.Context, body io.Reader, t *Telemetry) io.Reader {
	if t == nil || !t.tracing || body == nil {
		return body
	}
	return &streamBody{ctx: ctx, r: body, t: t}
}

type streamBody struct {
	ctx     context.Context
	r       io.Reader
	t       *Telemetry
	flushed bool
}

func (b *streamBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !b.flushed {
		b.flushed = true
		b.t.flushInvocation(b.ctx)
	}
	return n, err
}

// Close closes the body if it can be: the runtime client closes an
// answer it stops reading.
func (b *streamBody) Close() error {
	if c, ok := b.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// xrayPropagator reads an AWS X-Ray trace header
// ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
// as API Gateway and ALB send it, so that a turn joins the X-Ray trace of
// its request. It writes nothing: outgoing calls carry the W3C traceparent.
type xrayPropagator struct{}

var _ propagation.TextMapPropagator = xrayPropagator{}

func (xrayPropagator) Inject(context.Context, propagation.TextMapCarrier) {}
func (xrayPropagator) Fields() []string                                   { return nil }

func (xrayPropagator) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	if h := c.Get(xrayHeader); h != "" {
		if sc, ok := parseXRay(h); ok {
			return trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	return ctx
}

// parseXRay reads an X-Ray trace header. It reports false unless the header
// has a valid Root and Parent and says Sampled=1.
func parseXRay(h string) (trace.SpanContext, bool) {
	var root, parent string
	sampled := false
	for len(h) > 0 {
		var part string
		part, h, _ = strings.Cut(h, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.TrimSpace(k) {
		case "Root":
			root = strings.TrimSpace(v)
		case "Parent":
			parent = strings.TrimSpace(v)
		case "Sampled":
			sampled = strings.TrimSpace(v) == "1"
		}
	}
	// Root is "1-" + 8 hex digits (epoch seconds) + "-" + 24 hex digits.
	if !sampled || len(root) != 35 || root[:2] != "1-" || root[10] != '-' || len(parent) != 16 {
		return trace.SpanContext{}, false
	}
	var tid trace.TraceID
	var sid trace.SpanID
	if _, err := hex.Decode(tid[:4], []byte(root[2:10])); err != nil {
		return trace.SpanContext{}, false
	}
	if _, err := hex.Decode(tid[4:], []byte(root[11:])); err != nil {
		return trace.SpanContext{}, false
	}
	if _, err := hex.Decode(sid[:], []byte(parent)); err != nil {
		return trace.SpanContext{}, false
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
	return sc, sc.IsValid()
}

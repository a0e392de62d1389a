package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/session"
)

// WrapStore observes every call to s: its duration (per operation at
// /metrics, and in the turn's store time), and a span per call. A nil
// Telemetry returns s.
//
// The wrapper keeps the optional abilities callers look for with a type
// assertion (saving tool results, a key-value space: see #8) exactly when
// s has them, matching them by method set. Anything else (Close, Ping)
// needs the concrete store.
func WrapStore(s session.Store, t *Telemetry) session.Store {
	if t == nil {
		return s
	}
	w := &store{next: s, t: t}
	tr, hasTR := s.(toolResultSaver)
	kv, hasKV := s.(keyValues)
	switch {
	case hasTR && hasKV:
		return &storeTRKV{w, savingStore{w, tr}, kvStore{w, kv}}
	case hasTR:
		return &storeTR{w, savingStore{w, tr}}
	case hasKV:
		return &storeKV{w, kvStore{w, kv}}
	}
	return w
}

// toolResultSaver is the method set of session.ToolResultStore.
type toolResultSaver interface {
	SaveToolResult(ctx context.Context, id, token, toolUseID string, result []byte) error
}

// keyValues is the method set of session.KV.
type keyValues interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

type store struct {
	next session.Store
	t    *Telemetry
}

var (
	_ session.Store   = (*store)(nil)
	_ toolResultSaver = (*storeTR)(nil)
	_ keyValues       = (*storeKV)(nil)
	_ toolResultSaver = (*storeTRKV)(nil)
	_ keyValues       = (*storeTRKV)(nil)
)

type storeTR struct {
	*store
	savingStore
}

type storeKV struct {
	*store
	kvStore
}

type storeTRKV struct {
	*store
	savingStore
	kvStore
}

type savingStore struct {
	s    *store
	next toolResultSaver
}

// SaveToolResult runs right after a tool returns, on the turn's path.
func (w savingStore) SaveToolResult(ctx context.Context, id, token, toolUseID string, result []byte) error {
	ctx, op := w.s.t.startStore(ctx, "save_tool_result", id, true)
	err := w.next.SaveToolResult(ctx, id, token, toolUseID, result)
	op.end(err)
	return err
}

type kvStore struct {
	s    *store
	next keyValues
}

func (w kvStore) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, op := w.s.t.startStore(ctx, "kv_get", "", false)
	v, err := w.next.Get(ctx, key)
	op.end(err)
	return v, err
}

func (w kvStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, op := w.s.t.startStore(ctx, "kv_set", "", false)
	err := w.next.Set(ctx, key, value, ttl)
	op.end(err)
	return err
}

// storeOp is one store call being observed.
type storeOp struct {
	t     *Telemetry
	op    string
	start time.Time
	st    *turnStats // nil off a turn's path
	span  trace.Span // nil without tracing
}

// startStore begins observing a store call. onPath says whether the call
// adds to the turn's latency (a renewal runs beside the model call).
func (t *Telemetry) startStore(ctx context.Context, op, id string, onPath bool) (context.Context, storeOp) {
	o := storeOp{t: t, op: op, start: time.Now()}
	if onPath {
		o.st = statsFrom(ctx)
	}
	if t.tracing {
		attrs := []attribute.KeyValue{attribute.String(keyStoreOp, op)}
		if id != "" {
			attrs = append(attrs, attribute.String(keySessionID, id))
		}
		ctx, o.span = t.tracer.Start(ctx, "session."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	}
	return ctx, o
}

func (o storeOp) end(err error) {
	d := time.Since(o.start)
	if o.t.reg != nil {
		o.t.reg.observe(mStoreDuration, d.Seconds(), "op", o.op)
	}
	if o.st != nil {
		o.st.addStore(d)
	}
	if o.span != nil {
		if err != nil {
			o.span.SetAttributes(attribute.String(keyErrorType, string(apierr.KindOf(err))))
			// A busy session is an answer, not a failure of the store.
			var busy *session.BusyError
			if !errors.As(err, &busy) {
				o.span.SetStatus(codes.Error, string(apierr.KindOf(err)))
			}
		}
		o.span.End()
	}
}

func (s *store) Begin(ctx context.Context, req session.BeginRequest) (*session.State, error) {
	ctx, op := s.t.startStore(ctx, "begin", req.ID, true)
	st, err := s.next.Begin(ctx, req)
	op.end(err)
	return st, err
}

func (s *store) Commit(ctx context.Context, c session.Commit) (int64, error) {
	ctx, op := s.t.startStore(ctx, "commit", c.ID, true)
	v, err := s.next.Commit(ctx, c)
	op.end(err)
	return v, err
}

func (s *store) Renew(ctx context.Context, id, token string, ttl time.Duration) error {
	ctx, op := s.t.startStore(ctx, "renew", id, false)
	err := s.next.Renew(ctx, id, token, ttl)
	op.end(err)
	return err
}

func (s *store) Release(ctx context.Context, id, token string) error {
	ctx, op := s.t.startStore(ctx, "release", id, true)
	err := s.next.Release(ctx, id, token)
	op.end(err)
	return err
}

func (s *store) Load(ctx context.Context, id string) (*session.State, error) {
	ctx, op := s.t.startStore(ctx, "load", id, true)
	st, err := s.next.Load(ctx, id)
	op.end(err)
	return st, err
}

func (s *store) Delete(ctx context.Context, id string) error {
	ctx, op := s.t.startStore(ctx, "delete", id, true)
	err := s.next.Delete(ctx, id)
	op.end(err)
	return err
}

// WrapModel observes every model call: duration, retries, tokens and cost
// (metrics, and the turn's figures), and a "chat MODEL" span with the GenAI
// attributes. Retries are counted from claude.Reply.Attempts; those of a
// call that failed in the end only if its error has an Attempts() int
// method. A nil Telemetry returns m.
func WrapModel(m agent.Model, t *Telemetry) agent.Model {
	if t == nil {
		return m
	}
	return &model{next: m, t: t}
}

type model struct {
	next agent.Model
	t    *Telemetry
}

var _ agent.Model = (*model)(nil)

// An attempter tells how many HTTP requests a failed call made. A model
// client's errors may implement it; claude's do not yet, so a failed call
// counts its retries only if they do.
type attempter interface{ Attempts() int }

func (m *model) Create(ctx context.Context, body []byte) (*claude.Reply, error) {
	t := m.t
	name, maxTokens := requestParams(body)
	var span trace.Span
	if t.tracing {
		ctx, span = t.tracer.Start(ctx, "chat "+name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attrOpChat, attrProvider, attrSystem,
			attribute.String(keyRequestModel, name), attribute.Int(keyRequestMaxTokens, maxTokens)))
	}
	start := time.Now()
	r, err := m.next.Create(ctx, body)
	d := time.Since(start)

	retries := 0
	var a attempter
	switch {
	case r != nil:
		retries = max(r.Attempts-1, 0)
	case errors.As(err, &a):
		retries = max(a.Attempts()-1, 0)
	}
	var cost float64
	if r != nil && t.cost != nil {
		cost = t.cost(name, r.Usage)
	}
	if st := statsFrom(ctx); st != nil {
		st.addModel(name, d, retries, r, cost)
	}
	if t.reg != nil {
		t.reg.add(mModelCalls, 1, "model", name)
		t.reg.observe(mModelDuration, d.Seconds(), "model", name)
		if retries > 0 {
			t.reg.add(mModelRetries, float64(retries), "model", name)
		}
		if r != nil {
			t.recordTokens(ctx, name, r.Usage, cost)
		}
	}
	if span != nil {
		if r != nil {
			span.SetAttributes(
				attribute.String(keyResponseID, r.ID),
				attribute.String(keyResponseModel, r.Model),
				attribute.StringSlice(keyFinishReasons, []string{r.StopReason}),
				attribute.Int64(keyInputTokens, r.Usage.InputTokens),
				attribute.Int64(keyOutputTokens, r.Usage.OutputTokens),
				attribute.Int64(keyCacheReadTokens, r.Usage.CacheReadInputTokens),
				attribute.Int64(keyCacheCreateTokens, r.Usage.CacheCreationInputTokens),
				attribute.String(keyRequestID, r.RequestID),
				attribute.Int(keyAttempts, r.Attempts),
			)
		}
		if err != nil {
			var se *claude.StatusError
			if errors.As(err, &se) {
				span.SetAttributes(attribute.Int(keyHTTPStatus, se.Code), attribute.String(keyRequestID, se.RequestID))
			}
			span.SetAttributes(attribute.String(keyErrorType, string(apierr.KindOf(err))))
			span.SetStatus(codes.Error, string(apierr.KindOf(err)))
		}
		span.End()
	}
	return r, err
}

func (t *Telemetry) recordTokens(ctx context.Context, model string, u claude.Usage, cost float64) {
	kinds := [...]struct {
		kind string
		n    int64
	}{
		{"input", u.InputTokens},
		{"output", u.OutputTokens},
		{"cache_read", u.CacheReadInputTokens},
		{"cache_write", u.CacheCreationInputTokens},
	}
	tenant := ""
	if t.tenantLabel {
		tenant = tenantOf(ctx)
	}
	for _, k := range kinds {
		if tenant != "" {
			t.reg.add(mTokens, float64(k.n), "model", model, "kind", k.kind, "tenant", tenant)
		} else {
			t.reg.add(mTokens, float64(k.n), "model", model, "kind", k.kind)
		}
	}
	if t.cost == nil {
		return
	}
	if tenant != "" {
		t.reg.add(mCost, cost, "model", model, "tenant", tenant)
	} else {
		t.reg.add(mCost, cost, "model", model)
	}
}

func tenantOf(ctx context.Context) string {
	if r, ok := agent.RequestFromContext(ctx); ok && r.Tenant != "" {
		return r.Tenant
	}
	return "default"
}

// maxModelLabel bounds a model name used as a label; real ones are short.
const maxModelLabel = 128

// requestParams reads model and max_tokens from a Messages API request
// body. The agent writes both first ({"model":…,"max_tokens":…,…}), so
// they are read from the head of the body without decoding the history;
// any other body is decoded whole.
func requestParams(body []byte) (model string, maxTokens int) {
	const head, next = `{"model":"`, `","max_tokens":`
	if rest, ok := bytes.CutPrefix(body, []byte(head)); ok {
		if i := bytes.IndexByte(rest, '"'); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			if digits, ok := bytes.CutPrefix(rest[i:], []byte(next)); ok {
				end := 0
				for end < len(digits) && end < 9 && '0' <= digits[end] && digits[end] <= '9' {
					end++
				}
				if n, err := strconv.Atoi(string(digits[:end])); err == nil && end < len(digits) && (digits[end] == ',' || digits[end] == '}') {
					return modelLabel(string(rest[:i])), n
				}
			}
		}
	}
	var v struct {
		Model     string `json:"model"`
		MaxTokens int    `json:"max_tokens"`
	}
	_ = json.Unmarshal(body, &v)
	return modelLabel(v.Model), v.MaxTokens
}

func modelLabel(s string) string {
	if s == "" {
		return "unknown"
	}
	if len(s) > maxModelLabel {
		s = s[:maxModelLabel]
	}
	return s
}

// WrapTools observes tool calls: it counts them (metrics, the turn's
// figures) and, with tracing on, gives each call an "execute_tool NAME"
// span. For that, it runs each call of a batch as a batch of its own, in
// parallel (at most Config.MaxParallelTools at once) and in order, so that
// each runs in its own span's context and the traceparent an MCP server
// receives is its call's. With tracing off it hands the batch on as it
// came. A nil Telemetry returns tools.
func WrapTools(tools agent.Tools, t *Telemetry) agent.Tools {
	if t == nil || tools == nil {
		return tools
	}
	return &toolset{next: tools, t: t}
}

type toolset struct {
	next agent.Tools
	t    *Telemetry
}

var _ agent.Tools = (*toolset)(nil)

func (w *toolset) Definitions() json.RawMessage { return w.next.Definitions() }

func (w *toolset) Run(ctx context.Context, calls []agent.ToolCall) []json.RawMessage {
	out := make([]json.RawMessage, len(calls))
	w.RunEach(ctx, calls, func(i int, r json.RawMessage) { out[i] = r })
	return out
}

var _ agent.EachRunner = (*toolset)(nil)

// RunEach keeps the wrapped tools' agent.EachRunner ability (the turn
// saves each result as it returns, see #8) and reports each call as it
// ends.
func (w *toolset) RunEach(ctx context.Context, calls []agent.ToolCall, done func(int, json.RawMessage)) {
	t := w.t
	if st := statsFrom(ctx); st != nil {
		st.addTools(len(calls))
	}
	if t.reg != nil {
		if t.tenantLabel {
			t.reg.add(mToolCalls, float64(len(calls)), "tenant", tenantOf(ctx))
		} else {
			t.reg.add(mToolCalls, float64(len(calls)))
		}
	}
	if !t.tracing || !trace.SpanFromContext(ctx).IsRecording() {
		// No spans to give the calls (tracing off, or this trace sampled
		// out): hand the batch on whole, with the trace context as is.
		if t.withTP != nil {
			if tp := Traceparent(ctx); tp != "" {
				ctx = t.withTP(ctx, tp)
			}
		}
		if each, ok := w.next.(agent.EachRunner); ok {
			each.RunEach(ctx, calls, done)
			return
		}
		for i, r := range w.next.Run(ctx, calls) {
			done(i, r)
		}
		return
	}
	var g errgroup.Group
	g.SetLimit(t.maxTools)
	for i, c := range calls {
		g.Go(func() error {
			done(i, w.runOne(ctx, c))
			return nil
		})
	}
	_ = g.Wait()
}

func (w *toolset) runOne(ctx context.Context, c agent.ToolCall) json.RawMessage {
	t := w.t
	ctx, span := t.tracer.Start(ctx, "execute_tool "+c.Name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
		attrOpExecuteTool, attribute.String(keyToolName, c.Name), attribute.String(keyToolCallID, c.ID),
		attribute.String(keyToolType, "function")))
	defer span.End()
	if t.withTP != nil {
		ctx = t.withTP(ctx, Traceparent(ctx))
	}
	res := w.next.Run(ctx, []agent.ToolCall{c})
	if len(res) != 1 {
		// The Tools contract is one result per call; keep the turn going
		// with an error result Claude can read.
		span.SetAttributes(attribute.String(keyErrorType, "no_result"))
		span.SetStatus(codes.Error, "no_result")
		b, _ := json.Marshal(map[string]any{"type": "tool_result", "tool_use_id": c.ID, "is_error": true,
			"content": "the tool runtime returned no result for this call"})
		return b
	}
	var flag struct {
		IsError bool `json:"is_error"`
	}
	if json.Unmarshal(res[0], &flag) == nil && flag.IsError {
		span.SetAttributes(attribute.String(keyErrorType, "tool_error"))
		span.SetStatus(codes.Error, "tool_error")
	}
	return res[0]
}

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
	"github.com/lambdagent/lambdagent/internal/claude"
)

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
			span.SetAttributes(attribute.String(keyErrorType, ErrorKind(err)))
			span.SetStatus(codes.Error, ErrorKind(err))
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

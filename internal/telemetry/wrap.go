package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/claude"
)

// WrapModel observes every model call: duration, retries, tokens and cost
// (metrics, and the turn's figures), and a "chat MODEL" span with the GenAI
// attributes. The cost is the reply's Usage.CostUSD, as the model client
// priced it. Retries are counted from claude.Reply.Attempts; those of a
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

func (m *model) Create(ctx context.Context, req claude.Request) (*claude.Reply, error) {
	t := m.t
	name := modelLabel(req.Model)
	var span trace.Span
	if t.tracing {
		ctx, span = t.tracer.Start(ctx, "chat "+name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attrOpChat, attrProvider, attrSystem,
			attribute.String(keyRequestModel, name), attribute.Int(keyRequestMaxTokens, req.MaxTokens)))
	}
	start := time.Now()
	r, err := m.next.Create(ctx, req)
	d := time.Since(start)

	retries := 0
	var a attempter
	switch {
	case r != nil:
		retries = max(r.Attempts-1, 0)
	case errors.As(err, &a):
		retries = max(a.Attempts()-1, 0)
	}
	if st := statsFrom(ctx); st != nil {
		st.addModel(name, d, retries, r)
	}
	if t.reg != nil {
		t.reg.add(mModelCalls, 1, "model", name)
		t.reg.observe(mModelDuration, d.Seconds(), "model", name)
		if retries > 0 {
			t.reg.add(mModelRetries, float64(retries), "model", name)
		}
		if r != nil {
			t.recordTokens(ctx, name, r.Usage)
		}
	}
	if r != nil && len(r.InputTransformations) > 0 {
		t.recordTransformations(ctx, name, r)
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

// recordTransformations logs a reply's input_transformations, which say
// the API changed the request (dropped a thinking block bound to another
// prefix, under drop_block), and counts each by type and reason: a
// deployment that opted in to drop_block sees how many sessions it is
// repairing, one that did not sees a change it should look into (#14).
func (t *Telemetry) recordTransformations(ctx context.Context, model string, r *claude.Reply) {
	var list []struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}
	err := json.Unmarshal(r.InputTransformations, &list)
	t.log.WarnContext(ctx, "claude changed the request", "model", model, "request_id", r.RequestID,
		"input_transformations", json.RawMessage(r.InputTransformations))
	if err != nil || t.reg == nil {
		return
	}
	for _, x := range list {
		t.reg.add(mInputTransformations, 1, "model", model, "type", labelValue(x.Type), "reason", labelValue(x.Reason))
	}
}

// labelValue bounds a label value the API sent; empty is "unknown".
func labelValue(s string) string {
	if s == "" {
		return "unknown"
	}
	return s[:min(len(s), maxModelLabel)]
}

func (t *Telemetry) recordTokens(ctx context.Context, model string, u claude.Usage) {
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
		tenant = t.tenants.label(tenantOf(ctx))
	}
	for _, k := range kinds {
		if tenant != "" {
			t.reg.add(mTokens, float64(k.n), "model", model, "kind", k.kind, "tenant", tenant)
		} else {
			t.reg.add(mTokens, float64(k.n), "model", model, "kind", k.kind)
		}
	}
	if tenant != "" {
		t.reg.add(mCost, u.CostUSD, "model", model, "tenant", tenant)
	} else {
		t.reg.add(mCost, u.CostUSD, "model", model)
	}
}

// maxModelLabel bounds a model name used as a label; real ones are short.
const maxModelLabel = 128

func modelLabel(s string) string {
	if s == "" {
		return "unknown"
	}
	if len(s) > maxModelLabel {
		s = s[:maxModelLabel]
	}
	return s
}

// WrapTools observes tool calls: it counts each call (metrics, the turn's
// figures) and, with tracing on, gives it an "execute_tool NAME" span, in
// whose context the call runs, so that the traceparent an MCP server
// receives is its call's. The turn runs the calls of a reply in parallel,
// one Call each (see [agent.Tools]), so every call gets its own span. With
// tracing off, or the trace sampled out, the call goes on as it came, with
// the incoming request's traceparent. A nil Telemetry returns tools.
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

func (w *toolset) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	t := w.t
	if st := statsFrom(ctx); st != nil {
		st.addTools(1)
	}
	if t.reg != nil {
		if t.tenantLabel {
			t.reg.add(mToolCalls, 1, "tenant", t.tenants.label(tenantOf(ctx)))
		} else {
			t.reg.add(mToolCalls, 1)
		}
	}
	if !t.tracing || !trace.SpanFromContext(ctx).IsRecording() {
		// No span to give the call (tracing off, or this trace sampled
		// out): hand it on with the trace context as is.
		if t.withTP != nil {
			if tp := Traceparent(ctx); tp != "" {
				ctx = t.withTP(ctx, tp)
			}
		}
		return w.next.Call(ctx, c)
	}
	ctx, span := t.tracer.Start(ctx, "execute_tool "+c.Name, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(
		attrOpExecuteTool, attribute.String(keyToolName, c.Name), attribute.String(keyToolCallID, c.ID),
		attribute.String(keyToolType, "function")))
	defer span.End()
	if t.withTP != nil {
		ctx = t.withTP(ctx, Traceparent(ctx))
	}
	res := w.next.Call(ctx, c)
	if len(res) == 0 {
		// The agent turns a missing result into an error result for
		// Claude; the span says the call failed.
		span.SetAttributes(attribute.String(keyErrorType, "no_result"))
		span.SetStatus(codes.Error, "no_result")
		return res
	}
	var flag struct {
		IsError bool `json:"is_error"`
	}
	if json.Unmarshal(res, &flag) == nil && flag.IsError {
		span.SetAttributes(attribute.String(keyErrorType, "tool_error"))
		span.SetStatus(codes.Error, "tool_error")
	}
	return res
}

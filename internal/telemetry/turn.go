package telemetry

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/claude"
)

// Turner runs turns: *agent.Agent is one, and so is httpapi.Turner.
type Turner interface {
	Run(ctx context.Context, req agent.Request) (*agent.Answer, error)
}

// WrapTurner observes every turn next runs: it gives the turn a span and a
// per-turn record the other decorators fill, and when the turn ends writes
// one log line, updates the metrics and writes one EMF record. A nil
// Telemetry returns next.
func WrapTurner(next Turner, t *Telemetry) Turner {
	if t == nil {
		return next
	}
	return &turner{next: next, t: t}
}

type turner struct {
	next Turner
	t    *Telemetry
}

var _ Turner = (*turner)(nil)

// turnStats is what the decorators measured during one turn. The store's
// lease renewal runs beside the model call, so the fields are guarded.
type turnStats struct {
	mu sync.Mutex
	// All below guarded by mu.
	model      string    // what the first model call asked for
	modelMS    []float64 // each model call, retries included
	storeMS    []float64 // each store call on the turn's path (renewals run beside it)
	modelTotal time.Duration
	storeTotal time.Duration
	modelCalls int
	retries    int
	toolCalls  int
	usage      claude.Usage // its CostUSD sums the calls' costs
	requestID  string
	stopReason string
}

type statsKey struct{}

func statsFrom(ctx context.Context) *turnStats {
	st, _ := ctx.Value(statsKey{}).(*turnStats)
	return st
}

func (s *turnStats) addStore(d time.Duration) {
	s.mu.Lock()
	s.storeMS = append(s.storeMS, ms(d))
	s.storeTotal += d
	s.mu.Unlock()
}

func (s *turnStats) addModel(model string, d time.Duration, retries int, r *claude.Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.model == "" {
		s.model = model
	}
	s.modelMS = append(s.modelMS, ms(d))
	s.modelTotal += d
	s.modelCalls++
	s.retries += retries
	if r != nil {
		s.usage = s.usage.Add(r.Usage)
		s.requestID = r.RequestID
		s.stopReason = r.StopReason
	}
}

func (s *turnStats) addTools(n int) {
	s.mu.Lock()
	s.toolCalls += n
	s.mu.Unlock()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (w *turner) Run(ctx context.Context, req agent.Request) (*agent.Answer, error) {
	t := w.t
	start := time.Now()
	st := &turnStats{}
	ctx = context.WithValue(ctx, statsKey{}, st)
	var span trace.Span
	if t.tracing {
		attrs := []attribute.KeyValue{attrOpInvokeAgent, attrProvider, attrSystem,
			attribute.String(keyAgentName, t.service), attribute.String(keyConversationID, req.SessionID)}
		if req.Tenant != "" {
			attrs = append(attrs, attribute.String(keyTenant, tenantName(req.Tenant)))
		}
		ctx, span = t.tracer.Start(ctx, "invoke_agent "+t.service, trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	}
	ended := false
	defer func() {
		// A panicking turn is still a turn: count it, end its span, and
		// let the panic go on to whoever recovers it (httpapi does).
		if !ended {
			t.endTurn(ctx, span, req, st, nil, errPanic, time.Since(start))
		}
	}()
	ans, err := w.next.Run(ctx, req)
	ended = true
	t.endTurn(ctx, span, req, st, ans, err, time.Since(start))
	return ans, err
}

// errPanic stands for a panic in the turn; apierr.From gives it
// internal_error.
var errPanic = errors.New("telemetry: the turn panicked")

// turnRecord is a turn's figures, read from its turnStats once it ended.
type turnRecord struct {
	outcome, model, tenant      string
	kind                        apierr.Kind // "" for a turn that succeeded
	level                       slog.Level  // of the turn's log line
	turn                        int64
	stopReason, requestID       string
	dur, modelTotal, storeTotal time.Duration
	modelMS, storeMS            []float64
	modelCalls, retries, tools  int
	usage                       claude.Usage
}

func (t *Telemetry) endTurn(ctx context.Context, span trace.Span, req agent.Request, st *turnStats, ans *agent.Answer, err error, d time.Duration) {
	st.mu.Lock()
	rec := turnRecord{
		model: st.model, stopReason: st.stopReason, requestID: st.requestID,
		dur: d, modelTotal: st.modelTotal, storeTotal: st.storeTotal,
		modelMS: slices.Clone(st.modelMS), storeMS: slices.Clone(st.storeMS),
		modelCalls: st.modelCalls, retries: st.retries, tools: st.toolCalls,
		usage: st.usage,
	}
	st.mu.Unlock()
	rec.outcome, rec.level = "ok", slog.LevelInfo
	switch {
	case err != nil:
		e := apierr.From(err)
		rec.outcome, rec.kind, rec.level = "error", e.Kind, e.LogLevel()
	case ans != nil && ans.Replayed:
		rec.outcome = "replayed"
	}
	if rec.model == "" {
		rec.model = t.model
	}
	rec.tenant = tenantName(req.Tenant)
	if ans != nil {
		// A replay spent nothing, so tokens and cost stay this request's
		// (zero); turn, stop reason and request id are the stored answer's,
		// which is what the client got.
		rec.turn, rec.stopReason, rec.requestID = ans.Result.Turn, ans.Result.StopReason, ans.Result.RequestID
	}
	t.logTurn(ctx, req, &rec)
	if t.reg != nil {
		t.recordTurn(&rec)
	}
	if t.emf != nil {
		t.emitTurn(&rec)
	}
	if span != nil {
		span.SetAttributes(
			attribute.Int64(keyTurn, rec.turn),
			attribute.String(keyOutcome, rec.outcome),
			attribute.Int(keyModelCalls, rec.modelCalls),
			attribute.Int(keyToolCallsN, rec.tools),
			attribute.Int64(keyInputTokens, rec.usage.InputTokens),
			attribute.Int64(keyOutputTokens, rec.usage.OutputTokens),
		)
		if err != nil {
			span.SetAttributes(attribute.String(keyErrorType, string(rec.kind)))
			span.SetStatus(codes.Error, string(rec.kind))
		}
		span.End()
	}
}

// logTurn writes the turn's one log line. It holds ids, counts, durations
// and the error kind: never a message, a tool's input or output, an error
// message or a key. A failed turn is logged at its error's
// apierr.Error.LogLevel: ERROR for a 5xx, WARN for a refusal an operator
// should notice (budget, kill switch, limits, conflicts), INFO for the
// client's own mistakes.
func (t *Telemetry) logTurn(ctx context.Context, req agent.Request, r *turnRecord) {
	level := r.level
	if !t.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 24)
	attrs = append(attrs,
		slog.String("session_id", req.SessionID),
		slog.String("tenant", r.tenant),
		slog.Int64("turn", r.turn),
		slog.String("model", r.model),
		slog.String("outcome", r.outcome),
	)
	if r.kind != "" {
		attrs = append(attrs, slog.String("error", string(r.kind)))
	}
	attrs = append(attrs,
		slog.String("stop_reason", r.stopReason),
		slog.Float64("duration_ms", ms(r.dur)),
		slog.Float64("model_ms", ms(r.modelTotal)),
		slog.Float64("store_ms", ms(r.storeTotal)),
		slog.Int("model_calls", r.modelCalls),
		slog.Int("tool_calls", r.tools),
		slog.Int("retries", r.retries),
		slog.Int64("input_tokens", r.usage.InputTokens),
		slog.Int64("output_tokens", r.usage.OutputTokens),
		slog.Int64("cache_read_tokens", r.usage.CacheReadInputTokens),
		slog.Int64("cache_write_tokens", r.usage.CacheCreationInputTokens),
	)
	attrs = append(attrs, slog.Float64("cost_usd", r.usage.CostUSD))
	if r.requestID != "" {
		attrs = append(attrs, slog.String("request_id", r.requestID))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
	}
	t.log.LogAttrs(ctx, level, "turn", attrs...)
}

// recordTurn updates the Prometheus registry with what only the turn
// knows; model, store and tool calls were counted as they happened.
func (t *Telemetry) recordTurn(r *turnRecord) {
	if t.tenantLabel {
		tenant := t.tenants.label(r.tenant)
		t.reg.add(mTurns, 1, "model", r.model, "outcome", r.outcome, "tenant", tenant)
		t.reg.observe(mTurnDuration, r.dur.Seconds(), "model", r.model, "outcome", r.outcome, "tenant", tenant)
		if r.kind != "" {
			t.reg.add(mErrors, 1, "kind", string(r.kind), "tenant", tenant)
		}
		return
	}
	t.reg.add(mTurns, 1, "model", r.model, "outcome", r.outcome)
	t.reg.observe(mTurnDuration, r.dur.Seconds(), "model", r.model, "outcome", r.outcome)
	if r.kind != "" {
		t.reg.add(mErrors, 1, "kind", string(r.kind))
	}
}

// emitTurn writes the turn's EMF record: every metric under the dimension
// set [Function, Model] (and [Function, Tenant] with TenantLabel), and for
// a failed turn an Errors count under [Function, ErrorKind]. Per-call
// durations go as arrays of values, which CloudWatch counts one by one.
func (t *Telemetry) emitTurn(r *turnRecord) {
	dims := [][]string{{"Function", "Model"}}
	props := []emfProp{{"Function", t.function}, {"Model", dimValue(r.model, "unknown")}}
	if t.tenantLabel {
		dims = append(dims, []string{"Function", "Tenant"})
		props = append(props, emfProp{"Tenant", dimValue(t.tenants.label(r.tenant), "default")})
	}
	metrics := make([]emfMetric, 0, 12)
	metrics = append(metrics,
		emfMetric{name: "Turns", unit: "Count", value: 1},
		emfMetric{name: "TurnDuration", unit: "Milliseconds", value: ms(r.dur)},
	)
	if len(r.modelMS) > 0 {
		metrics = append(metrics, emfMetric{name: "ModelDuration", unit: "Milliseconds", values: r.modelMS})
	}
	if len(r.storeMS) > 0 {
		metrics = append(metrics, emfMetric{name: "StoreDuration", unit: "Milliseconds", values: r.storeMS})
	}
	metrics = append(metrics,
		emfMetric{name: "ModelCalls", unit: "Count", value: float64(r.modelCalls)},
		emfMetric{name: "ToolCalls", unit: "Count", value: float64(r.tools)},
		emfMetric{name: "Retries", unit: "Count", value: float64(r.retries)},
		emfMetric{name: "InputTokens", unit: "Count", value: float64(r.usage.InputTokens)},
		emfMetric{name: "OutputTokens", unit: "Count", value: float64(r.usage.OutputTokens)},
		emfMetric{name: "CacheReadTokens", unit: "Count", value: float64(r.usage.CacheReadInputTokens)},
		emfMetric{name: "CacheWriteTokens", unit: "Count", value: float64(r.usage.CacheCreationInputTokens)},
	)
	metrics = append(metrics, emfMetric{name: "Cost", unit: "None", value: r.usage.CostUSD})
	dirs := []emfDirective{{dims: dims, metrics: metrics}}
	if r.kind != "" {
		dirs = append(dirs, emfDirective{dims: [][]string{{"Function", "ErrorKind"}}, metrics: []emfMetric{{name: "Errors", unit: "Count", value: 1}}})
		props = append(props, emfProp{"ErrorKind", string(r.kind)})
	}
	props = append(props, emfProp{"Outcome", r.outcome})
	t.writeEMF(time.Now(), dirs, props)
}

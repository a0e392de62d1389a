package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for a zero [Config].
const (
	DefaultServiceName = "lambdagent"
	DefaultNamespace   = "lambdagent"
)

// Config tunes a [Telemetry]. A zero field means its default: the zero
// Config logs one line per turn to slog.Default() and nothing else.
type Config struct {
	// ServiceName is the service.name of spans (OTEL_SERVICE_NAME wins)
	// and the default Function. Zero means DefaultServiceName.
	ServiceName string
	// Logger receives one line per turn, at Info (Warn for a failed turn,
	// Error for an internal one). Nil means slog.Default().
	Logger *slog.Logger

	// EMF, if set, receives CloudWatch Embedded Metric Format records, one
	// JSON line per turn and per Count: on Lambda, os.Stdout. Nil means no
	// EMF.
	EMF io.Writer
	// Namespace is the CloudWatch namespace of EMF metrics. Zero means
	// DefaultNamespace.
	Namespace string
	// Function is the value of the EMF Function dimension, e.g.
	// AWS_LAMBDA_FUNCTION_NAME. Zero means ServiceName.
	Function string
	// Prometheus keeps the in-process registry that MetricsHandler serves.
	// False means none: MetricsHandler answers 404.
	Prometheus bool
	// TenantLabel adds the turn's tenant (agent.Request.Tenant) as a
	// metric label and an EMF dimension set. Off by default: each tenant
	// multiplies the series, and CloudWatch bills each custom metric.
	TenantLabel bool
	// MaxTenantLabels bounds the tenant label's distinct values in this
	// process: the first tenants seen keep their name, later ones are
	// counted as OtherTenant ("other"), as are names that are not valid
	// tenants. Zero means DefaultMaxTenantLabels (1000).
	MaxTenantLabels int
	// Model labels turns that made no model call (replays, busy sessions,
	// bad requests): the agent's model. Model calls are labelled with the
	// model their request names. Zero means "unknown".
	Model string

	// Tracing exports spans over OTLP/HTTP to the endpoint named by the
	// standard OTEL_EXPORTER_OTLP_* variables (default localhost:4318,
	// where the ADOT Lambda layer's collector listens); sampling follows
	// OTEL_TRACES_SAMPLER. See [TracingFromEnv]. False means no exporter
	// and no spans.
	Tracing bool
	// SpanExporter, if set, receives the spans instead of OTLP, and turns
	// tracing on (tests use tracetest.NewInMemoryExporter).
	SpanExporter sdktrace.SpanExporter
	// WithTraceparent, if set, gives each tool call's context the W3C
	// traceparent of its span (or of the incoming request when tracing is
	// off): mcptools.WithTraceparent, which passes it on to HTTP and
	// stdio MCP servers. Nil means tool calls get only the span itself in
	// their context (enough for [Transport]).
	WithTraceparent func(ctx context.Context, traceparent string) context.Context
}

// Telemetry observes turns. It is safe for concurrent use; build one per
// process with [New] and end it with [Telemetry.Shutdown]. A nil
// *Telemetry is valid and observes nothing.
type Telemetry struct {
	log         *slog.Logger
	service     string
	namespace   string
	function    string
	model       string
	tenantLabel bool
	tenants     *tenantLabels // nil without tenantLabel
	withTP      func(context.Context, string) context.Context

	reg *registry // nil without Config.Prometheus

	emf   io.Writer // nil without Config.EMF
	emfMu sync.Mutex

	tracing bool
	tp      *sdktrace.TracerProvider // nil when !tracing
	tracer  trace.Tracer             // nil when !tracing
	prop    propagation.TextMapPropagator

	warned sync.Map // Count names already warned about
}

// New builds a Telemetry. With tracing on it builds the OTLP exporter,
// which connects lazily: an unreachable collector costs dropped spans,
// never a failed start.
func New(cfg Config) (*Telemetry, error) {
	t := &Telemetry{
		log:         cfg.Logger,
		service:     cfg.ServiceName,
		namespace:   cfg.Namespace,
		function:    cfg.Function,
		model:       cfg.Model,
		tenantLabel: cfg.TenantLabel,
		withTP:      cfg.WithTraceparent,
		emf:         cfg.EMF,
		prop:        propagation.NewCompositeTextMapPropagator(xrayPropagator{}, propagation.TraceContext{}),
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	if t.service == "" {
		t.service = DefaultServiceName
	}
	if t.namespace == "" {
		t.namespace = DefaultNamespace
	}
	if !validNamespace(t.namespace) {
		return nil, fmt.Errorf("telemetry: CloudWatch namespace %q: want 1 to 255 of A-Z a-z 0-9 . _ # : / -", t.namespace)
	}
	if t.function == "" {
		t.function = t.service
	}
	t.function = dimValue(t.function, t.service)
	if t.model == "" {
		t.model = "unknown"
	}
	if cfg.Prometheus {
		t.reg = newRegistry()
	}
	if t.tenantLabel {
		t.tenants = newTenantLabels(cfg.MaxTenantLabels)
	}
	if cfg.Tracing || cfg.SpanExporter != nil {
		tp, err := newTracerProvider(cfg.SpanExporter, t.service, cfg.Function)
		if err != nil {
			return nil, err
		}
		t.tracing, t.tp = true, tp
		t.tracer = tp.Tracer("github.com/lambdagent/lambdagent/internal/telemetry")
	}
	return t, nil
}

// Flush exports the spans ended so far. On Lambda call it before an
// invocation returns (see [WrapInvoker]): the process may be frozen right
// after, with spans still queued. Without tracing it does nothing.
func (t *Telemetry) Flush(ctx context.Context) error {
	if t == nil || t.tp == nil {
		return nil
	}
	if err := t.tp.ForceFlush(ctx); err != nil {
		return fmt.Errorf("flush spans: %w", err)
	}
	return nil
}

// Shutdown exports the spans still queued and stops the exporter. The
// Telemetry must not be used afterwards.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil || t.tp == nil {
		return nil
	}
	if err := t.tp.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down tracing: %w", err)
	}
	return nil
}

// Tracing reports whether spans are recorded and exported.
func (t *Telemetry) Tracing() bool { return t != nil && t.tracing }

// Count adds n to the counter name, for events other packages see: a
// rate-limit wait ([RateLimitWaits]), a rejected request
// ([ConcurrencyRejections]). name is lower-case snake_case
// ("rate_limit_waits") and not one a turn counts itself (turns, errors,
// tokens, …); labels are at most 8 key, value pairs with snake_case keys
// and few possible values. It becomes lambdagent_NAME_total{labels} at
// /metrics and, with EMF on, a record of its own with the CamelCase metric
// (RateLimitWaits, Unit Count) and dimensions Function plus the labels.
// A bad name or label key drops the call and logs a warning once. Count
// on a nil Telemetry does nothing.
func (t *Telemetry) Count(name string, n int64, labels ...string) {
	if t == nil || n == 0 {
		return
	}
	if !validName(name) || reservedCounts[name] || len(labels)%2 != 0 || !validLabelKeys(name, labels) {
		if _, dup := t.warned.LoadOrStore(name, true); !dup {
			t.log.Warn("telemetry: Count dropped: want a snake_case name and key, value label pairs with snake_case keys",
				slog.String("name", name), slog.Int("labels", len(labels)))
		}
		return
	}
	if t.reg != nil {
		t.reg.add(promCountName(name), float64(n), sortedPairs(labels)...)
	}
	if t.emf != nil {
		dims := []string{"Function"}
		props := []emfProp{{"Function", t.function}}
		for i := 0; i+1 < len(labels); i += 2 {
			k := camel(labels[i])
			dims = append(dims, k)
			props = append(props, emfProp{k, dimValue(labels[i+1], "none")})
		}
		t.writeEMF(time.Now(), []emfDirective{{
			dims:    [][]string{dims},
			metrics: []emfMetric{{name: camel(name), unit: "Count", value: float64(n)}},
		}}, props)
	}
}

// reservedCounts are the names of the counters a turn keeps itself.
var reservedCounts = map[string]bool{"turns": true, "errors": true, "model_calls": true, "model_retries": true, "tokens": true, "cost_usd": true, "tool_calls": true}

// validLabelKeys checks the keys of Count's key, value pairs: snake_case,
// at most 8, none reserved by the EMF record (Function, the metric's own
// name) or repeated, even once made CamelCase.
func validLabelKeys(name string, kv []string) bool {
	if len(kv) > 2*8 {
		return false
	}
	for i := 0; i < len(kv); i += 2 {
		c := camel(kv[i])
		if !validName(kv[i]) || c == "Function" || c == camel(name) {
			return false
		}
		for j := 0; j < i; j += 2 {
			if camel(kv[j]) == c {
				return false
			}
		}
	}
	return true
}

// sortedPairs sorts key, value pairs by key, so that one label set is one
// series whatever order a caller passes it in.
func sortedPairs(kv []string) []string {
	if len(kv) <= 2 {
		return kv
	}
	type pair struct{ k, v string }
	ps := make([]pair, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		ps = append(ps, pair{kv[i], kv[i+1]})
	}
	slices.SortFunc(ps, func(a, b pair) int { return strings.Compare(a.k, b.k) })
	out := make([]string, 0, len(kv))
	for _, p := range ps {
		out = append(out, p.k, p.v)
	}
	return out
}

func validNamespace(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._#:/-", c) >= 0) {
			return false
		}
	}
	return true
}

// TracingFromEnv reads the standard OpenTelemetry variables through getenv
// (os.Getenv) and reports whether traces should be exported, naming the
// bad variable in its error. Unlike the OpenTelemetry default, tracing is
// off unless asked for:
//
//   - OTEL_SDK_DISABLED=true: off.
//   - OTEL_TRACES_EXPORTER=none: off; =otlp: on; unset: on only if
//     OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is
//     set; anything else is an error.
//   - OTEL_EXPORTER_OTLP_PROTOCOL and OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
//     must be unset or http/protobuf: the exporter speaks OTLP over HTTP
//     only.
//
// The exporter itself reads the other OTEL_EXPORTER_OTLP_* variables
// (headers, timeout, compression, certificates) and the SDK reads
// OTEL_TRACES_SAMPLER, OTEL_BSP_* and OTEL_RESOURCE_ATTRIBUTES.
func TracingFromEnv(getenv func(string) string) (bool, error) {
	v := func(name string) string { return strings.TrimSpace(getenv(name)) }
	if strings.EqualFold(v("OTEL_SDK_DISABLED"), "true") {
		return false, nil
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if p := v(name); p != "" && p != "http/protobuf" {
			return false, fmt.Errorf("%s=%q: want http/protobuf (the only OTLP protocol lambdagent speaks)", name, p)
		}
	}
	switch e := v("OTEL_TRACES_EXPORTER"); e {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return v("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || v("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want otlp or none", e)
	}
}

// Package telemetry observes lambdagent's turns: one structured log line per
// turn, metrics (CloudWatch Embedded Metric Format records and a Prometheus
// /metrics page), OpenTelemetry traces, and a /readyz handler. See #9.
//
// # Decorators
//
// Nothing in the agent knows about it. A [Telemetry] wraps the four things a
// turn is made of, each behind the small interface its caller already
// declares:
//
//	store  := telemetry.WrapStore(st, tel)        // session.Store
//	model  := telemetry.WrapModel(client, tel)    // agent.Model
//	tools  := telemetry.WrapTools(toolset, tel)   // agent.Tools
//	a, _   := agent.New(store, model, tools, cfg)
//	turner := telemetry.WrapTurner(a, tel)        // what httpapi.New takes
//	h       = tel.Middleware(h)                   // root span, traceparent
//
// [WrapTurner] puts a small per-turn record in the context; the other
// decorators find it there (the agent passes the context through every
// call) and add what they measured: store and model time, retries, tokens,
// tool calls. When the turn ends, WrapTurner writes the log line, records the
// metrics and ends the turn's span. Every Wrap function given a nil
// *Telemetry returns its argument unchanged, so observability switched off
// costs nothing, not even an indirection.
//
// # What is never recorded
//
// Message contents, tool inputs and results, error messages (they may quote
// a request) and keys. Logs, metrics and spans carry ids, counts, durations,
// model names and error kinds (apierr.Kind, the "type" of the API's JSON
// errors, from apierr.From) only.
//
// # Metrics
//
// One set of measurements feeds two exports. On Lambda, [Config.EMF]
// (os.Stdout) receives one CloudWatch Embedded Metric Format record per turn
// and per [Telemetry.Count]: CloudWatch Logs turns them into metrics, with no
// PutMetricData call and no added latency. In server mode, [Config.Prometheus]
// keeps an in-process registry that [Telemetry.MetricsHandler] serves in the
// Prometheus text format (version 0.0.4), written here in a few hundred
// lines rather than imported: Lambda cold starts reward few dependencies.
// Labels and dimensions stay low-cardinality: function, model, outcome or
// error kind, store operation, and the tenant only if [Config.TenantLabel],
// bounded to [Config.MaxTenantLabels] values per process (then "other").
//
// # Traces
//
// Spans follow the OpenTelemetry GenAI semantic conventions (v1.40): a server
// span per HTTP request, "invoke_agent" per turn, "chat MODEL" per model call,
// "execute_tool NAME" per tool call, and one span per store call. A W3C
// traceparent on the incoming request (or, on Lambda, an X-Ray trace header
// with Sampled=1) becomes the parent; [InjectHTTP], [Transport] and
// [Config.WithTraceparent] carry the trace on to MCP servers.
//
// Tracing is off unless asked for (see [TracingFromEnv]): then there is no
// exporter and no span is started; an incoming trace context still passes
// through to MCP calls. On, spans go over OTLP/HTTP (protobuf) to the
// endpoint the standard OTEL_EXPORTER_OTLP_* variables name. On Lambda the
// AWS Distro for OpenTelemetry collector layer receives OTLP on
// localhost:4318, the exporter's default, and forwards to X-Ray, which
// accepts W3C trace ids; call [Telemetry.Flush] (or use [WrapInvoker]) at the
// end of each invocation, because a frozen process exports nothing.
package telemetry

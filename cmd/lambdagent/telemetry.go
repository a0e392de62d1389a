package main

import (
	"io"
	"log/slog"
	"os"

	"github.com/lambdagent/lambdagent/internal/mcptools"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// newTelemetry builds the process's observability (see #9): a log line per
// turn always; metrics as EMF records on stdout and/or at GET /metrics
// (LAMBDAGENT_METRICS); traces when the OTEL_* variables ask for them.
func newTelemetry(cfg config, log *slog.Logger) (*telemetry.Telemetry, error) {
	var emf io.Writer
	if cfg.Metrics == "emf" || cfg.Metrics == "both" {
		emf = os.Stdout // Lambda sends stdout to CloudWatch Logs, which reads EMF
	}
	return telemetry.New(telemetry.Config{
		Logger: log, EMF: emf, Prometheus: cfg.Metrics == "prometheus" || cfg.Metrics == "both",
		Function: cfg.Function, Model: cfg.Agent.Model, TenantLabel: cfg.TenantMetrics,
		Tracing: cfg.Tracing, WithTraceparent: mcptools.WithTraceparent,
	})
}

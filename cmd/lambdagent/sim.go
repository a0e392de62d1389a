//go:build !lambda

package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/lambdagent/lambdagent/internal/httpserver"
	"io"
	"log/slog"
	"net"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// runSim serves the Claude simulator alone, for any client through
// ANTHROPIC_BASE_URL.
func runSim(ctx context.Context, args []string, cfg config, log *slog.Logger, stdout io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	latency := fs.Duration("latency", cfg.SimLatency, "model latency added to every reply")
	rate429 := fs.Float64("rate-429", 0, "fraction of requests answered 429 rate_limit_error")
	rate529 := fs.Float64("rate-529", 0, "fraction of requests answered 529 overloaded_error")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("sim: %w", errUsage)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	sim := claudesim.New(claudesim.Config{Latency: *latency, Rate429: *rate429, Rate529: *rate529})
	fmt.Fprintf(stdout, "lambdagent sim: Claude Messages API simulator on http://%s\n  export ANTHROPIC_BASE_URL=http://%s ANTHROPIC_API_KEY=any\n", ln.Addr(), ln.Addr())
	return httpserver.Serve(ctx, ln, sim, httpserver.Config{Logger: log})
}

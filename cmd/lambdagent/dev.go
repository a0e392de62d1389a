//go:build !lambda

package main

import (
	"context"
	"fmt"
	"github.com/lambdagent/lambdagent"
	"github.com/lambdagent/lambdagent/internal/httpserver"
	"io"
	"log/slog"
	"net"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// runDev is the zero-setup mode: the built-in Claude simulator on a
// loopback port of its own, the embedded store (unless REDIS_URL is set)
// and the API on LAMBDAGENT_ADDR. The agent reaches the simulator over
// real HTTP, through the same client code that talks to the real API.
func runDev(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	simLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen for the simulator: %w", err)
	}
	sim := claudesim.New(claudesim.Config{Latency: cfg.SimLatency})
	// The simulator outlives the API server: turns still running during
	// the API's graceful shutdown need it. It stops when runDev returns.
	simCtx, stopSim := context.WithCancel(context.WithoutCancel(ctx))
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		_ = httpserver.Serve(simCtx, simLn, sim, httpserver.Config{Logger: log.With("server", "simulator")})
	}()
	defer func() { stopSim(); <-simDone }()

	cfg.Options.BaseURL = "http://" + simLn.Addr().String()
	cfg.Options.APIKey = "dev-simulator-key"
	// dev stays zero-setup on the developer's own machine: open, since
	// nothing else can reach a loopback address. On any other address it
	// is as closed as serve (#13).
	open := cfg.Options.Auth == "" && loopbackAddr(cfg.Addr)
	if open {
		cfg.Options.Auth = "none"
	}
	rt, err := newRuntime(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer rt.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (LAMBDAGENT_ADDR): %w", cfg.Addr, err)
	}
	fmt.Fprintf(stdout, "lambdagent dev: listening on http://%s (Claude simulator at %s, store %s)\n", ln.Addr(), cfg.Options.BaseURL, storeName(cfg))
	if open {
		fmt.Fprintf(stdout, "authentication is off: open to this machine only (loopback); set LAMBDAGENT_AUTH=key to require API keys\n")
		fmt.Fprintf(stdout, "try:\n  curl -H 'Content-Type: application/json' -d '{\"session_id\":\"s1\",\"message\":\"hello\"}' http://%s/agent\n", ln.Addr())
	} else {
		fmt.Fprintf(stdout, "try:\n  curl -H \"Authorization: Bearer $KEY\" -H 'Content-Type: application/json' -d '{\"session_id\":\"s1\",\"message\":\"hello\"}' http://%s/agent\n", ln.Addr())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait, err := startConsole(ctx, cfg, true, rt, log, stdout)
	if err != nil {
		ln.Close()
		return err
	}
	defer wait()
	defer cancel() // stops the console when the API stops, however
	return rt.Serve(ctx, ln)
}

func storeName(cfg config) string {
	if cfg.Options.RedisURL != "" {
		return "redis"
	}
	if cfg.Options.DBPath != "" {
		return cfg.Options.DBPath
	}
	return lambdagent.DefaultDBPath
}

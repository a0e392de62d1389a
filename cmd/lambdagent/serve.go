package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/lambdagent/lambdagent"
)

// newRuntime builds the runtime every mode serves (dev, serve, Lambda),
// logging to log.
func newRuntime(ctx context.Context, cfg config, log *slog.Logger) (*lambdagent.Runtime, error) {
	o := cfg.Options
	o.Logger = log
	return lambdagent.New(ctx, o)
}

func runServe(ctx context.Context, cfg config, log *slog.Logger) error {
	if cfg.Options.APIKey == "" {
		return fmt.Errorf("ANTHROPIC_API_KEY is not set (use `lambdagent dev` to run without a key)")
	}
	if cfg.Options.Auth == "apigw" {
		return fmt.Errorf("LAMBDAGENT_AUTH=apigw trusts API Gateway's authorizer and works only on Lambda: use key or jwt for serve")
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
	log.Info("serving", "addr", ln.Addr().String(), "model", modelName(cfg))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wait, err := startConsole(ctx, cfg, false, rt, log, io.Discard)
	if err != nil {
		ln.Close()
		return err
	}
	defer wait()
	defer cancel() // stops the console when the API stops, however
	return rt.Serve(ctx, ln)
}

func modelName(cfg config) string {
	if cfg.Options.Model != "" {
		return cfg.Options.Model
	}
	return lambdagent.DefaultModel
}

// loopbackAddr reports whether addr (host:port) listens on loopback only:
// 127.0.0.0/8, ::1 or localhost. An empty host (":8080") is every
// interface.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

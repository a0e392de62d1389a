// Command lambdagent runs Claude agents on stateless compute: one agent
// turn per request, every bit of state in a store.
//
// Usage:
//
//	lambdagent dev     zero-setup local server: embedded store + built-in Claude simulator
//	lambdagent serve   production HTTP server (REDIS_URL, ANTHROPIC_API_KEY)
//	lambdagent sim     the Claude Messages API simulator alone
//	lambdagent load    closed-loop load with a history check; -cold for cold starts
//	lambdagent chat    interactive terminal client for a session
//	lambdagent cost    cost per 100K turns from measured figures
//	lambdagent keys    create, list and revoke API keys
//	lambdagent workflow validate FILE, start|get|list|signal|cancel   workflows
//
// With AWS_LAMBDA_RUNTIME_API set (inside AWS Lambda) it runs as a Lambda
// function whatever the arguments. Configuration is read from environment
// variables, documented in the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/lambdagent/lambdagent/internal/awssecrets"
	"github.com/lambdagent/lambdagent/internal/memlimit"
	"github.com/lambdagent/lambdagent/internal/redact"
)

const usage = `lambdagent runs Claude agents on stateless compute.

Usage:
  lambdagent dev     local server: embedded store + built-in Claude simulator, no keys needed
  lambdagent serve   production HTTP server (REDIS_URL, ANTHROPIC_API_KEY)
  lambdagent sim     the Claude Messages API simulator alone (-addr, -latency)
  lambdagent load    closed-loop load against an endpoint, with a history check (-h for flags)
  lambdagent chat    interactive client for a session (-url, -session)
  lambdagent cost    cost per 100K turns from measured figures or a load report (-h for flags)
  lambdagent keys    create, list and revoke API keys (create -tenant NAME, list, revoke ID)
  lambdagent workflow validate|start|get|list|signal|cancel   workflow definitions and runs (-h for flags)

Configuration is read from environment variables; see the README.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "lambdagent:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("see usage above")

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) (err error) {
	// Values from LAMBDAGENT_SECRETS_ARN fill what the environment leaves
	// unset, before anything reads the configuration.
	getenv, err = awssecrets.Getenv(ctx, getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	// Whatever library printed a secret, it reaches neither the logs nor
	// the error main prints (see #13).
	secrets := redact.Env(getenv)
	defer func() { err = secrets.Error(err) }()
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := slog.New(redact.Handler(newLogger(cfg, stderr).Handler(), secrets.String))
	mode := ""
	if len(args) > 0 {
		mode, args = args[0], args[1:]
	}
	if cfg.onLambda || mode == "serve" || mode == "dev" {
		// The processes that run turns size their collector to the
		// memory they are given (see internal/memlimit); the tools do not.
		plan, err := memlimit.Decide(memlimit.Env{Getenv: getenv, ReadFile: os.ReadFile})
		if err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
		memlimit.Apply(plan)
		log.Info(plan.String())
	}
	if cfg.onLambda {
		return runLambda(ctx, cfg, log)
	}
	switch mode {
	case "dev":
		return runDev(ctx, cfg, log, stdout)
	case "serve":
		return runServe(ctx, cfg, log)
	case "sim":
		return runSim(ctx, args, cfg, log, stdout)
	case "load":
		return runLoad(ctx, args, getenv, stdout, stderr)
	case "chat":
		return runChat(ctx, args, getenv, os.Stdin, stdout, stderr)
	case "cost":
		return runCost(args, os.Stdin, stdout, stderr)
	case "keys":
		return runKeys(ctx, args, cfg, stdout, stderr)
	case "workflow":
		return runWorkflow(ctx, args, getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "":
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no mode given: %w", errUsage)
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown mode %q: %w", mode, errUsage)
	}
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" || cfg.onLambda {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

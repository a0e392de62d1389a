//go:build lambda

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/lambdagent/lambdagent"
)

// The Lambda bootstrap (scripts/lambda/build.sh builds it with -tags
// lambda) leaves out the modes that only run on a developer's machine, so
// it does not link the simulator, the load generator or the chat UI: less
// to load and initialise on every cold start. internal/archtest checks
// that they stay out. These stubs keep run's switch the same in both
// builds.

// errNotInLambdaBuild is returned by the modes the Lambda build leaves out.
var errNotInLambdaBuild = errors.New("not in the Lambda build (-tags lambda): use a build without the tag")

func runDev(context.Context, config, *slog.Logger, io.Writer) error {
	return fmt.Errorf("mode dev: %w", errNotInLambdaBuild)
}

func runSim(context.Context, []string, config, *slog.Logger, io.Writer) error {
	return fmt.Errorf("mode sim: %w", errNotInLambdaBuild)
}

func runLoad(context.Context, []string, func(string) string, io.Writer, io.Writer) error {
	return fmt.Errorf("mode load: %w", errNotInLambdaBuild)
}

func runChat(context.Context, []string, func(string) string, *os.File, io.Writer, io.Writer) error {
	return fmt.Errorf("mode chat: %w", errNotInLambdaBuild)
}

func runCost([]string, io.Reader, io.Writer, io.Writer) error {
	return fmt.Errorf("mode cost: %w", errNotInLambdaBuild)
}

// startConsole refuses the console, which the Lambda build leaves out
// (a Lambda function serves no port of its own).
func startConsole(_ context.Context, cfg config, dev bool, _ *lambdagent.Runtime, _ *slog.Logger, _ io.Writer) (func(), error) {
	if _, on := cfg.consoleAddr(dev); on {
		return nil, fmt.Errorf("LAMBDAGENT_CONSOLE: the console %w", errNotInLambdaBuild)
	}
	return func() {}, nil
}

//go:build !lambda

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/lambdagent/lambdagent/internal/loadgen"
)

const loadUsage = `Usage:
  lambdagent load [flags] URL [URL...]
  lambdagent load -cold N [flags] URL COMMAND [ARGS...]

Sends closed-loop load to URL (POST {"session_id","message"}; a URL without
a path means its /agent), then checks every session's history. Several URLs (instances sharing one
store) take the turns round robin, each request to the next. With -cold,
starts COMMAND N times instead and measures spawn → first answered turn.
Exits 1 when a turn failed or the history check found a violation.

Flags:
`

// runLoad is `lambdagent load`. env reads the environment
// (LAMBDAGENT_API_KEY, the default of -key).
func runLoad(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, loadUsage); fs.PrintDefaults() }
	var cfg loadgen.Config
	fs.IntVar(&cfg.Sessions, "sessions", 10, "sessions at once, each a closed loop")
	fs.IntVar(&cfg.Turns, "turns", 10, "turns per session")
	fs.DurationVar(&cfg.Think, "think", 0, "pause between a session's answer and its next turn")
	fs.DurationVar(&cfg.Ramp, "ramp", 0, "spread the sessions' starts over this long")
	fs.IntVar(&cfg.MaxRequests, "max-requests", 0, "stop after this many turns in all (0: sessions × turns)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "start no turn after this long (0: no limit)")
	fs.DurationVar(&cfg.Timeout, "timeout", loadgen.DefaultTimeout, "timeout of one request")
	fs.DurationVar(&cfg.ModelLatency, "model-latency", 0, "the model's latency per call (the simulator's -latency), for the overhead")
	fs.IntVar(&cfg.Retries, "retries", loadgen.DefaultRetries, "retries of a turn on 409/429/502/503/504 or a lost connection, with its Idempotency-Key (0: none)")
	fs.BoolVar(&cfg.Stream, "stream", false, "ask for streamed answers (server-sent events): report the time to first token and check each answer's text deltas")
	historyCheck := fs.Bool("history-check", true, "check every session's history after the run")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	fs.StringVar(&cfg.APIKey, "key", "", apiKeyUsage)
	cold := fs.Int("cold", 0, "start COMMAND this many times and measure spawn → first answered turn")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("load: %w", errUsage)
	}
	if fs.NArg() < 1 {
		fs.Usage()
		return fmt.Errorf("load: no URL given: %w", errUsage)
	}
	if cfg.APIKey == "" {
		cfg.APIKey = env("LAMBDAGENT_API_KEY")
	}
	url := fs.Arg(0)
	if *cold > 0 {
		if fs.NArg() < 2 {
			fs.Usage()
			return fmt.Errorf("load -cold: no server command given: %w", errUsage)
		}
		rep, err := loadgen.Cold(ctx, loadgen.ColdConfig{URL: url, Command: fs.Args()[1:], Runs: *cold, Timeout: cfg.Timeout, APIKey: cfg.APIKey})
		if err != nil {
			return err
		}
		if *jsonOut {
			return writeJSON(stdout, rep)
		}
		return rep.WriteText(stdout)
	}
	for _, more := range fs.Args()[1:] {
		if !strings.HasPrefix(more, "http://") && !strings.HasPrefix(more, "https://") {
			return fmt.Errorf("load: unexpected argument %q after the URL: more targets are http(s) URLs, and a server command needs -cold: %w", more, errUsage)
		}
	}
	cfg.URL, cfg.MoreURLs = url, fs.Args()[1:]
	if cfg.Retries == 0 {
		cfg.Retries = -1
	}
	cfg.NoHistoryCheck = !*historyCheck
	tty := isTerminal(stdout)
	if tty {
		cfg.Progress = func(p loadgen.Progress) {
			fmt.Fprintf(stdout, "\r\033[K%d/%d turns  %d failed  %d errors  %.0f turns/s  %s",
				p.Done, p.Planned, p.Failed, p.Errors, p.Rate, p.Elapsed.Round(100*time.Millisecond))
		}
	}
	rep, err := loadgen.Run(ctx, cfg)
	if tty {
		fmt.Fprint(stdout, "\r\033[K")
	}
	if rep == nil {
		return err
	}
	authErr := err // ErrNoKey or ErrKeyRefused, after the report
	if *jsonOut {
		err = writeJSON(stdout, rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return err
	}
	if authErr != nil {
		return authErr
	}
	switch {
	case rep.History.Violations > 0:
		return fmt.Errorf("load: %d history violations in %d sessions", rep.History.Violations, rep.History.Sessions)
	case rep.FailedTurns > 0:
		return fmt.Errorf("load: %d turns failed", rep.FailedTurns)
	case ctx.Err() != nil:
		return fmt.Errorf("load: interrupted")
	}
	return nil
}

// isTerminal reports whether w is a terminal, for the live progress line.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

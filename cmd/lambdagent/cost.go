//go:build !lambda

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/lambdagent/lambdagent/internal/loadgen"
)

const costUsage = `Usage:
  lambdagent cost [flags]
  lambdagent load -json URL > run.json; lambdagent cost -report run.json [flags]

Prices turns (100,000 by default) from the figures of one turn: Lambda
duration (wall time, the wait for the model included) and requests, Redis
commands (Upstash's per-command price) and Claude tokens. A -report sets the
seconds, tokens and model calls per turn from a load run; flags given
override it. -print-prices shows the price table; -prices FILE overrides it:
  {"lambda": {"gb_second": 0.0000133334, "per_million_requests": 0.2},
   "redis":  {"per_100k_commands": 0.2},
   "claude": {"claude-sonnet-5-5": {"input": 2, "output": 10,
              "cache_write_5m": 2.5, "cache_write_1h": 4, "cache_read": 0.2}}}

Flags:
`

// seedClaim is the seed article's figure the report is compared with.
const seedClaim = "$0.08 per 100K requests"

// runCost is `lambdagent cost`.
func runCost(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cost", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, costUsage); fs.PrintDefaults() }
	report := fs.String("report", "", "a `lambdagent load -json` report (- for stdin) to take the figures from")
	pricesFile := fs.String("prices", "", "JSON `file` of prices overriding the defaults")
	printPrices := fs.Bool("print-prices", false, "print the price table (with -prices applied) as JSON and exit")
	turns := fs.Int("turns", 100_000, "turns to price")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	var f loadgen.Figures
	fs.StringVar(&f.Model, "model", loadgen.DefaultModel, "Claude model")
	fs.IntVar(&f.MemoryMB, "memory", loadgen.DefaultMemoryMB, "Lambda memory, MB")
	fs.Float64Var(&f.SecondsPerTurn, "seconds-per-turn", 0, "wall seconds of a turn's invocation, model calls included")
	fs.Float64Var(&f.ModelCallsPerTurn, "model-calls", 1, "Messages API requests per turn")
	fs.Float64Var(&f.RedisCommandsPerTurn, "redis-commands", 2, "Redis commands per turn (lambdagent: 2)")
	fs.Float64Var(&f.Tokens.Input, "input-tokens", 0, "uncached input tokens per turn")
	fs.Float64Var(&f.Tokens.Output, "output-tokens", 0, "output tokens per turn")
	fs.Float64Var(&f.Tokens.CacheCreation, "cache-write-tokens", 0, "prompt-cache write tokens per turn")
	fs.Float64Var(&f.Tokens.CacheRead, "cache-read-tokens", 0, "prompt-cache read tokens per turn")
	fs.BoolVar(&f.CacheWrite1h, "cache-1h", false, "price cache writes as 1-hour writes (default 5-minute)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("cost: %w", errUsage)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("cost: unexpected arguments %v: %w", fs.Args(), errUsage)
	}
	prices := loadgen.DefaultPrices()
	if *pricesFile != "" {
		b, err := os.ReadFile(*pricesFile)
		if err != nil {
			return fmt.Errorf("cost: %w", err)
		}
		if prices, err = loadgen.ParsePrices(b); err != nil {
			return fmt.Errorf("cost: %s: %w", *pricesFile, err)
		}
	}
	if *printPrices {
		return writeJSON(stdout, prices)
	}
	if *report != "" {
		var rep loadgen.Report
		if err := readReport(*report, stdin, &rep); err != nil {
			return fmt.Errorf("cost: %w", err)
		}
		if rep.Turns == 0 {
			return fmt.Errorf("cost: report %s has no answered turns", *report)
		}
		set := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
		t := rep.TokensPerTurn
		for _, x := range []struct {
			flag string
			dst  *float64
			v    float64
		}{
			{"seconds-per-turn", &f.SecondsPerTurn, rep.Latency.Mean / 1000},
			{"model-calls", &f.ModelCallsPerTurn, rep.ModelCallsPerTurn},
			{"input-tokens", &f.Tokens.Input, t.Input},
			{"output-tokens", &f.Tokens.Output, t.Output},
			{"cache-write-tokens", &f.Tokens.CacheCreation, t.CacheCreation},
			{"cache-read-tokens", &f.Tokens.CacheRead, t.CacheRead},
		} {
			if !set[x.flag] {
				*x.dst = x.v
			}
		}
	}
	r, err := loadgen.Cost(f, prices, *turns)
	if err != nil {
		return fmt.Errorf("cost: %w", err)
	}
	if *jsonOut {
		return writeJSON(stdout, r)
	}
	if err := r.WriteText(stdout); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "  (the seed article claims %s: Lambda only, without Claude's tokens\n   or the Lambda time spent waiting for the model)\n", seedClaim)
	return err
}

func readReport(name string, stdin io.Reader, v any) error {
	var b []byte
	var err error
	if name == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("report %s: %w", name, err)
	}
	return nil
}

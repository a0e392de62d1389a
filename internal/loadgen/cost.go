package loadgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/lambdagent/lambdagent/internal/pricing"
)

// Prices are what the cost report charges, in US dollars: AWS Lambda,
// Upstash Redis and Claude (the table of internal/pricing).
type Prices struct {
	Lambda LambdaPrices  `json:"lambda"`
	Redis  RedisPrices   `json:"redis"`
	Claude pricing.Table `json:"claude"`
}

// LambdaPrices are AWS Lambda's on-demand prices.
type LambdaPrices struct {
	// GBSecond is the price of one GB-second of duration. Lambda bills
	// the whole invocation, waiting for the model included, rounded up to
	// the millisecond.
	GBSecond float64 `json:"gb_second"`
	// PerMillionRequests is the price of a million invocations.
	PerMillionRequests float64 `json:"per_million_requests"`
}

// RedisPrices are a Redis service's per-command prices.
type RedisPrices struct {
	// Per100KCommands is the price of 100,000 commands.
	Per100KCommands float64 `json:"per_100k_commands"`
}

// DefaultPrices returns the list prices the report uses unless told
// otherwise (checked 2026-11; override with [ParsePrices]):
//
//	AWS Lambda, arm64, us-east-1, first tier:
//	  duration   $0.0000133334 per GB-second
//	  requests   $0.20 per million
//	Upstash Redis, pay as you go:
//	  commands   $0.20 per 100,000
//	Claude: pricing.Default (claude-sonnet-5-5: input $2, output $10,
//	  cache write 5m $2.50, 1h $4, cache read $0.20 per million tokens)
//
// Free tiers (Lambda's 1M requests and 400,000 GB-s a month, Upstash's
// 500K commands) are left out: the report prices a marginal turn.
func DefaultPrices() Prices {
	return Prices{
		Lambda: LambdaPrices{GBSecond: 0.0000133334, PerMillionRequests: 0.20},
		Redis:  RedisPrices{Per100KCommands: 0.20},
		Claude: pricing.Default(),
	}
}

// ParsePrices returns [DefaultPrices] with the prices data names
// replaced. data is a JSON object; every part is optional:
//
//	{"lambda": {"gb_second": 0.0000166667, "per_million_requests": 0.2},
//	 "redis":  {"per_100k_commands": 0.2},
//	 "claude": {"claude-sonnet-5-5": {"input": 2, "output": 10}}}
//
// "claude" is read by pricing.Parse: a model named there replaces its
// default entry whole.
func ParsePrices(data []byte) (Prices, error) {
	p := DefaultPrices()
	var in struct {
		Lambda *struct {
			GBSecond           *float64 `json:"gb_second"`
			PerMillionRequests *float64 `json:"per_million_requests"`
		} `json:"lambda"`
		Redis *struct {
			Per100KCommands *float64 `json:"per_100k_commands"`
		} `json:"redis"`
		Claude json.RawMessage `json:"claude"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return p, fmt.Errorf("prices: %w", err)
	}
	set := func(dst *float64, v *float64, name string) error {
		if v == nil {
			return nil
		}
		if *v < 0 || math.IsNaN(*v) || math.IsInf(*v, 0) {
			return fmt.Errorf("prices: %s is %v; want a price ≥ 0", name, *v)
		}
		*dst = *v
		return nil
	}
	if in.Lambda != nil {
		if err := set(&p.Lambda.GBSecond, in.Lambda.GBSecond, "lambda.gb_second"); err != nil {
			return p, err
		}
		if err := set(&p.Lambda.PerMillionRequests, in.Lambda.PerMillionRequests, "lambda.per_million_requests"); err != nil {
			return p, err
		}
	}
	if in.Redis != nil {
		if err := set(&p.Redis.Per100KCommands, in.Redis.Per100KCommands, "redis.per_100k_commands"); err != nil {
			return p, err
		}
	}
	if len(in.Claude) > 0 {
		t, err := pricing.Parse(string(in.Claude))
		if err != nil {
			return p, fmt.Errorf("prices: claude: %w", err)
		}
		p.Claude = t
	}
	return p, nil
}

// DefaultModel and DefaultMemoryMB are the model and Lambda memory of a
// zero Figures.
const (
	DefaultModel    = "claude-sonnet-5-5"
	DefaultMemoryMB = 128
)

// Figures are the measured (or assumed) facts of one turn that the cost
// report prices. A zero field means its documented default.
type Figures struct {
	// Model is the Claude model. Empty means DefaultModel.
	Model string `json:"model"`
	// MemoryMB is the Lambda function's memory. Zero means
	// DefaultMemoryMB (Lambda's own default).
	MemoryMB int `json:"memory_mb"`
	// SecondsPerTurn is the wall time of a turn's invocation, model calls
	// included: what Lambda bills.
	SecondsPerTurn float64 `json:"seconds_per_turn"`
	// InvocationsPerTurn is the Lambda invocations a turn takes. Zero
	// means 1.
	InvocationsPerTurn float64 `json:"invocations_per_turn"`
	// ModelCallsPerTurn is the Messages API requests of a turn (tool
	// loops make several); it decides per-request price tiers. Zero
	// means 1.
	ModelCallsPerTurn float64 `json:"model_calls_per_turn"`
	// Tokens per turn, summed over its model calls.
	Tokens Tokens `json:"tokens_per_turn"`
	// CacheWrite1h prices cache writes as 1-hour writes; by default they
	// are 5-minute writes.
	CacheWrite1h bool `json:"cache_write_1h"`
	// RedisCommandsPerTurn is the commands the store sends per turn
	// (lambdagent: 2, one script to begin, one to commit).
	RedisCommandsPerTurn float64 `json:"redis_commands_per_turn"`
}

// A CostLine is one item of a [CostReport].
type CostLine struct {
	Group    string  `json:"group"` // lambda, redis, claude
	Item     string  `json:"item"`
	Quantity float64 `json:"quantity"`
	Unit     string  `json:"unit"`
	USD      float64 `json:"usd"`
}

// A CostReport is the price of Turns turns.
type CostReport struct {
	Turns   int        `json:"turns"`
	Figures Figures    `json:"figures"`
	Lines   []CostLine `json:"lines"`
	Lambda  float64    `json:"lambda_usd"`
	Redis   float64    `json:"redis_usd"`
	Claude  float64    `json:"claude_usd"`
	Total   float64    `json:"total_usd"`
}

// Cost prices turns turns of f at p. It fails for a model p cannot price
// ([ErrUnknownModel]) and for negative figures.
func Cost(f Figures, p Prices, turns int) (*CostReport, error) {
	if f.Model == "" {
		f.Model = DefaultModel
	}
	if f.MemoryMB == 0 {
		f.MemoryMB = DefaultMemoryMB
	}
	if f.InvocationsPerTurn == 0 {
		f.InvocationsPerTurn = 1
	}
	if f.ModelCallsPerTurn == 0 {
		f.ModelCallsPerTurn = 1
	}
	t := f.Tokens
	for name, v := range map[string]float64{"memory": float64(f.MemoryMB), "seconds per turn": f.SecondsPerTurn,
		"invocations": f.InvocationsPerTurn, "model calls": f.ModelCallsPerTurn, "Redis commands": f.RedisCommandsPerTurn,
		"input tokens": t.Input, "output tokens": t.Output, "cache write tokens": t.CacheCreation, "cache read tokens": t.CacheRead,
		"turns": float64(turns)} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: %s is %v", ErrBadConfig, name, v)
		}
	}
	price, ok := p.Claude.Lookup(f.Model)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownModel, f.Model)
	}
	// Per-request tiers (a long prompt) apply per model call; an average
	// call stands for them all.
	rates := price.Rates
	if prompt := (t.Input + t.CacheCreation + t.CacheRead) / f.ModelCallsPerTurn; price.LongPromptTokens > 0 && prompt > float64(price.LongPromptTokens) {
		rates = price.LongPrompt
	}
	n := float64(turns)
	r := &CostReport{Turns: turns, Figures: f}
	add := func(group, item string, qty float64, unit string, usd float64) {
		r.Lines = append(r.Lines, CostLine{Group: group, Item: item, Quantity: qty, Unit: unit, USD: usd})
		switch group {
		case "lambda":
			r.Lambda += usd
		case "redis":
			r.Redis += usd
		case "claude":
			r.Claude += usd
		}
		r.Total += usd
	}
	// Lambda rounds each invocation up to the millisecond.
	billed := math.Ceil(f.SecondsPerTurn/f.InvocationsPerTurn*1000) / 1000 * f.InvocationsPerTurn
	gbs := n * billed * float64(f.MemoryMB) / 1024
	add("lambda", fmt.Sprintf("duration (%.3f s/turn × %d MB)", billed, f.MemoryMB), gbs, "GB-s", gbs*p.Lambda.GBSecond)
	add("lambda", "requests", n*f.InvocationsPerTurn, "requests", n*f.InvocationsPerTurn/1e6*p.Lambda.PerMillionRequests)
	add("redis", fmt.Sprintf("commands (%.1f/turn)", f.RedisCommandsPerTurn), n*f.RedisCommandsPerTurn, "commands", n*f.RedisCommandsPerTurn/1e5*p.Redis.Per100KCommands)
	write, writeName := rates.CacheWrite5m, "cache write 5m"
	if f.CacheWrite1h {
		write, writeName = rates.CacheWrite1h, "cache write 1h"
	}
	for _, c := range []struct {
		name   string
		tokens float64
		rate   float64
	}{
		{"input", t.Input, rates.Input},
		{"output", t.Output, rates.Output},
		{writeName, t.CacheCreation, write},
		{"cache read", t.CacheRead, rates.CacheRead},
	} {
		add("claude", fmt.Sprintf("%s (%.0f/turn at $%g/MTok)", c.name, c.tokens, c.rate), n*c.tokens, "tokens", n*c.tokens/1e6*c.rate)
	}
	return r, nil
}

// WriteText writes the report as a table.
func (r *CostReport) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "cost of %s turns (model %s, Lambda %d MB, %.3f s per turn):\n", thousands(float64(r.Turns)), r.Figures.Model, r.Figures.MemoryMB, r.Figures.SecondsPerTurn)
	for _, l := range r.Lines {
		fmt.Fprintf(&b, "  %-6s %-40s %13s %-8s $%10.4f\n", l.Group, l.Item, thousands(l.Quantity), l.Unit, l.USD)
	}
	fmt.Fprintf(&b, "  %-6s %-63s $%10.4f\n", "", "Lambda + Redis", r.Lambda+r.Redis)
	fmt.Fprintf(&b, "  %-6s %-63s $%10.4f\n", "", "Claude", r.Claude)
	fmt.Fprintf(&b, "  %-6s %-63s $%10.4f\n", "", "total", r.Total)
	_, err := io.WriteString(w, b.String())
	return err
}

// thousands writes v rounded, with thousands separators (or with two
// decimals below 10).
func thousands(v float64) string {
	if v < 10 && v != math.Trunc(v) {
		return fmt.Sprintf("%.2f", v)
	}
	s := fmt.Sprintf("%.0f", v)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Package pricing turns the token usage of a Messages API reply into US
// dollars at list prices.
//
// A [Table] maps model names to a [Price] in USD per million tokens
// (MTok), with the five rates Anthropic bills: base input, 5-minute and
// 1-hour cache writes, cache reads, and output. [Default] holds the list
// prices of the models lambdagent knows; [Parse] overrides them from JSON
// (LAMBDAGENT_PRICES), so a price change needs no release.
//
// Costs are computed per reply, never on summed usage, because a price
// may depend on the size of one request's prompt (Claude Haiku 5.5 bills
// every token of a request whose prompt passes 100K tokens at its higher
// rates).
package pricing

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"strings"
)

// Rates are prices in USD per million tokens.
type Rates struct {
	// Input is the price of base (uncached) input tokens.
	Input float64
	// Output is the price of output tokens, thinking included.
	Output float64
	// CacheWrite5m and CacheWrite1h are the prices of tokens written to
	// the prompt cache for 5 minutes and for 1 hour.
	CacheWrite5m float64
	CacheWrite1h float64
	// CacheRead is the price of tokens read from the prompt cache (hits
	// and refreshes).
	CacheRead float64
}

// A Price is what one model costs.
type Price struct {
	Rates
	// LongPromptTokens, when positive, is the prompt size (input, cache
	// writes and cache reads of one request) above which LongPrompt rates
	// apply to every token of that request, output included.
	LongPromptTokens int64
	LongPrompt       Rates
}

// Tokens are the tokens one reply used, as the Messages API counts them
// in its usage object. (The package keeps its own type rather than
// claude.Usage so that the Claude client, which prices its replies, can
// import it.)
type Tokens struct {
	// Input is input_tokens: base input, neither written to nor read from
	// the cache.
	Input int64
	// Output is output_tokens.
	Output int64
	// CacheWrite is cache_creation_input_tokens, all lifetimes.
	CacheWrite int64
	// CacheWrite1h is the part of CacheWrite written for 1 hour
	// (cache_creation.ephemeral_1h_input_tokens); the rest is priced as
	// 5-minute writes.
	CacheWrite1h int64
	// CacheRead is cache_read_input_tokens.
	CacheRead int64
}

// Cost is what a reply that used n costs at p, in USD. Cache writes the
// API did not split by lifetime are priced as 5-minute writes.
func (p Price) Cost(n Tokens) float64 {
	r := p.Rates
	if p.LongPromptTokens > 0 && n.Input+n.CacheWrite+n.CacheRead > p.LongPromptTokens {
		r = p.LongPrompt
	}
	w1h := min(max(n.CacheWrite1h, 0), n.CacheWrite)
	w5m := n.CacheWrite - w1h
	return (float64(n.Input)*r.Input +
		float64(n.Output)*r.Output +
		float64(w5m)*r.CacheWrite5m +
		float64(w1h)*r.CacheWrite1h +
		float64(n.CacheRead)*r.CacheRead) / 1e6
}

// A Table maps model names to prices. The entry "*", if present, prices
// models the table does not name. A Table is safe for concurrent reads.
type Table map[string]Price

// Lookup returns the price of model: its own entry, else the entry of its
// undated name ("claude-sonnet-4-5-20250929" → "claude-sonnet-4-5"), else
// the "*" entry. ok is false when none exists.
func (t Table) Lookup(model string) (p Price, ok bool) {
	if p, ok = t[model]; ok {
		return p, true
	}
	if i := strings.LastIndexByte(model, '-'); i > 0 && len(model)-i-1 == 8 && isDigits(model[i+1:]) {
		if p, ok = t[model[:i]]; ok {
			return p, true
		}
	}
	p, ok = t["*"]
	return p, ok
}

// Cost is what a reply of model that used n costs, in USD; zero for a
// model the table cannot price (see [Table.Lookup]).
func (t Table) Cost(model string, n Tokens) float64 {
	p, _ := t.Lookup(model)
	return p.Cost(n)
}

func isDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Multipliers of the input price that Anthropic applies to cache writes
// and reads on most models; [Parse] uses them for rates a JSON entry
// leaves out.
const (
	CacheWrite5mFactor = 1.25
	CacheWrite1hFactor = 2
	CacheReadFactor    = 0.1
)

// Default returns a new Table of list prices, in USD per MTok, as
// Anthropic's model pages state them (2026-11):
//
//	model               input  5m write  1h write  cache read  output
//	claude-sonnet-5-5   2      2.50      4         0.20        10
//	claude-opus-5-5     4      5         8         0.20        20
//	claude-haiku-5-5    0.10   0.125     0.20      0.01        0.50
//	  prompt > 100K     0.50   0.625     1         0.05        2.50
//	claude-sonnet-4-5   3      3.75      6         0.30        15
//
// The 5.5 models read the cache at 0.05× (Haiku 0.1×) their input price,
// not the usual 0.1×. Some third-party price lists report a cut of the
// Sonnet 5.5 cache read to $0.10 from 2026-10-07; Anthropic's model page
// says $0.20, which is kept here. Override with [Parse].
func Default() Table {
	return Table{
		"claude-sonnet-5-5": {Rates: Rates{Input: 2, Output: 10, CacheWrite5m: 2.50, CacheWrite1h: 4, CacheRead: 0.20}},
		"claude-opus-5-5":   {Rates: Rates{Input: 4, Output: 20, CacheWrite5m: 5, CacheWrite1h: 8, CacheRead: 0.20}},
		"claude-haiku-5-5": {
			Rates:            Rates{Input: 0.10, Output: 0.50, CacheWrite5m: 0.125, CacheWrite1h: 0.20, CacheRead: 0.01},
			LongPromptTokens: 100_000,
			LongPrompt:       Rates{Input: 0.50, Output: 2.50, CacheWrite5m: 0.625, CacheWrite1h: 1, CacheRead: 0.05},
		},
		"claude-sonnet-4-5": {Rates: Rates{Input: 3, Output: 15, CacheWrite5m: 3.75, CacheWrite1h: 6, CacheRead: 0.30}},
	}
}

// ratesJSON is the JSON form of Rates; a nil field was left out.
type ratesJSON struct {
	Input        *float64 `json:"input"`
	Output       *float64 `json:"output"`
	CacheWrite5m *float64 `json:"cache_write_5m"`
	CacheWrite1h *float64 `json:"cache_write_1h"`
	CacheRead    *float64 `json:"cache_read"`
}

type priceJSON struct {
	ratesJSON
	LongPromptTokens int64      `json:"long_prompt_tokens,omitempty"`
	LongPrompt       *ratesJSON `json:"long_prompt,omitempty"`
}

// Parse returns [Default] with the models of s, a JSON object, added or
// replaced. Each model maps to its rates in USD per MTok:
//
//	{"claude-sonnet-5-5": {"input": 2, "output": 10, "cache_write_5m": 2.5,
//	   "cache_write_1h": 4, "cache_read": 0.2},
//	 "claude-haiku-5-5": {"input": 0.1, "output": 0.5,
//	   "long_prompt_tokens": 100000, "long_prompt": {"input": 0.5, "output": 2.5}},
//	 "*": {"input": 3, "output": 15}}
//
// input and output are required; a cache rate left out is derived from
// input with the usual multipliers ([CacheWrite5mFactor],
// [CacheWrite1hFactor], [CacheReadFactor]). "*" prices any model not
// named. Unknown fields, negative rates and a long_prompt without
// long_prompt_tokens (or the reverse) are errors. An empty s yields
// [Default].
func Parse(s string) (Table, error) {
	t := Default()
	if strings.TrimSpace(s) == "" {
		return t, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var in map[string]priceJSON
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("pricing: %w", err)
	}
	if dec.More() {
		return nil, errors.New("pricing: data after the JSON object")
	}
	if in == nil {
		return nil, errors.New("pricing: want a JSON object of models")
	}
	out := make(Table, len(in))
	for model, pj := range in {
		if model == "" {
			return nil, errors.New("pricing: empty model name")
		}
		var p Price
		var err error
		if p.Rates, err = pj.ratesJSON.rates(); err != nil {
			return nil, fmt.Errorf("pricing: model %q: %w", model, err)
		}
		switch {
		case pj.LongPromptTokens < 0:
			return nil, fmt.Errorf("pricing: model %q: negative long_prompt_tokens", model)
		case (pj.LongPromptTokens > 0) != (pj.LongPrompt != nil):
			return nil, fmt.Errorf("pricing: model %q: long_prompt_tokens and long_prompt go together", model)
		case pj.LongPrompt != nil:
			p.LongPromptTokens = pj.LongPromptTokens
			if p.LongPrompt, err = pj.LongPrompt.rates(); err != nil {
				return nil, fmt.Errorf("pricing: model %q: long_prompt: %w", model, err)
			}
		}
		out[model] = p
	}
	maps.Copy(t, out)
	return t, nil
}

func (r ratesJSON) rates() (Rates, error) {
	if r.Input == nil || r.Output == nil {
		return Rates{}, errors.New("input and output are required")
	}
	in := *r.Input
	pick := func(name string, v *float64, factor float64) (float64, error) {
		p := in * factor
		if v != nil {
			p = *v
		}
		if p < 0 || math.IsInf(p, 0) || math.IsNaN(p) {
			return 0, fmt.Errorf("%s is %v; want a finite price ≥ 0", name, p)
		}
		return p, nil
	}
	var out Rates
	var err error
	for _, f := range []struct {
		name   string
		v      *float64
		factor float64
		dst    *float64
	}{
		{"input", r.Input, 1, &out.Input},
		{"output", r.Output, 1, &out.Output},
		{"cache_write_5m", r.CacheWrite5m, CacheWrite5mFactor, &out.CacheWrite5m},
		{"cache_write_1h", r.CacheWrite1h, CacheWrite1hFactor, &out.CacheWrite1h},
		{"cache_read", r.CacheRead, CacheReadFactor, &out.CacheRead},
	} {
		if *f.dst, err = pick(f.name, f.v, f.factor); err != nil {
			return Rates{}, err
		}
	}
	return out, nil
}

// MarshalJSON writes p in the form [Parse] reads, so a Table can be shown
// (e.g. by an admin endpoint) and fed back.
func (p Price) MarshalJSON() ([]byte, error) {
	rj := func(r Rates) *ratesJSON {
		return &ratesJSON{&r.Input, &r.Output, &r.CacheWrite5m, &r.CacheWrite1h, &r.CacheRead}
	}
	pj := priceJSON{ratesJSON: *rj(p.Rates)}
	if p.LongPromptTokens > 0 {
		pj.LongPromptTokens, pj.LongPrompt = p.LongPromptTokens, rj(p.LongPrompt)
	}
	return json.Marshal(pj)
}

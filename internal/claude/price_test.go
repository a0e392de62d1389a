package claude_test

import (
	"errors"
	"math"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/pricing"
)

const sonnet = "claude-sonnet-5-5"

// The client prices every reply once (see #12): at the reply's model, or
// at the request's when the table cannot price the reply's.
func TestReplyCost(t *testing.T) {
	sim := claudesim.New(claudesim.Config{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	body := []byte(`{"model":"` + sonnet + `","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`)
	flat := pricing.Price{Rates: pricing.Rates{Input: 1e6, Output: 1e6}} // $1 a token
	tests := []struct {
		name   string
		prices pricing.Table
		model  string // the request's Model; the body always says sonnet
		// want prices the reply's usage; nil means it costs nothing.
		want func(pricing.Tokens) float64
	}{
		{"nil table is list prices", nil, sonnet, func(n pricing.Tokens) float64 { return pricing.Default().Cost(sonnet, n) }},
		{"empty table is list prices", pricing.Table{}, sonnet, func(n pricing.Tokens) float64 { return pricing.Default().Cost(sonnet, n) }},
		{"own table", pricing.Table{sonnet: flat}, sonnet, func(n pricing.Tokens) float64 { return float64(n.Input + n.Output) }},
		{"reply's model unpriced: the request's", pricing.Table{"alias": flat}, "alias", func(n pricing.Tokens) float64 { return float64(n.Input + n.Output) }},
		{"neither priced", pricing.Table{"other": flat}, "alias", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := claude.New(claude.Config{APIKey: "test-key", BaseURL: srv.URL, Prices: tc.prices})
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Create(t.Context(), claude.Request{Model: tc.model, MaxTokens: 100, Body: body})
			if err != nil {
				t.Fatal(err)
			}
			if r.Model != sonnet || r.Usage.InputTokens == 0 {
				t.Fatalf("reply of %q with usage %+v; want %s's, with input tokens", r.Model, r.Usage, sonnet)
			}
			want := 0.0
			if tc.want != nil {
				want = tc.want(r.Usage.Tokens())
			}
			if got := r.Usage.CostUSD; math.Abs(got-want) > 1e-12 || (tc.want != nil && want == 0) {
				t.Errorf("CostUSD = %v, want %v", got, want)
			}
		})
	}
}

func TestEmptyBody(t *testing.T) {
	sim := claudesim.New(claudesim.Config{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := claude.New(claude.Config{APIKey: "test-key", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	var se *claude.StatusError
	if _, err := c.Create(t.Context(), claude.Request{Model: sonnet, MaxTokens: 1}); err == nil || errors.As(err, &se) {
		t.Errorf("empty body: err = %v; want a local error", err)
	}
	if n := sim.Stats().Requests; n != 0 {
		t.Errorf("%d requests sent for an empty body, want none", n)
	}
}

func TestUsageTokens(t *testing.T) {
	u := claude.Usage{InputTokens: 1, OutputTokens: 2, CacheCreationInputTokens: 3, CacheReadInputTokens: 4,
		CacheCreation: claude.CacheCreation{Ephemeral5mInputTokens: 1, Ephemeral1hInputTokens: 2}, CostUSD: 9}
	want := pricing.Tokens{Input: 1, Output: 2, CacheWrite: 3, CacheWrite1h: 2, CacheRead: 4}
	if diff := cmp.Diff(want, u.Tokens()); diff != "" {
		t.Errorf("Tokens (-want +got):\n%s", diff)
	}
}

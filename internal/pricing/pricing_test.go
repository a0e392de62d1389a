package pricing_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lambdagent/lambdagent/internal/pricing"
)

func TestCost(t *testing.T) {
	const m = 1_000_000
	tests := []struct {
		name  string
		model string
		usage pricing.Tokens
		want  float64
	}{
		{"sonnet 5.5 input and output", "claude-sonnet-5-5", pricing.Tokens{Input: m, Output: m}, 2 + 10},
		{"sonnet 5.5 cache read is 0.1x input", "claude-sonnet-5-5", pricing.Tokens{CacheRead: m}, 0.20},
		{"sonnet 5.5 unsplit write is 5m", "claude-sonnet-5-5", pricing.Tokens{CacheWrite: m}, 2.50},
		{"sonnet 5.5 split write", "claude-sonnet-5-5", pricing.Tokens{CacheWrite: 2 * m, CacheWrite1h: m}, 2.50 + 4},
		{"1h part above the total is cut to it", "claude-sonnet-5-5", pricing.Tokens{CacheWrite: m, CacheWrite1h: 2 * m}, 4},
		{"opus 5.5", "claude-opus-5-5", pricing.Tokens{Input: m, Output: m, CacheRead: m}, 4 + 20 + 0.20},
		{"sonnet 4.5", "claude-sonnet-4-5", pricing.Tokens{Input: m, Output: m, CacheWrite: m, CacheRead: m}, 3 + 15 + 3.75 + 0.30},
		{"dated name falls back to undated", "claude-sonnet-4-5-20250929", pricing.Tokens{Input: m}, 3},
		{"haiku 5.5 short prompt", "claude-haiku-5-5", pricing.Tokens{Input: 100_000, Output: m}, 0.01 + 0.50},
		{"haiku 5.5 long prompt bills every token higher", "claude-haiku-5-5", pricing.Tokens{Input: 50_000, CacheRead: 50_001, Output: m}, (50_000*0.50+50_001*0.05)/m + 2.50},
		{"unknown model is free", "gpt-9", pricing.Tokens{Input: m}, 0},
		{"nothing used", "claude-sonnet-5-5", pricing.Tokens{}, 0},
	}
	tab := pricing.Default()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tab.Cost(tc.model, tc.usage)
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("Cost(%s, %+v) = %v, want %v", tc.model, tc.usage, got, tc.want)
			}
		})
	}
}

// TestCacheSavings checks the claim prompt caching rests on: re-reading a
// prefix from the cache costs a tenth of sending it again.
func TestCacheSavings(t *testing.T) {
	tab := pricing.Default()
	for _, model := range []string{"claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5", "claude-sonnet-4-5"} {
		p, _ := tab.Lookup(model)
		if got := p.CacheRead / p.Input; got > 0.1+1e-9 {
			t.Errorf("%s: cache read costs %.3f× input, want ≤ 0.1×", model, got)
		}
		if p.CacheWrite5m <= p.Input || p.CacheWrite1h <= p.CacheWrite5m {
			t.Errorf("%s: want input < 5m write < 1h write, got %v", model, p.Rates)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		model   string
		want    pricing.Price
		wantErr string
	}{
		{name: "empty is default", in: "", model: "claude-sonnet-5-5", want: pricing.Default()["claude-sonnet-5-5"]},
		{name: "override", in: `{"claude-sonnet-5-5":{"input":1,"output":5,"cache_write_5m":1.5,"cache_write_1h":2,"cache_read":0.05}}`,
			model: "claude-sonnet-5-5", want: pricing.Price{Rates: pricing.Rates{Input: 1, Output: 5, CacheWrite5m: 1.5, CacheWrite1h: 2, CacheRead: 0.05}}},
		{name: "derived cache rates", in: `{"m":{"input":4,"output":8}}`,
			model: "m", want: pricing.Price{Rates: pricing.Rates{Input: 4, Output: 8, CacheWrite5m: 5, CacheWrite1h: 8, CacheRead: 0.4}}},
		{name: "explicit zero stays zero", in: `{"m":{"input":4,"output":8,"cache_read":0}}`,
			model: "m", want: pricing.Price{Rates: pricing.Rates{Input: 4, Output: 8, CacheWrite5m: 5, CacheWrite1h: 8}}},
		{name: "fallback", in: `{"*":{"input":1,"output":2}}`,
			model: "anything", want: pricing.Price{Rates: pricing.Rates{Input: 1, Output: 2, CacheWrite5m: 1.25, CacheWrite1h: 2, CacheRead: 0.1}}},
		{name: "long prompt", in: `{"m":{"input":1,"output":2,"long_prompt_tokens":10,"long_prompt":{"input":3,"output":4}}}`,
			model: "m", want: pricing.Price{Rates: pricing.Rates{Input: 1, Output: 2, CacheWrite5m: 1.25, CacheWrite1h: 2, CacheRead: 0.1},
				LongPromptTokens: 10, LongPrompt: pricing.Rates{Input: 3, Output: 4, CacheWrite5m: 3.75, CacheWrite1h: 6, CacheRead: 0.3}}},
		{name: "missing output", in: `{"m":{"input":1}}`, wantErr: "input and output are required"},
		{name: "negative", in: `{"m":{"input":1,"output":-2}}`, wantErr: "want a finite price ≥ 0"},
		{name: "derived rate overflows", in: `{"m":{"input":1e308,"output":1}}`, wantErr: "cache_write_1h is +Inf"},
		{name: "unknown field", in: `{"m":{"input":1,"output":2,"cache_hit":1}}`, wantErr: "unknown field"},
		{name: "long prompt without threshold", in: `{"m":{"input":1,"output":2,"long_prompt":{"input":1,"output":2}}}`, wantErr: "go together"},
		{name: "not an object", in: `[1]`, wantErr: "cannot unmarshal"},
		{name: "null", in: `null`, wantErr: "want a JSON object"},
		{name: "trailing data", in: `{} {}`, wantErr: "data after"},
		{name: "empty model", in: `{"":{"input":1,"output":2}}`, wantErr: "empty model"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := pricing.Parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%s) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := tab.Lookup(tc.model)
			if !ok {
				t.Fatalf("no price for %s", tc.model)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("price of %s (-want +got):\n%s", tc.model, diff)
			}
			if _, ok := tab["claude-opus-5-5"]; !ok {
				t.Error("Parse dropped the defaults")
			}
		})
	}
}

// FuzzParse checks that Parse never panics and that what it accepts
// survives a round trip through its JSON form.
func FuzzParse(f *testing.F) {
	f.Add(`{"claude-sonnet-5-5":{"input":2,"output":10}}`)
	f.Add(`{"*":{"input":1,"output":2,"long_prompt_tokens":5,"long_prompt":{"input":2,"output":3}}}`)
	f.Fuzz(func(t *testing.T, s string) {
		tab, err := pricing.Parse(s)
		if err != nil {
			return
		}
		b, err := json.Marshal(tab)
		if err != nil {
			t.Fatalf("marshal %v: %v", tab, err)
		}
		again, err := pricing.Parse(string(b))
		if err != nil {
			t.Fatalf("Parse(%s) of Parse(%q): %v", b, s, err)
		}
		if diff := cmp.Diff(tab, again); diff != "" {
			t.Errorf("round trip (-first +second):\n%s", diff)
		}
	})
}

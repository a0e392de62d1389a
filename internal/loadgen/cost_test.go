package loadgen_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lambdagent/lambdagent/internal/loadgen"
)

func TestCost(t *testing.T) {
	typical := loadgen.Figures{SecondsPerTurn: 0.5, RedisCommandsPerTurn: 2, Tokens: loadgen.Tokens{Input: 1000, Output: 200}}
	withCache := typical
	withCache.Tokens.CacheCreation, withCache.Tokens.CacheRead = 1000, 10000
	oneHour := withCache
	oneHour.CacheWrite1h = true
	tiny := loadgen.Figures{SecondsPerTurn: 0.0004, MemoryMB: 1024}
	override, err := loadgen.ParsePrices([]byte(`{"lambda":{"gb_second":0.0000166667},"redis":{"per_100k_commands":0},
		"claude":{"claude-sonnet-5-5":{"input":3,"output":15}}}`))
	if err != nil {
		t.Fatal(err)
	}
	type sums struct{ Lambda, Redis, Claude, Total float64 }
	tests := []struct {
		name   string
		f      loadgen.Figures
		prices loadgen.Prices
		want   sums
	}{
		// 100,000 × 0.5 s × 0.125 GB = 6,250 GB-s at $0.0000133334, plus
		// $0.02 of requests; 200,000 commands at $0.2/100K; 100M input
		// tokens at $2/MTok and 20M output at $10/MTok.
		{"typical", typical, loadgen.DefaultPrices(), sums{0.08333375 + 0.02, 0.4, 200 + 200, 400.50333375}},
		// + 100M cache-write tokens at $2.50 and 1G cache-read at $0.20.
		{"cache 5m", withCache, loadgen.DefaultPrices(), sums{0.10333375, 0.4, 400 + 250 + 200, 850.50333375}},
		{"cache 1h", oneHour, loadgen.DefaultPrices(), sums{0.10333375, 0.4, 400 + 400 + 200, 1000.50333375}},
		// Lambda bills at least 1 ms: 100,000 × 0.001 s × 1 GB.
		{"rounded up to the millisecond", tiny, loadgen.DefaultPrices(), sums{100*0.0000133334 + 0.02, 0, 0, 100*0.0000133334 + 0.02}},
		// Cache rates left out of the override derive from its input
		// price: 1.25× and 0.1×.
		{"overridden prices", withCache, override, sums{6250*0.0000166667 + 0.02, 0, 300 + 300 + 375 + 300, 6250*0.0000166667 + 0.02 + 1275}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := loadgen.Cost(tc.f, tc.prices, 100_000)
			if err != nil {
				t.Fatal(err)
			}
			got := sums{r.Lambda, r.Redis, r.Claude, r.Total}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateApprox(1e-9, 1e-9)); diff != "" {
				t.Errorf("cost of 100K turns (-want +got):\n%s", diff)
			}
			var b strings.Builder
			if err := r.WriteText(&b); err != nil || !strings.Contains(b.String(), "total") || !strings.Contains(b.String(), "100,000 turns") {
				t.Errorf("text report (err %v):\n%s", err, b.String())
			}
		})
	}
}

func TestCostErrors(t *testing.T) {
	if _, err := loadgen.Cost(loadgen.Figures{Model: "claude-unknown-1"}, loadgen.DefaultPrices(), 1); !errors.Is(err, loadgen.ErrUnknownModel) {
		t.Errorf("unknown model: err = %v, want ErrUnknownModel", err)
	}
	if _, err := loadgen.Cost(loadgen.Figures{SecondsPerTurn: -1}, loadgen.DefaultPrices(), 1); !errors.Is(err, loadgen.ErrBadConfig) {
		t.Errorf("negative seconds: err = %v, want ErrBadConfig", err)
	}
	for _, bad := range []string{`{"lambda":{"gb_second":-1}}`, `{"lamda":{}}`, `{"claude":{"x":{"input":1}}}`, `[`} {
		if _, err := loadgen.ParsePrices([]byte(bad)); err == nil {
			t.Errorf("ParsePrices(%s) accepted", bad)
		}
	}
}

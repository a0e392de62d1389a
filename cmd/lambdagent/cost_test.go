package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/loadgen"
)

func TestCostCommand(t *testing.T) {
	dir := t.TempDir()
	prices := filepath.Join(dir, "prices.json")
	if err := os.WriteFile(prices, []byte(`{"lambda":{"gb_second":0.0000166667},"claude":{"claude-sonnet-5-5":{"input":3,"output":15}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "run.json")
	b, _ := json.Marshal(loadgen.Report{Turns: 10, Latency: loadgen.Summary{Mean: 500}, ModelCallsPerTurn: 1,
		TokensPerTurn: loadgen.Tokens{Input: 1000, Output: 200}})
	if err := os.WriteFile(report, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// 100K turns of 0.5 s at 128 MB, 2 Redis commands, 1,000 input and
	// 200 output tokens: see internal/loadgen's TestCost.
	const typical = 400.50333375
	tests := []struct {
		name  string
		args  []string
		total float64
	}{
		{"flags", []string{"-seconds-per-turn", "0.5", "-input-tokens", "1000", "-output-tokens", "200"}, typical},
		{"report", []string{"-report", report}, typical},
		{"report with a flag over it", []string{"-report", report, "-output-tokens", "0"}, typical - 200},
		{"more memory, no Redis", []string{"-report", report, "-memory", "1024", "-redis-commands", "0"}, typical - 0.4 + 7*6250*0.0000133334},
		{"prices file", []string{"-report", report, "-prices", prices}, 6250*0.0000166667 + 0.02 + 0.4 + 300 + 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(context.Background(), append([]string{"cost", "-json"}, tc.args...), func(string) string { return "" }, &out, &out); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			var r loadgen.CostReport
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if math.Abs(r.Total-tc.total) > 1e-6 {
				t.Errorf("total $%.8f, want $%.8f\n%s", r.Total, tc.total, out.String())
			}
		})
	}

	var out bytes.Buffer
	if err := run(context.Background(), []string{"cost", "-seconds-per-turn", "5"}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cost of 100,000 turns (model claude-sonnet-5-5, Lambda 128 MB, 5.000 s per turn)", "62,500 GB-s", "seed article claims $0.08"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"cost", "-print-prices", "-prices", prices}, func(string) string { return "" }, &out, &out); err != nil {
		t.Fatal(err)
	}
	var p struct {
		Lambda map[string]float64
		Claude map[string]struct{ Input float64 }
	}
	if err := json.Unmarshal(out.Bytes(), &p); err != nil || p.Lambda["gb_second"] != 0.0000166667 || p.Claude["claude-sonnet-5-5"].Input != 3 {
		t.Errorf("-print-prices (err %v):\n%s", err, out.String())
	}
}

func TestCostErrors(t *testing.T) {
	for _, args := range [][]string{
		{"cost", "-model", "claude-unknown"},
		{"cost", "-report", "/nonexistent.json"},
		{"cost", "-prices", "/nonexistent.json"},
		{"cost", "-seconds-per-turn", "-1"},
		{"cost", "extra"},
	} {
		var out bytes.Buffer
		if err := run(context.Background(), args, func(string) string { return "" }, &out, &out); err == nil {
			t.Errorf("%v: no error; output:\n%s", args, out.String())
		}
	}
}

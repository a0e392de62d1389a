package telemetry

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseXRay(t *testing.T) {
	tests := []struct {
		h      string
		ok     bool
		trace  string
		parent string
	}{
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", true, "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8"},
		{" Sampled=1 ; Parent=53995c3f42cd8ad8 ; Root=1-5759e988-bd862e3fe1be46a994272793 ; Lineage=a:1", true, "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8"},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0", false, "", ""},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1", false, "", ""},
		{"Root=1-5759e988-bd862e3fe1be46a99427279Z;Parent=53995c3f42cd8ad8;Sampled=1", false, "", ""},
		{"Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8;Sampled=1", false, "", ""},
		{"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000;Sampled=1", false, "", ""},
		{"", false, "", ""},
		{"garbage", false, "", ""},
	}
	for _, tc := range tests {
		sc, ok := parseXRay(tc.h)
		if ok != tc.ok {
			t.Errorf("parseXRay(%q) ok = %v, want %v", tc.h, ok, tc.ok)
			continue
		}
		if ok && (sc.TraceID().String() != tc.trace || sc.SpanID().String() != tc.parent || !sc.IsSampled() || !sc.IsRemote()) {
			t.Errorf("parseXRay(%q) = %v", tc.h, sc)
		}
	}
}

func FuzzParseXRay(f *testing.F) {
	f.Add("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	f.Add("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?")
	f.Add(";;;=;Root=;Parent")
	f.Fuzz(func(t *testing.T, h string) {
		sc, ok := parseXRay(h)
		if ok && (!sc.IsValid() || !sc.IsSampled() || !sc.IsRemote()) {
			t.Errorf("parseXRay(%q) accepted an invalid or unsampled context %v", h, sc)
		}
		if ok && !strings.Contains(h, sc.SpanID().String()) {
			t.Errorf("parseXRay(%q) invented parent %s", h, sc.SpanID())
		}
	})
}

func TestAppendEMFEscapes(t *testing.T) {
	b := appendEMF(nil, "ns", time.UnixMilli(1700000000123), []emfDirective{{
		dims:    [][]string{{"Function", "Model"}},
		metrics: []emfMetric{{name: "A", unit: "Count", value: 1.5}, {name: "B", unit: "Milliseconds", values: []float64{1, 2, 3}}},
	}}, []emfProp{{"Function", "f\"n\\\x01\xff"}, {"Model", "m"}})
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if v["Function"] != "f\"n\\\x01\ufffd" || v["A"] != 1.5 || fmt.Sprint(v["B"]) != "[1 2 3]" {
		t.Errorf("decoded %v", v)
	}
	if !strings.HasPrefix(string(b), `{"_aws":{"Timestamp":1700000000123,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[["Function","Model"]],"Metrics":[{"Name":"A","Unit":"Count"},{"Name":"B","Unit":"Milliseconds"}]}]}`) {
		t.Errorf("record %s", b)
	}
	vals := make([]float64, 150)
	b = appendEMF(nil, "ns", time.Now(), []emfDirective{{dims: [][]string{{}}, metrics: []emfMetric{{name: "Many", unit: "Count", values: vals}}}}, nil)
	if err := json.Unmarshal(b, &v); err != nil || len(v["Many"].([]any)) != emfMaxValues {
		t.Errorf("values not capped at %d: %v", emfMaxValues, err)
	}
	for in, want := range map[string]string{"": "def", "   ": "def", "ok-1": "ok-1", "caf\xc3\xa9": "caf__", strings.Repeat("x", 2000): strings.Repeat("x", 1024)} {
		if got := dimValue(in, "def"); got != want {
			t.Errorf("dimValue(%.20q) = %.20q, want %.20q", in, got, want)
		}
	}
}

func TestCamel(t *testing.T) {
	for in, want := range map[string]string{"rate_limit_waits": "RateLimitWaits", "tenant": "Tenant", "a__b": "AB", "x1_y": "X1Y"} {
		if got := camel(in); got != want {
			t.Errorf("camel(%q) = %q, want %q", in, got, want)
		}
	}
}

package telemetry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// emfUnits are the units the EMF specification allows: CloudWatch's
// MetricDatum units.
var emfUnits = map[string]bool{
	"Seconds": true, "Microseconds": true, "Milliseconds": true,
	"Bytes": true, "Kilobytes": true, "Megabytes": true, "Gigabytes": true, "Terabytes": true,
	"Bits": true, "Kilobits": true, "Megabits": true, "Gigabits": true, "Terabits": true,
	"Percent": true, "Count": true,
	"Bytes/Second": true, "Kilobytes/Second": true, "Megabytes/Second": true, "Gigabytes/Second": true, "Terabytes/Second": true,
	"Bits/Second": true, "Kilobits/Second": true, "Megabits/Second": true, "Gigabits/Second": true, "Terabits/Second": true,
	"Count/Second": true, "None": true,
}

var emfNamespace = regexp.MustCompile(`^[a-zA-Z0-9._#:/-]{1,255}$`)

// checkEMF checks one log line against the CloudWatch Embedded Metric
// Format specification and the limits CloudWatch enforces on it, and
// returns the metric values by name. Our records add nothing optional to
// the _aws object, so any other member there is reported too.
func checkEMF(line []byte, now time.Time) (map[string][]float64, error) {
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		return nil, fmt.Errorf("a record must be one line ending in a newline")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var root map[string]any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("root is not a JSON object: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the root object")
	}
	aws, ok := root["_aws"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("_aws is missing or not an object")
	}
	for k := range aws {
		if k != "Timestamp" && k != "CloudWatchMetrics" {
			return nil, fmt.Errorf("_aws has an unexpected member %q", k)
		}
	}
	tsn, ok := aws["Timestamp"].(json.Number)
	if !ok {
		return nil, fmt.Errorf("_aws.Timestamp is missing or not a number")
	}
	ts, err := tsn.Int64()
	if err != nil {
		return nil, fmt.Errorf("_aws.Timestamp %s is not whole milliseconds", tsn)
	}
	if at := time.UnixMilli(ts); at.Before(now.Add(-14*24*time.Hour)) || at.After(now.Add(2*time.Hour)) {
		return nil, fmt.Errorf("_aws.Timestamp %v is outside [now-14d, now+2h]: CloudWatch would drop it", at)
	}
	dirs, ok := aws["CloudWatchMetrics"].([]any)
	if !ok || len(dirs) == 0 {
		return nil, fmt.Errorf("_aws.CloudWatchMetrics is missing, empty or not an array")
	}
	values := map[string][]float64{}
	dimNames := map[string]bool{}
	for i, d := range dirs {
		dir, ok := d.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("directive %d is not an object", i)
		}
		for k := range dir {
			if k != "Namespace" && k != "Dimensions" && k != "Metrics" {
				return nil, fmt.Errorf("directive %d has an unknown member %q", i, k)
			}
		}
		ns, _ := dir["Namespace"].(string)
		if !emfNamespace.MatchString(ns) {
			return nil, fmt.Errorf("directive %d: Namespace %q is not 1-255 of [a-zA-Z0-9._#:/-]", i, ns)
		}
		sets, ok := dir["Dimensions"].([]any)
		if !ok {
			return nil, fmt.Errorf("directive %d: Dimensions is missing or not an array", i)
		}
		for j, s := range sets {
			set, ok := s.([]any)
			if !ok {
				return nil, fmt.Errorf("directive %d: DimensionSet %d is not an array", i, j)
			}
			if len(set) > 30 {
				return nil, fmt.Errorf("directive %d: DimensionSet %d has %d dimensions, more than 30", i, j, len(set))
			}
			for _, n := range set {
				name, ok := n.(string)
				if !ok || name == "" || len(name) > 250 || strings.HasPrefix(name, ":") || !ascii(name) {
					return nil, fmt.Errorf("directive %d: bad dimension name %v", i, n)
				}
				v, ok := root[name].(string)
				if !ok {
					return nil, fmt.Errorf("dimension %q has no string member at the root", name)
				}
				if strings.TrimSpace(v) == "" || len(v) > 1024 || !ascii(v) {
					return nil, fmt.Errorf("dimension %q has a bad value %q", name, v)
				}
				dimNames[name] = true
			}
		}
		ms, ok := dir["Metrics"].([]any)
		if !ok || len(ms) == 0 || len(ms) > 100 {
			return nil, fmt.Errorf("directive %d: Metrics is missing, empty or longer than 100", i)
		}
		for _, m := range ms {
			def, ok := m.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("directive %d: a MetricDefinition is not an object", i)
			}
			for k := range def {
				if k != "Name" && k != "Unit" && k != "StorageResolution" {
					return nil, fmt.Errorf("MetricDefinition has an unknown member %q", k)
				}
			}
			name, ok := def["Name"].(string)
			if !ok || strings.TrimSpace(name) == "" || len(name) > 1024 {
				return nil, fmt.Errorf("directive %d: bad metric Name %v", i, def["Name"])
			}
			if u, ok := def["Unit"]; ok {
				if s, _ := u.(string); !emfUnits[s] {
					return nil, fmt.Errorf("metric %s: Unit %v is not one of the allowed units", name, u)
				}
			}
			if r, ok := def["StorageResolution"]; ok && r != json.Number("1") && r != json.Number("60") {
				return nil, fmt.Errorf("metric %s: StorageResolution %v is not 1 or 60", name, r)
			}
			if _, dup := values[name]; dup {
				return nil, fmt.Errorf("metric %s is defined twice", name)
			}
			vs, err := metricValues(root[name])
			if err != nil {
				return nil, fmt.Errorf("metric %s: %v", name, err)
			}
			values[name] = vs
		}
	}
	for name := range values {
		if dimNames[name] {
			return nil, fmt.Errorf("%s is both a dimension and a metric", name)
		}
	}
	return values, nil
}

// metricValues reads a metric's target member: a number or an array of 1
// to 100 numbers.
func metricValues(v any) ([]float64, error) {
	num := func(x any) (float64, error) {
		n, ok := x.(json.Number)
		if !ok {
			return 0, fmt.Errorf("value %v is not a number", x)
		}
		f, err := n.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, fmt.Errorf("value %v is not a finite number", n)
		}
		return f, nil
	}
	if arr, ok := v.([]any); ok {
		if len(arr) == 0 || len(arr) > 100 {
			return nil, fmt.Errorf("%d values; want 1 to 100", len(arr))
		}
		out := make([]float64, len(arr))
		for i, x := range arr {
			f, err := num(x)
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
		return out, nil
	}
	if v == nil {
		return nil, fmt.Errorf("no member at the root")
	}
	f, err := num(v)
	return []float64{f}, err
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func emfRecords(t *testing.T, f *fixture) ([][]byte, []map[string]any) {
	t.Helper()
	raw := f.emf.String()
	var lines [][]byte
	for _, l := range strings.SplitAfter(raw, "\n") {
		if l != "" {
			lines = append(lines, []byte(l))
		}
	}
	return lines, f.emf.lines(t)
}

// The EMF records of real turns: a tool loop, a replay and a failure, each
// checked against the specification and against what the turn did.
func TestEMFOfRealTurns(t *testing.T) {
	tests := []struct {
		name   string
		sim    claudesim.Config
		msg    string
		repeat bool // send the same Idempotency-Key twice
		want   map[string]any
		// wantValues are exact metric values; ModelDuration and
		// StoreDuration are checked by their number of values.
		wantValues     map[string][]float64
		wantModelDurs  int
		wantStoreDurs  int
		wantErrorKind  string
		wantCostNonNil bool
	}{
		{
			name:          "tool loop",
			msg:           `please [[tool add {"a":1,"b":2}]] and [[tool time]]`,
			want:          map[string]any{"Function": "agent-fn", "Model": "claude-sonnet-5-5", "Outcome": "ok"},
			wantValues:    map[string][]float64{"Turns": {1}, "ModelCalls": {2}, "ToolCalls": {2}, "Retries": {0}},
			wantModelDurs: 2, wantStoreDurs: 2, wantCostNonNil: true,
		},
		{
			name: "upstream failure",
			sim:  claudesim.Config{Rate500: 1},
			msg:  "hello",
			want: map[string]any{"Function": "agent-fn", "Model": "claude-sonnet-5-5", "Outcome": "error", "ErrorKind": "upstream_error"},
			// Retries are not checked: claude.Client reports its attempts
			// on a reply only, so a failed call's retries are unknown.
			wantValues:    map[string][]float64{"Turns": {1}, "ModelCalls": {1}, "ToolCalls": {0}, "Errors": {1}, "InputTokens": {0}},
			wantModelDurs: 1, wantStoreDurs: 2, wantErrorKind: "upstream_error",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureConfig{
				tel: telemetry.Config{Function: "agent-fn", Model: "claude-sonnet-5-5"},
				sim: tc.sim,
			})
			code, body := f.post(t, "s1", tc.msg, nil)
			lines, recs := emfRecords(t, f)
			if len(lines) != 1 {
				t.Fatalf("%d EMF records after one turn (status %d), want 1:\n%s", len(lines), code, f.emf.String())
			}
			values, err := checkEMF(lines[0], time.Now())
			if err != nil {
				t.Fatalf("EMF record breaks the specification: %v\n%s", err, lines[0])
			}
			rec := recs[0]
			for k, v := range tc.want {
				if rec[k] != v {
					t.Errorf("record[%q] = %v, want %v", k, rec[k], v)
				}
			}
			for name, want := range tc.wantValues {
				if diff := cmp.Diff(want, values[name]); diff != "" {
					t.Errorf("metric %s (-want +got):\n%s", name, diff)
				}
			}
			if n := len(values["ModelDuration"]); n != tc.wantModelDurs {
				t.Errorf("ModelDuration has %d values, want one per model call (%d)", n, tc.wantModelDurs)
			}
			// Begin, then commit or release; a tool loop may checkpoint and
			// save tool results in between (see #8).
			if n := len(values["StoreDuration"]); n < tc.wantStoreDurs {
				t.Errorf("StoreDuration has %d values, want at least %d (begin, then commit or release)", n, tc.wantStoreDurs)
			}
			if code == 200 {
				r := decodeResult(t, body)
				if got := values["InputTokens"]; len(got) != 1 || got[0] != float64(r.Usage.InputTokens) || r.Usage.InputTokens == 0 {
					t.Errorf("InputTokens %v, want the turn's %d", got, r.Usage.InputTokens)
				}
				if got := values["OutputTokens"]; len(got) != 1 || got[0] != float64(r.Usage.OutputTokens) {
					t.Errorf("OutputTokens %v, want the turn's %d", got, r.Usage.OutputTokens)
				}
				// The client priced each reply; the record sums those.
				if got, want := values["Cost"], r.Usage.CostUSD; len(got) != 1 || want == 0 || math.Abs(got[0]-want) > 1e-12 {
					t.Errorf("Cost %v, want the turn's %v", got, want)
				}
			}
			if td := values["TurnDuration"]; len(td) != 1 || td[0] <= 0 {
				t.Errorf("TurnDuration %v, want one positive value", td)
			}
			// Dimension sets: the turn's under [Function Model], errors
			// under [Function ErrorKind].
			dirs := rec["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)
			var gotDims []string
			for _, d := range dirs {
				gotDims = append(gotDims, fmt.Sprint(d.(map[string]any)["Dimensions"]))
			}
			wantDims := []string{"[[Function Model]]"}
			if tc.wantErrorKind != "" {
				wantDims = append(wantDims, "[[Function ErrorKind]]")
			}
			if diff := cmp.Diff(wantDims, gotDims); diff != "" {
				t.Errorf("dimension sets (-want +got):\n%s", diff)
			}
		})
	}
}

// A replayed turn spent nothing: its record says so. Counts and the
// tenant dimension set come out valid too.
func TestEMFReplayTenantAndCount(t *testing.T) {
	f := newFixture(t, fixtureConfig{tel: telemetry.Config{TenantLabel: true, Namespace: "Acme/Agents"}})
	h := map[string][]string{"Idempotency-Key": {"k1"}}
	if code, body := f.post(t, "s1", "hi", h); code != 200 {
		t.Fatalf("first: %d %s", code, body)
	}
	if code, body := f.post(t, "s1", "hi", h); code != 200 {
		t.Fatalf("repeat: %d %s", code, body)
	}
	f.tel.Count(telemetry.RateLimitWaits, 2, "model", "claude-sonnet-5-5")
	f.tel.Count(telemetry.ConcurrencyRejections, 1)
	lines, recs := emfRecords(t, f)
	if len(lines) != 4 {
		t.Fatalf("%d records, want 4 (two turns, two counts):\n%s", len(lines), f.emf.String())
	}
	var all []map[string][]float64
	for i, l := range lines {
		v, err := checkEMF(l, time.Now())
		if err != nil {
			t.Fatalf("record %d breaks the specification: %v\n%s", i, err, l)
		}
		all = append(all, v)
	}
	replay := recs[1]
	if replay["Outcome"] != "replayed" || replay["Tenant"] != "default" || replay["Model"] != "unknown" {
		t.Errorf("replay record: Outcome %v Tenant %v Model %v; want replayed, default, unknown", replay["Outcome"], replay["Tenant"], replay["Model"])
	}
	if all[1]["ModelCalls"][0] != 0 || all[1]["InputTokens"][0] != 0 || all[1]["ModelDuration"] != nil {
		t.Errorf("replay record counts model work: %v", all[1])
	}
	dims := recs[0]["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)["Dimensions"]
	if got := fmt.Sprint(dims); got != "[[Function Model] [Function Tenant]]" {
		t.Errorf("dimension sets with TenantLabel: %s", got)
	}
	if ns := recs[0]["_aws"].(map[string]any)["CloudWatchMetrics"].([]any)[0].(map[string]any)["Namespace"]; ns != "Acme/Agents" {
		t.Errorf("Namespace %v", ns)
	}
	if got := all[2]["RateLimitWaits"]; len(got) != 1 || got[0] != 2 || recs[2]["Model"] != "claude-sonnet-5-5" || recs[2]["Function"] != "lambdagent" {
		t.Errorf("Count record: %v / %v", all[2], recs[2])
	}
	if got := all[3]["ConcurrencyRejections"]; len(got) != 1 || got[0] != 1 {
		t.Errorf("Count record without labels: %v", all[3])
	}
}

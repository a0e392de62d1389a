package telemetry_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*\})? (\S+)$`)
	typeLine   = regexp.MustCompile(`^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|histogram)$`)
	helpLine   = regexp.MustCompile(`^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*$`)
	leLabel    = regexp.MustCompile(`,?le="([^"]*)"`)
)

// scrape GETs /metrics and parses the Prometheus text format, strictly
// enough to catch our mistakes: every sample belongs to a family TYPEd
// before it, and a histogram's buckets are cumulative and end in +Inf
// equal to its _count. It returns the samples by `name{labels}` as written.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	samples := map[string]float64{}
	types := map[string]string{}
	type hist struct {
		last  float64
		inf   float64
		count float64
		seen  bool
	}
	hists := map[string]*hist{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if m := typeLine.FindStringSubmatch(line); m != nil {
			if _, dup := types[m[1]]; dup {
				t.Errorf("family %s TYPEd twice", m[1])
			}
			types[m[1]] = m[2]
			continue
		}
		if helpLine.MatchString(line) {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a valid exposition line: %q", line)
			continue
		}
		name, labels, val := m[1], m[2], m[3]
		v, err := strconv.ParseFloat(strings.Replace(val, "+Inf", "Inf", 1), 64)
		if err != nil {
			t.Errorf("bad value in %q", line)
		}
		if _, dup := samples[name+labels]; dup {
			t.Errorf("sample %s%s written twice", name, labels)
		}
		samples[name+labels] = v
		fam := name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suf); ok && types[base] == "histogram" {
				fam = base
			}
		}
		if types[fam] == "" {
			t.Errorf("sample %s before its TYPE line", name)
		}
		if types[fam] != "histogram" {
			continue
		}
		series := leLabel.ReplaceAllString(labels, "")
		series = strings.Replace(series, "{,", "{", 1)
		if series == "{}" {
			series = ""
		}
		hk := fam + series
		if hists[hk] == nil {
			hists[hk] = &hist{}
		}
		hs := hists[hk]
		switch {
		case strings.HasSuffix(name, "_bucket"):
			if v < hs.last {
				t.Errorf("%s: bucket counts not cumulative at %s", hk, labels)
			}
			hs.last = v
			if strings.Contains(labels, `le="+Inf"`) {
				hs.inf, hs.seen = v, true
			}
		case strings.HasSuffix(name, "_count"):
			hs.count = v
		}
	}
	for k, hs := range hists {
		if !hs.seen || hs.inf != hs.count {
			t.Errorf("%s: +Inf bucket %v (seen %v) differs from _count %v", k, hs.inf, hs.seen, hs.count)
		}
	}
	return samples
}

// moved returns how much each wanted sample grew between two scrapes.
func moved(before, after map[string]float64, keys []string) map[string]float64 {
	out := map[string]float64{}
	for _, k := range keys {
		out[k] = after[k] - before[k]
	}
	return out
}

// After N turns through the HTTP API, the counters have moved by exactly
// N (and the token counters by exactly the tokens the answers report).
func TestMetricsAfterTurns(t *testing.T) {
	const n = 3
	f := newFixture(t, fixtureConfig{tel: telemetry.Config{Prometheus: true}})
	if code, body := f.post(t, "warmup", "hi", nil); code != 200 { // so every series exists
		t.Fatalf("warm-up turn: %d %s", code, body)
	}
	const m = `model="claude-sonnet-5-5"`
	keys := []string{
		`lambdagent_turns_total{` + m + `,outcome="ok"}`,
		`lambdagent_turn_duration_seconds_count{` + m + `,outcome="ok"}`,
		`lambdagent_model_calls_total{` + m + `}`,
		`lambdagent_model_duration_seconds_count{` + m + `}`,
		`lambdagent_store_duration_seconds_count{op="begin"}`,
		`lambdagent_store_duration_seconds_count{op="commit"}`,
		`lambdagent_tokens_total{` + m + `,kind="input"}`,
		`lambdagent_tokens_total{` + m + `,kind="output"}`,
		`lambdagent_rate_limit_waits_total`,
	}
	before := scrape(t, f.handler)
	var in, out float64
	for i := range n {
		code, body := f.post(t, fmt.Sprintf("s%d", i), "hello", nil)
		if code != 200 {
			t.Fatalf("turn %d: %d %s", i, code, body)
		}
		r := decodeResult(t, body)
		in, out = in+float64(r.Usage.InputTokens), out+float64(r.Usage.OutputTokens)
		f.tel.Count(telemetry.RateLimitWaits, 1)
	}
	after := scrape(t, f.handler)
	want := map[string]float64{
		keys[0]: n, keys[1]: n, keys[2]: n, keys[3]: n, keys[4]: n, keys[5]: n,
		keys[6]: in, keys[7]: out, keys[8]: n,
	}
	if diff := cmp.Diff(want, moved(before, after, keys)); diff != "" {
		t.Errorf("counters moved (-want +got):\n%s", diff)
	}
	if in == 0 || out == 0 {
		t.Errorf("the turns reported no tokens (in %v, out %v)", in, out)
	}

	// A replay is a turn, with no model call.
	h := map[string][]string{"Idempotency-Key": {"once"}}
	f.post(t, "r1", "hello", h)
	before = scrape(t, f.handler)
	if code, _ := f.post(t, "r1", "hello", h); code != 200 {
		t.Fatalf("replay: %d", code)
	}
	after = scrape(t, f.handler)
	keys = []string{`lambdagent_turns_total{model="unknown",outcome="replayed"}`, keys[2], keys[4]}
	want = map[string]float64{keys[0]: 1, keys[1]: 0, keys[2]: 1}
	if diff := cmp.Diff(want, moved(before, after, keys)); diff != "" {
		t.Errorf("after a replay, counters moved (-want +got):\n%s", diff)
	}
}

// Failed turns count by kind; tool calls and retries count too.
func TestMetricsErrorsToolsRetries(t *testing.T) {
	tests := []struct {
		name string
		sim  claudesim.Config
		msg  string
		want map[string]float64
	}{
		{
			name: "rate limited",
			sim:  claudesim.Config{Rate429: 1, InjectedRetryAfter: 1},
			msg:  "hi",
			want: map[string]float64{
				`lambdagent_errors_total{kind="rate_limited"}`:                                      1,
				`lambdagent_turns_total{model="claude-sonnet-5-5",outcome="error"}`:                 1,
				`lambdagent_store_duration_seconds_count{op="release"}`:                             1,
				`lambdagent_tool_calls_total`:                                                       0,
				`lambdagent_turn_duration_seconds_count{model="claude-sonnet-5-5",outcome="error"}`: 1,
			},
		},
		{
			name: "tool loop",
			msg:  `[[tool add {"a":1}]] [[tool time]] [[tool time]]`,
			want: map[string]float64{
				`lambdagent_errors_total{kind="rate_limited"}`:                   0,
				`lambdagent_turns_total{model="claude-sonnet-5-5",outcome="ok"}`: 1,
				`lambdagent_model_calls_total{model="claude-sonnet-5-5"}`:        2,
				`lambdagent_tool_calls_total`:                                    3,
				`lambdagent_model_retries_total{model="claude-sonnet-5-5"}`:      0,
				`lambdagent_store_duration_seconds_count{op="begin"}`:            1,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, fixtureConfig{tel: telemetry.Config{Prometheus: true}, sim: tc.sim})
			f.post(t, "s1", tc.msg, nil)
			got := scrape(t, f.handler)
			for k := range tc.want {
				if _, ok := got[k]; !ok && tc.want[k] != 0 {
					t.Errorf("no sample %s", k)
				}
			}
			keys := make([]string, 0, len(tc.want))
			for k := range tc.want {
				keys = append(keys, k)
			}
			if diff := cmp.Diff(tc.want, moved(map[string]float64{}, got, keys)); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
		})
	}
}

// Retries of a call that succeeded in the end are counted from the reply.
func TestMetricsRetries(t *testing.T) {
	// One in two requests fails with 529 (seeded, reproducible); with
	// three attempts a turn nearly always succeeds after some retries.
	f := newFixture(t, fixtureConfig{tel: telemetry.Config{Prometheus: true}, sim: claudesim.Config{Rate529: 0.5, Seed: 7}})
	var ok int
	for i := range 6 {
		if code, _ := f.post(t, fmt.Sprintf("s%d", i), "hi", nil); code == 200 {
			ok++
		}
	}
	got := scrape(t, f.handler)
	attempts := float64(len(f.sim.Requests()))
	calls := got[`lambdagent_model_calls_total{model="claude-sonnet-5-5"}`]
	retries := got[`lambdagent_model_retries_total{model="claude-sonnet-5-5"}`]
	if ok == 0 || retries == 0 {
		t.Fatalf("%d turns succeeded with %v retries; the seed should give some of both", ok, retries)
	}
	// Every request the simulator saw is a first attempt or a retry, but
	// retries of calls that failed in the end are not known (see
	// attempter), so the count is at most the difference.
	if retries > attempts-calls {
		t.Errorf("%v retries counted, more than the %v requests beyond the %v calls", retries, attempts, calls)
	}
	lines := f.turnLines(t)
	var logged float64
	for _, l := range lines {
		logged += l["retries"].(float64)
	}
	if logged != retries {
		t.Errorf("log lines report %v retries, metrics %v", logged, retries)
	}
}

func TestMetricsOff(t *testing.T) {
	tel, err := telemetry.New(telemetry.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []*telemetry.Telemetry{tel, nil} {
		rec := httptest.NewRecorder()
		tt.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("metrics off: status %d, want 404", rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/metrics", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: status %d, want 405", rec.Code)
	}
}

// Label values are escaped; Count labels are one series whatever their
// order; bad names are dropped.
func TestCount(t *testing.T) {
	logs := &lockedBuffer{}
	tel, err := telemetry.New(telemetry.Config{Prometheus: true, Logger: newJSONLogger(logs)})
	if err != nil {
		t.Fatal(err)
	}
	tel.Count("rejections", 1, "tenant", "a\"b\\c\nd", "reason", "queue")
	tel.Count("rejections", 2, "reason", "queue", "tenant", "a\"b\\c\nd")
	tel.Count("Bad-Name", 1)
	tel.Count("odd_labels", 1, "tenant")
	tel.Count("reserved", 1, "function", "x")
	tel.Count("turns", 1)
	tel.Count("same", 1, "a_b", "x", "a__b", "y")
	got := scrape(t, tel.MetricsHandler())
	if v := got[`lambdagent_rejections_total{reason="queue",tenant="a\"b\\c\nd"}`]; v != 3 {
		t.Errorf("rejections = %v, want 3; samples: %v", v, got)
	}
	for k := range got {
		if strings.Contains(k, "Bad") || strings.Contains(k, "odd_labels") || strings.Contains(k, "reserved") || strings.Contains(k, "same") || strings.HasPrefix(k, "lambdagent_turns_total") {
			t.Errorf("bad Count kept: %s", k)
		}
	}
	if n := strings.Count(logs.String(), "Count dropped"); n != 5 {
		t.Errorf("%d warnings for 5 bad Counts:\n%s", n, logs.String())
	}
	tel.Count("Bad-Name", 1) // warned once only
	if n := strings.Count(logs.String(), "Count dropped"); n != 5 {
		t.Errorf("a repeated bad Count warned again")
	}
}

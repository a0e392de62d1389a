package telemetry

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// Metric families of the Prometheus export. Each is documented by its HELP
// line in defineFamilies.
const (
	mTurns         = "lambdagent_turns_total"
	mTurnDuration  = "lambdagent_turn_duration_seconds"
	mErrors        = "lambdagent_errors_total"
	mModelCalls    = "lambdagent_model_calls_total"
	mModelDuration = "lambdagent_model_duration_seconds"
	mModelRetries  = "lambdagent_model_retries_total"
	mTokens        = "lambdagent_tokens_total"
	mCost          = "lambdagent_cost_usd_total"
	mStoreDuration = "lambdagent_store_duration_seconds"
	mToolCalls     = "lambdagent_tool_calls_total"
	// mInputTransformations counts the entries of replies'
	// input_transformations (see #14).
	mInputTransformations = "lambdagent_input_transformations_total"
)

// Names for [Telemetry.Count] that lambdagent's own packages use.
const (
	// RateLimitWaits counts turns that waited for a client-side rate
	// limit before calling the model.
	RateLimitWaits = "rate_limit_waits"
	// ConcurrencyRejections counts requests turned away because too many
	// turns were in flight.
	ConcurrencyRejections = "concurrency_rejections"
)

var (
	// Turns and model calls last from tens of milliseconds (the simulator)
	// to minutes (long answers, tool loops).
	durationBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320}
	// A store call is one round trip to Redis or a local file.
	storeBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
)

func defineFamilies(r *registry) {
	r.define(mTurns, "Turns finished, by outcome: ok, replayed (an idempotent repeat) or error.", counter, nil)
	r.define(mTurnDuration, "Turn duration in seconds, from the request to the answer (store, model and tools included).", histogram, durationBuckets)
	r.define(mErrors, "Failed turns, by error kind (the HTTP API's error type).", counter, nil)
	r.define(mModelCalls, "Messages API calls, by model.", counter, nil)
	r.define(mModelDuration, "Messages API call duration in seconds, retries and their waits included.", histogram, durationBuckets)
	r.define(mModelRetries, "Messages API requests sent again after a transient failure.", counter, nil)
	r.define(mTokens, "Tokens, by model and kind: input, output, cache_read, cache_write.", counter, nil)
	r.define(mCost, "Cost of model calls in US dollars, by model.", counter, nil)
	r.define(mStoreDuration, "Session store call duration in seconds, by operation.", histogram, storeBuckets)
	r.define(mToolCalls, "Tool calls run for Claude.", counter, nil)
	r.define(mInputTransformations, "Changes the API made to requests before the model read them (input_transformations: thinking blocks dropped under drop_block), by model, type and reason.", counter, nil)
	r.define(promCountName(RateLimitWaits), "Turns that waited for a client-side rate limit.", counter, nil)
	r.define(promCountName(ConcurrencyRejections), "Requests rejected because too many turns were in flight.", counter, nil)
}

type metricType uint8

const (
	counter metricType = iota
	histogram
)

// A registry keeps counters and histograms in memory for the Prometheus
// export. It is safe for concurrent use.
//
// Its memory grows with the number of label sets, so every label value is
// bounded (see #13): "model" is the configured model (cut to 128 bytes by
// modelLabel), "outcome", "kind" (an apierr.Kind, from code) and "op" (a
// store method) come from fixed sets, and "tenant" is opt-in
// (Config.TenantLabel). No label takes its value from a request's body,
// path or headers, so a client cannot add series. Labels of Count come
// from lambdagent's own callers.
type registry struct {
	mu sync.Mutex
	// fams holds the families by name; guarded by mu, as is every series.
	fams map[string]*family
}

type family struct {
	name, help string
	typ        metricType
	buckets    []float64          // upper bounds, ascending; histograms only
	series     map[string]*series // by rendered labels
}

type series struct {
	labels string  // `k="v",k2="v2"`; "" for none
	value  float64 // counters
	// Histograms: counts per bucket (not cumulative), the last one +Inf.
	counts []uint64
	sum    float64
	count  uint64
}

func newRegistry() *registry {
	r := &registry{fams: make(map[string]*family)}
	defineFamilies(r)
	return r
}

// define adds a family unless one of that name exists.
func (r *registry) define(name, help string, typ metricType, buckets []float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.defineLocked(name, help, typ, buckets)
}

func (r *registry) defineLocked(name, help string, typ metricType, buckets []float64) *family {
	if f, ok := r.fams[name]; ok {
		return f
	}
	f := &family{name: name, help: help, typ: typ, buckets: buckets, series: make(map[string]*series)}
	r.fams[name] = f
	return f
}

// add adds v to a counter; labels are key, value pairs.
func (r *registry) add(name string, v float64, labels ...string) {
	key := renderLabels(labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.defineLocked(name, "", counter, nil)
	f.seriesLocked(key).value += v
}

// observe records v in a histogram; labels are key, value pairs.
func (r *registry) observe(name string, v float64, labels ...string) {
	key := renderLabels(labels)
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.fams[name]
	if !ok || f.typ != histogram {
		return // every histogram is defined up front
	}
	s := f.seriesLocked(key)
	i, _ := slices.BinarySearch(f.buckets, v) // first bucket with bound >= v
	s.counts[i]++
	s.sum += v
	s.count++
}

func (f *family) seriesLocked(key string) *series {
	s, ok := f.series[key]
	if !ok {
		s = &series{labels: key}
		if f.typ == histogram {
			s.counts = make([]uint64, len(f.buckets)+1)
		}
		f.series[key] = s
	}
	return s
}

// write renders every family in the Prometheus text exposition format,
// families and series sorted so that scrapes diff cleanly.
func (r *registry) write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	r.mu.Lock()
	names := make([]string, 0, len(r.fams))
	for name := range r.fams {
		names = append(names, name)
	}
	slices.Sort(names)
	var b []byte
	for _, name := range names {
		f := r.fams[name]
		b = f.appendTo(b[:0])
		if _, err := bw.Write(b); err != nil {
			r.mu.Unlock()
			return err
		}
	}
	r.mu.Unlock()
	return bw.Flush()
}

func (f *family) appendTo(b []byte) []byte {
	if f.help != "" {
		b = append(b, "# HELP "...)
		b = append(b, f.name...)
		b = append(b, ' ')
		b = appendEscaped(b, f.help, false)
		b = append(b, '\n')
	}
	b = append(b, "# TYPE "...)
	b = append(b, f.name...)
	if f.typ == histogram {
		b = append(b, " histogram\n"...)
	} else {
		b = append(b, " counter\n"...)
	}
	keys := make([]string, 0, len(f.series))
	for k := range f.series {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		s := f.series[k]
		if f.typ == counter {
			b = appendSample(b, f.name, "", s.labels, "", s.value)
			continue
		}
		var cum uint64
		for i, c := range s.counts {
			cum += c
			le := "+Inf"
			if i < len(f.buckets) {
				le = formatFloat(f.buckets[i])
			}
			b = appendSample(b, f.name, "_bucket", s.labels, `le="`+le+`"`, float64(cum))
		}
		b = appendSample(b, f.name, "_sum", s.labels, "", s.sum)
		b = appendSample(b, f.name, "_count", s.labels, "", float64(s.count))
	}
	return b
}

func appendSample(b []byte, name, suffix, labels, extra string, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if labels != "" || extra != "" {
		b = append(b, '{')
		b = append(b, labels...)
		if labels != "" && extra != "" {
			b = append(b, ',')
		}
		b = append(b, extra...)
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = append(b, formatFloat(v)...)
	return append(b, '\n')
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// renderLabels renders key, value pairs as `k="v",…` in the order given.
// An odd last key is dropped.
func renderLabels(kv []string) string {
	if len(kv) < 2 {
		return ""
	}
	var b []byte
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, kv[i]...)
		b = append(b, `="`...)
		b = appendEscaped(b, kv[i+1], true)
		b = append(b, '"')
	}
	return string(b)
}

// appendEscaped escapes a HELP text (backslash, newline) or a label value
// (also the double quote), as the exposition format asks.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// validName reports whether s may be a metric or label name of ours:
// lower-case letters, digits and '_', starting with a letter. Such a name
// is valid in Prometheus and, through camel, in CloudWatch.
func validName(s string) bool {
	if s == "" || len(s) > 100 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// camel turns a snake_case name into the CamelCase CloudWatch convention:
// rate_limit_waits → RateLimitWaits.
func camel(s string) string {
	var b strings.Builder
	up := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' {
			up = true
			continue
		}
		if up && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up = false
		b.WriteByte(c)
	}
	return b.String()
}

func promCountName(name string) string { return "lambdagent_" + name + "_total" }

// MetricsHandler serves the metrics in the Prometheus text exposition
// format (GET /metrics). Without [Config.Prometheus], or on a nil
// Telemetry, it answers 404.
func (t *Telemetry) MetricsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.Header().Set("Cache-Control", "no-store")
			apierr.WriteKind(w, apierr.MethodNotAllowed, r.Method+" is not allowed here; use GET")
			return
		}
		if t == nil || t.reg == nil {
			w.Header().Set("Cache-Control", "no-store")
			apierr.WriteKind(w, apierr.NotFound, "metrics are off")
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		_ = t.reg.write(w)
	})
}

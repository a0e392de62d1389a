package claudesim

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// Nominal limits reported in the headers of a dimension the Config leaves
// unlimited. They are not enforced.
const (
	nominalRequests     = 4_000
	nominalInputTokens  = 2_000_000
	nominalOutputTokens = 400_000
)

// A bucket is one rate limit, enforced as the API documents: a token
// bucket of capacity limit, refilled continuously at limit per minute.
// A zero limit is unlimited.
type bucket struct {
	limit   float64
	nominal int
	level   float64
	last    time.Time
}

func newBucket(limit, nominal int) bucket {
	return bucket{limit: float64(limit), nominal: nominal, level: float64(limit)}
}

func (b *bucket) refill(now time.Time) {
	if b.limit == 0 {
		return
	}
	if !b.last.IsZero() && now.After(b.last) {
		b.level = min(b.limit, b.level+b.limit*now.Sub(b.last).Minutes())
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
}

// wait is how long until the bucket holds need.
func (b *bucket) wait(need float64) time.Duration {
	if b.limit == 0 || b.level >= need {
		return 0
	}
	return time.Duration((need - b.level) / b.limit * float64(time.Minute))
}

// setHeaders writes the anthropic-ratelimit-NAME-{limit,remaining,reset}
// headers.
func (b *bucket) setHeaders(h http.Header, name string, now time.Time) {
	limit, remaining, reset := b.nominal, b.nominal, now
	if b.limit != 0 {
		limit = int(b.limit)
		remaining = max(0, int(math.Floor(b.level)))
		reset = now.Add(b.wait(b.limit))
	}
	p := "anthropic-ratelimit-" + name + "-"
	h.Set(p+"limit", strconv.Itoa(limit))
	h.Set(p+"remaining", strconv.Itoa(remaining))
	h.Set(p+"reset", reset.UTC().Format(time.RFC3339))
}

// limits are the three documented per-minute limits.
type limits struct {
	requests, input, output bucket
}

func newLimits(cfg Config) limits {
	return limits{
		requests: newBucket(cfg.RequestsPerMinute, nominalRequests),
		input:    newBucket(cfg.InputTokensPerMinute, nominalInputTokens),
		output:   newBucket(cfg.OutputTokensPerMinute, nominalOutputTokens),
	}
}

func (l *limits) refill(now time.Time) {
	l.requests.refill(now)
	l.input.refill(now)
	l.output.refill(now)
}

// admit takes one request and input input tokens if all three buckets
// allow it (output tokens are charged after the reply, so only an empty
// output bucket refuses). Otherwise it takes nothing and returns the
// exhausted limit's name and how long until it allows the request.
func (l *limits) admit(input int) (string, time.Duration) {
	switch {
	case l.requests.limit != 0 && l.requests.level < 1:
		return "requests", l.requests.wait(1)
	case l.input.limit != 0 && l.input.level < float64(input):
		return "input tokens", l.input.wait(float64(input))
	case l.output.limit != 0 && l.output.level < 1:
		return "output tokens", l.output.wait(1)
	}
	if l.requests.limit != 0 {
		l.requests.level--
	}
	if l.input.limit != 0 {
		l.input.level -= float64(input)
	}
	return "", 0
}

// chargeOutput takes n output tokens; the bucket may go negative, so that
// later requests wait for it.
func (l *limits) chargeOutput(n int) {
	if l.output.limit != 0 {
		l.output.level -= float64(n)
	}
}

func (l *limits) setHeaders(h http.Header, now time.Time) {
	l.requests.setHeaders(h, "requests", now)
	l.input.setHeaders(h, "input-tokens", now)
	l.output.setHeaders(h, "output-tokens", now)
}

// retryAfterSeconds rounds d up to whole seconds, at least 1, as the
// retry-after header carries.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

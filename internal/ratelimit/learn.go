package ratelimit

import (
	"net/http"
	"strconv"
	"time"
)

// slowUntil reads the anthropic-ratelimit-{requests,input-tokens,
// output-tokens,tokens}-{limit,remaining,reset} headers of a reply and
// returns when the model's instances may go on at full speed: for each
// limit whose remaining is below Config.SlowBelow of it, the time its
// bucket takes to refill to that fraction, assuming (as the API's token
// buckets do) a steady refill that reaches the limit at reset. It returns
// the zero time when no limit is that low, or learning is off.
func (l *Limiter) slowUntil(h http.Header, now time.Time) time.Time {
	if len(h) == 0 || l.cfg.SlowBelow < 0 {
		return time.Time{}
	}
	var until time.Time
	for _, name := range []string{"requests", "input-tokens", "output-tokens", "tokens"} {
		p := "anthropic-ratelimit-" + name + "-"
		limit, err1 := strconv.ParseFloat(h.Get(p+"limit"), 64)
		remaining, err2 := strconv.ParseFloat(h.Get(p+"remaining"), 64)
		reset, err3 := time.Parse(time.RFC3339, h.Get(p+"reset"))
		if err1 != nil || err2 != nil || err3 != nil || limit <= 0 || remaining < 0 {
			continue
		}
		floor := l.cfg.SlowBelow * limit
		if remaining >= floor || !reset.After(now) {
			continue
		}
		refill := time.Duration(float64(reset.Sub(now)) * (floor - remaining) / (limit - remaining))
		if t := now.Add(refill); t.After(until) {
			until = t
		}
	}
	return until
}

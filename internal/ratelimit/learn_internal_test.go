package ratelimit

import (
	"net/http"
	"testing"
	"time"
)

func TestSlowUntil(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	reset := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	tests := []struct {
		name      string
		slowBelow float64
		h         http.Header
		want      time.Duration // 0: no slowdown
	}{
		{"no headers", 0.1, nil, 0},
		{"plenty left", 0.1, hdr("anthropic-ratelimit-input-tokens-limit", "1000", "anthropic-ratelimit-input-tokens-remaining", "500",
			"anthropic-ratelimit-input-tokens-reset", reset(30*time.Second)), 0},
		// 50 of 1000 left, full in 57 s: 10 % (100) is back in 3 s.
		{"input tokens low", 0.1, hdr("anthropic-ratelimit-input-tokens-limit", "1000", "anthropic-ratelimit-input-tokens-remaining", "50",
			"anthropic-ratelimit-input-tokens-reset", reset(57*time.Second)), 3 * time.Second},
		{"empty", 0.1, hdr("anthropic-ratelimit-requests-limit", "50", "anthropic-ratelimit-requests-remaining", "0",
			"anthropic-ratelimit-requests-reset", reset(60*time.Second)), 6 * time.Second},
		{"the longest wins", 0.1, hdr(
			"anthropic-ratelimit-requests-limit", "50", "anthropic-ratelimit-requests-remaining", "0", "anthropic-ratelimit-requests-reset", reset(60*time.Second),
			"anthropic-ratelimit-output-tokens-limit", "100", "anthropic-ratelimit-output-tokens-remaining", "0", "anthropic-ratelimit-output-tokens-reset", reset(100*time.Second)),
			10 * time.Second},
		{"reset passed", 0.1, hdr("anthropic-ratelimit-tokens-limit", "1000", "anthropic-ratelimit-tokens-remaining", "0",
			"anthropic-ratelimit-tokens-reset", reset(-time.Second)), 0},
		{"garbage", 0.1, hdr("anthropic-ratelimit-tokens-limit", "x", "anthropic-ratelimit-tokens-remaining", "0",
			"anthropic-ratelimit-tokens-reset", reset(time.Minute)), 0},
		{"learning off", -1, hdr("anthropic-ratelimit-requests-limit", "50", "anthropic-ratelimit-requests-remaining", "0",
			"anthropic-ratelimit-requests-reset", reset(60*time.Second)), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &Limiter{cfg: Config{SlowBelow: tc.slowBelow}}
			var got time.Duration
			if u := l.slowUntil(tc.h, now); !u.IsZero() {
				got = u.Sub(now)
			}
			if got != tc.want {
				t.Errorf("slow down for %v, want %v", got, tc.want)
			}
		})
	}
}

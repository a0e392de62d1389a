package ratelimit

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"
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

func TestPeek(t *testing.T) {
	tests := []struct {
		body  string
		model string
		max   int64
	}{
		{`{"model":"claude-sonnet-5-5","max_tokens":4096,"messages":[]}`, "claude-sonnet-5-5", 4096},
		{`{"max_tokens":10,"stream":false,"model":"m"}`, "m", 10},
		{`{"messages":[{"role":"user","content":"x"}],"model":"m","max_tokens":1}`, "", 0}, // gives up at messages
		{`{"model":5}`, "", 0},
		{`[]`, "", 0},
		{``, "", 0},
		{`{"model":"m","max_tokens":1e3}`, "m", 0},
	}
	for _, tc := range tests {
		m, n := peek([]byte(tc.body))
		if m != tc.model || n != tc.max {
			t.Errorf("peek(%s) = %q, %d; want %q, %d", tc.body, m, n, tc.model, tc.max)
		}
	}
}

// FuzzPeek checks that peek never panics on any body, and that it finds
// the model and max_tokens of the agent's bodies, which put them first,
// whatever follows.
func FuzzPeek(f *testing.F) {
	f.Add([]byte(`{"model":"claude-sonnet-5-5","max_tokens":4096,"messages":[]}`))
	f.Add([]byte(`{"max_tokens":-1,"model":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		peek(body)
		model := string(body[:min(len(body), 40)])
		if !utf8.ValidString(model) {
			return
		}
		q, _ := json.Marshal(model)
		agentBody := append([]byte(`{"model":`+string(q)+`,"max_tokens":7,`), body...)
		if m, n := peek(agentBody); m != model || n != 7 {
			t.Errorf("peek(%q) = %q, %d; want %q, 7", agentBody, m, n, model)
		}
	})
}

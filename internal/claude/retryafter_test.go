package claude

import (
	"net/http"
	"testing"
	"testing/synctest"
	"time"
)

// retryAfter under synctest: the bubble's clock starts at
// 2000-01-01 00:00:00 UTC, so HTTP dates and resets give exact waits.
func TestRetryAfter(t *testing.T) {
	tests := []struct {
		name    string
		header  map[string]string
		limited bool // a 429
		want    time.Duration
	}{
		{"none", nil, false, 0},
		{"none on a 429", nil, true, 0},
		{"seconds", map[string]string{"retry-after": "2"}, false, 2 * time.Second},
		{"fractional seconds", map[string]string{"retry-after": "0.25"}, false, 250 * time.Millisecond},
		{"zero", map[string]string{"retry-after": "0"}, false, 0},
		{"spaces", map[string]string{"retry-after": " 3 "}, false, 3 * time.Second},
		{"milliseconds", map[string]string{"retry-after-ms": "1500"}, false, 1500 * time.Millisecond},
		{"milliseconds win", map[string]string{"retry-after-ms": "100", "retry-after": "9"}, false, 100 * time.Millisecond},
		{"bad milliseconds fall back", map[string]string{"retry-after-ms": "soon", "retry-after": "9"}, false, 9 * time.Second},
		{"negative milliseconds fall back", map[string]string{"retry-after-ms": "-5", "retry-after": "1"}, false, time.Second},
		{"negative", map[string]string{"retry-after": "-1"}, false, 0},
		{"non-numeric", map[string]string{"retry-after": "soon"}, false, 0},
		{"NaN", map[string]string{"retry-after": "NaN"}, false, 0},
		{"infinite", map[string]string{"retry-after": "+Inf"}, false, 0},
		{"huge is capped", map[string]string{"retry-after": "1e300"}, false, maxRetryAfter},
		{"huge milliseconds are capped", map[string]string{"retry-after-ms": "9223372036854775807"}, false, maxRetryAfter},
		{"just under the cap", map[string]string{"retry-after": "86399"}, false, 86399 * time.Second},
		{"HTTP date", map[string]string{"retry-after": "Sat, 01 Jan 2000 00:00:10 GMT"}, false, 10 * time.Second},
		{"HTTP date in the past", map[string]string{"retry-after": "Fri, 31 Dec 1999 23:59:00 GMT"}, false, 0},
		{"HTTP date far away is capped", map[string]string{"retry-after": "Sun, 01 Jan 2040 00:00:00 GMT"}, false, maxRetryAfter},
		{"broken date", map[string]string{"retry-after": "Sat, 01 Jan 2000 25:00:00 GMT"}, false, 0},
		// The reset headers count on a 429 only, and the earliest wins.
		{"resets on a 429", map[string]string{
			"anthropic-ratelimit-requests-reset":      "2000-01-01T00:00:20Z",
			"anthropic-ratelimit-input-tokens-reset":  "2000-01-01T00:00:05Z",
			"anthropic-ratelimit-output-tokens-reset": "1999-12-31T23:00:00Z", // past: ignored
		}, true, 5 * time.Second},
		{"resets on a 529", map[string]string{"anthropic-ratelimit-requests-reset": "2000-01-01T00:00:20Z"}, false, 0},
		{"bad reset", map[string]string{"anthropic-ratelimit-requests-reset": "tomorrow"}, true, 0},
		{"retry-after beats resets", map[string]string{"retry-after": "1", "anthropic-ratelimit-requests-reset": "2000-01-01T00:00:20Z"}, true, time.Second},
		{"bad retry-after falls back to resets", map[string]string{"retry-after": "x", "anthropic-ratelimit-tokens-reset": "2000-01-01T00:00:07Z"}, true, 7 * time.Second},
		{"far reset is capped", map[string]string{"anthropic-ratelimit-requests-reset": "2001-01-01T00:00:00Z"}, true, maxRetryAfter},
		// With remaining and limit, the exhausted limit's reset wins,
		// not the earliest (see #14).
		{"exhausted limit's reset", map[string]string{
			"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49", "anthropic-ratelimit-requests-reset": "2000-01-01T00:00:01Z",
			"anthropic-ratelimit-output-tokens-limit": "8000", "anthropic-ratelimit-output-tokens-remaining": "0", "anthropic-ratelimit-output-tokens-reset": "2000-01-01T00:00:40Z",
			"anthropic-ratelimit-input-tokens-limit": "30000", "anthropic-ratelimit-input-tokens-remaining": "29000", "anthropic-ratelimit-input-tokens-reset": "2000-01-01T00:00:02Z",
		}, true, 40 * time.Second},
		{"none exhausted: the emptiest", map[string]string{
			"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "40", "anthropic-ratelimit-requests-reset": "2000-01-01T00:00:01Z",
			"anthropic-ratelimit-input-tokens-limit": "30000", "anthropic-ratelimit-input-tokens-remaining": "300", "anthropic-ratelimit-input-tokens-reset": "2000-01-01T00:00:12Z",
		}, true, 12 * time.Second},
		{"two exhausted: the later", map[string]string{
			"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": "2000-01-01T00:00:03Z",
			"anthropic-ratelimit-tokens-limit": "30000", "anthropic-ratelimit-tokens-remaining": "0", "anthropic-ratelimit-tokens-reset": "2000-01-01T00:00:09Z",
		}, true, 9 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := http.Header{}
				for k, v := range tc.header {
					h.Set(k, v)
				}
				if got := retryAfter(h, tc.limited); got != tc.want {
					t.Errorf("retryAfter(%v, %v) = %v, want %v", tc.header, tc.limited, got, tc.want)
				}
			})
		})
	}
}

// Whatever a server sends, the wait is between zero and maxRetryAfter.
func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"2", "0.5", "-1", "1e300", "NaN", "Inf", "0x1p62", "Sat, 01 Jan 2000 00:00:10 GMT", "", "9223372036854775808"} {
		f.Add(s, s, true)
	}
	f.Fuzz(func(t *testing.T, seconds, millis string, limited bool) {
		h := http.Header{}
		h.Set("retry-after", seconds)
		h.Set("retry-after-ms", millis)
		h.Set("anthropic-ratelimit-requests-reset", seconds)
		if d := retryAfter(h, limited); d < 0 || d > maxRetryAfter {
			t.Fatalf("retryAfter(%q, %q) = %v", seconds, millis, d)
		}
	})
}

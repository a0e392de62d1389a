package claude_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/retry"
)

func TestStatusErrorRetryable(t *testing.T) {
	tests := []struct {
		code int
		want bool
	}{
		{400, false}, {401, false}, {403, false}, {404, false}, {413, false}, {422, false},
		{408, true}, {409, true}, {429, true},
		{500, true}, {502, true}, {503, true}, {504, true}, {529, true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			if got := (&claude.StatusError{Code: tc.code}).Retryable(); got != tc.want {
				t.Errorf("Retryable() = %v, want %v", got, tc.want)
			}
		})
	}
	if !(&claude.TransportError{Err: errors.New("refused")}).Retryable() {
		t.Error("a TransportError is not retryable")
	}
	if got := (&claude.StatusError{Code: 429, Wait: 3 * time.Second}).RetryAfter(); got != 3*time.Second {
		t.Errorf("RetryAfter() = %v, want the server's advice", got)
	}
}

// apiError answers every request with the Messages API's error envelope.
func apiError(code int, typ, msg string, header map[string]string, calls *atomic.Int32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q},"request_id":"req_body"}`, typ, msg)
	})
}

func newClient(t *testing.T, url string, attempts int) *claude.Client {
	t.Helper()
	c, err := claude.New(claude.Config{APIKey: "test-key", BaseURL: url,
		Retry: retry.Policy{Attempts: attempts, Base: time.Millisecond, Cap: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const body = `{"model":"claude-test","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`

// A non-2xx reply becomes a *StatusError with the API's fields; retryable
// ones are tried again, the others once.
func TestStatusErrorFromReply(t *testing.T) {
	tests := []struct {
		name      string
		code      int
		typ, msg  string
		header    map[string]string
		want      claude.StatusError // Header not compared
		wantCalls int32
	}{
		{"rate limited", 429, "rate_limit_error", "slow down", map[string]string{"retry-after": "0", "request-id": "req_429"},
			claude.StatusError{Code: 429, Type: "rate_limit_error", Message: "slow down", RequestID: "req_429"}, 3},
		{"rate limited, ms advice", 429, "rate_limit_error", "slow down", map[string]string{"retry-after-ms": "1", "request-id": "req_ms"},
			claude.StatusError{Code: 429, Type: "rate_limit_error", Message: "slow down", RequestID: "req_ms", Wait: time.Millisecond}, 3},
		{"overloaded", 529, "overloaded_error", "Overloaded", map[string]string{"request-id": "req_529"},
			claude.StatusError{Code: 529, Type: "overloaded_error", Message: "Overloaded", RequestID: "req_529"}, 3},
		{"server error", 500, "api_error", "oops", map[string]string{"request-id": "req_500"},
			claude.StatusError{Code: 500, Type: "api_error", Message: "oops", RequestID: "req_500"}, 3},
		{"bad request", 400, "invalid_request_error", "max_tokens: too large", map[string]string{"request-id": "req_400"},
			claude.StatusError{Code: 400, Type: "invalid_request_error", Message: "max_tokens: too large", RequestID: "req_400"}, 1},
		{"bad key", 401, "authentication_error", "invalid x-api-key", map[string]string{"request-id": "req_401"},
			claude.StatusError{Code: 401, Type: "authentication_error", Message: "invalid x-api-key", RequestID: "req_401"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			hs := httptest.NewServer(apiError(tc.code, tc.typ, tc.msg, tc.header, &calls))
			t.Cleanup(hs.Close)
			_, err := newClient(t, hs.URL, 3).Create(t.Context(), claude.Request{Model: "claude-sonnet-5-5", MaxTokens: 16, Body: []byte(body)})
			var se *claude.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("Create = %v, want a *StatusError", err)
			}
			if diff := cmp.Diff(tc.want, *se, cmpopts.IgnoreFields(claude.StatusError{}, "Header")); diff != "" {
				t.Errorf("StatusError (-want +got):\n%s", diff)
			}
			if se.Header.Get("request-id") != tc.want.RequestID {
				t.Errorf("Header lacks the reply's headers: %v", se.Header)
			}
			if got := calls.Load(); got != tc.wantCalls {
				t.Errorf("%d requests, want %d", got, tc.wantCalls)
			}
		})
	}
}

// A server that cannot be reached is a *TransportError; a context that
// ends is the context's error, not a transport failure.
func TestTransportAndContextErrors(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	url := hs.URL
	hs.Close() // nothing listens there now

	_, err := newClient(t, url, 2).Create(t.Context(), claude.Request{Model: "claude-sonnet-5-5", MaxTokens: 16, Body: []byte(body)})
	var te *claude.TransportError
	if !errors.As(err, &te) {
		t.Errorf("unreachable server: %v, want a *TransportError", err)
	}

	released := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // so that the server notices the client hang up
		select {
		case <-r.Context().Done():
		case <-released:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(released) }) // runs first
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = newClient(t, hang.URL, 1).Create(ctx, claude.Request{Model: "claude-sonnet-5-5", MaxTokens: 16, Body: []byte(body)})
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) {
		t.Errorf("deadline: %v, want context.DeadlineExceeded and no *TransportError", err)
	}
}

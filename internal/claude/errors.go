package claude

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// errEmptyBody is returned for a request without a body; nothing is sent.
var errEmptyBody = errors.New("claude: empty request body")

// A StatusError reports a non-2xx reply from the Messages API.
type StatusError struct {
	// Code is the HTTP status.
	Code int
	// Type is the API's error type, e.g. "rate_limit_error".
	Type string
	// Message is the API's error message.
	Message string
	// RequestID is the upstream request-id header, for support tickets.
	RequestID string
	// Wait is the server's retry-after advice; zero if it sent none.
	Wait time.Duration
	// Header holds the response headers, anthropic-ratelimit-* among them.
	Header http.Header
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("claude: status %d %s: %s (request-id %s)", e.Code, e.Type, e.Message, e.RequestID)
}

// Retryable reports whether sending the request again may succeed
// (408, 409, 429, 5xx and 529 overloaded).
func (e *StatusError) Retryable() bool {
	return e.Code == 408 || e.Code == 409 || e.Code == 429 || e.Code >= 500
}

// RetryAfter is the server's advice on how long to wait.
func (e *StatusError) RetryAfter() time.Duration { return e.Wait }

// APIError says how a Messages API error looks to our client, who did
// nothing wrong: 429 rate_limited (retry later), 503 upstream_overloaded
// (529 or 503), or else 502 upstream_error with Claude's request-id. A
// Retry-After of at least a second goes with the first two.
func (e *StatusError) APIError() *apierr.Error {
	ae := &apierr.Error{Kind: apierr.UpstreamError, RequestID: e.RequestID,
		Message: "Claude answered " + strconv.Itoa(e.Code) + " " + e.Type + "; nothing was saved"}
	switch e.Code {
	case http.StatusTooManyRequests:
		ae.Kind, ae.RetryAfter = apierr.RateLimited, max(e.Wait, time.Second)
	case 529, http.StatusServiceUnavailable:
		ae.Kind, ae.RetryAfter = apierr.UpstreamOverloaded, max(e.Wait, time.Second)
	}
	return ae
}

// A TransportError is a failure to reach the API or read its reply.
type TransportError struct{ Err error }

func (e *TransportError) Error() string   { return "claude: " + e.Err.Error() }
func (e *TransportError) Unwrap() error   { return e.Err }
func (e *TransportError) Retryable() bool { return true }

// APIError makes a TransportError a 502 upstream_unreachable, unless the
// transport gave up on a deadline (an http.Client timeout): it returns nil
// then, so that apierr.From calls it a timeout, like the turn's own
// deadline.
func (e *TransportError) APIError() *apierr.Error {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return nil
	}
	return &apierr.Error{Kind: apierr.UpstreamUnreachable, Message: "Claude could not be reached; nothing was saved, retry"}
}

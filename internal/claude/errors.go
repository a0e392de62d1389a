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
	// ShouldRetry is the server's x-should-retry header: nil when it sent
	// none (or another value), else whether to retry, whatever the status.
	ShouldRetry *bool
	// MidStream says the error came as an error event of a stream that had
	// started with a 200 (see #14); Code is then the status matching Type.
	MidStream bool
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("claude: status %d %s: %s (request-id %s)", e.Code, e.Type, e.Message, e.RequestID)
}

// Retryable reports whether sending the request again may succeed: what
// the server's x-should-retry header says if it sent one (false: not even
// a 529), else 408, 409, 429, 5xx and 529 overloaded, as the SDK's own
// retry decides.
func (e *StatusError) Retryable() bool {
	if e.ShouldRetry != nil {
		return *e.ShouldRetry
	}
	return e.Code == 408 || e.Code == 409 || e.Code == 429 || e.Code >= 500
}

// statusOf is the HTTP status the API documents for an error type, for
// an error that came without one (an error event in a stream). An unknown
// type counts as a 500 api_error.
func statusOf(typ string) int {
	switch typ {
	case "invalid_request_error":
		return http.StatusBadRequest
	case "authentication_error":
		return http.StatusUnauthorized
	case "billing_error":
		return http.StatusPaymentRequired
	case "permission_error":
		return http.StatusForbidden
	case "not_found_error":
		return http.StatusNotFound
	case "request_too_large":
		return http.StatusRequestEntityTooLarge
	case "rate_limit_error":
		return http.StatusTooManyRequests
	case "timeout_error":
		return http.StatusGatewayTimeout
	case "overloaded_error":
		return 529
	}
	return http.StatusInternalServerError
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

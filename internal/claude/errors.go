package claude

import (
	"errors"
	"fmt"
	"net/http"
	"time"
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

// A TransportError is a failure to reach the API or read its reply.
type TransportError struct{ Err error }

func (e *TransportError) Error() string   { return "claude: " + e.Err.Error() }
func (e *TransportError) Unwrap() error   { return e.Err }
func (e *TransportError) Retryable() bool { return true }

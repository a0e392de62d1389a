package claudesim

import (
	"fmt"
	"net/http"
	"time"
)

// An apiError is one documented error reply: an HTTP status and the
// error object {"type":…,"message":…} of the body.
type apiError struct {
	status     int
	typ        string
	msg        string
	retryAfter time.Duration // sent as retry-after when non-zero
}

func (e *apiError) Error() string { return fmt.Sprintf("claudesim: %d %s: %s", e.status, e.typ, e.msg) }

// invalid returns a 400 invalid_request_error.
func invalid(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", msg: fmt.Sprintf(format, args...)}
}

var (
	errMissingKey = &apiError{status: http.StatusUnauthorized, typ: "authentication_error", msg: "x-api-key header is required"}
	errBadKey     = &apiError{status: http.StatusUnauthorized, typ: "authentication_error", msg: "invalid x-api-key"}
	errNoVersion  = invalid("anthropic-version: header is required")
	errNotFound   = &apiError{status: http.StatusNotFound, typ: "not_found_error", msg: "Not Found"}
	errMethod     = &apiError{status: http.StatusMethodNotAllowed, typ: "invalid_request_error", msg: "Method Not Allowed"}
	errTooLarge   = &apiError{status: http.StatusRequestEntityTooLarge, typ: "request_too_large", msg: "Request exceeds the maximum allowed number of bytes."}
	errOverloaded = &apiError{status: 529, typ: "overloaded_error", msg: "Overloaded"}
	errInternal   = &apiError{status: http.StatusInternalServerError, typ: "api_error", msg: "Internal server error"}
)

// errorBody is the documented error envelope.
type errorBody struct {
	Type      string      `json:"type"`
	Error     errorObject `json:"error"`
	RequestID string      `json:"request_id"`
}

type errorObject struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

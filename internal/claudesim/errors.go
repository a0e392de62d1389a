package claudesim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// An apiError is one documented error reply: an HTTP status and the
// error object {"type":…,"message":…} of the body.
type apiError struct {
	status     int
	typ        string
	msg        string
	retryAfter time.Duration // sent as retry-after when non-zero
	// header holds more response headers to send (a [[fail …]] marker's
	// retry advice), set after the rate limit headers.
	header map[string]string
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

// markFail opens the marker that makes a request fail on demand:
// [[fail STATUS option…]] (see the package doc).
const markFail = "[[fail "

// A fault is the failure a [[fail …]] marker asks for.
type fault struct {
	err *apiError
	// times is how many requests of the same body fail before one passes.
	times int
	// midStream sends the error as an event after a 200 started a stream.
	midStream bool
	// exhausted names the rate limit (requests, input-tokens,
	// output-tokens) whose headers say it is empty until reset.
	exhausted string
	reset     time.Duration
}

// errorTypes are the documented error types by HTTP status.
var errorTypes = map[int]string{
	400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
	403: "permission_error", 404: "not_found_error", 413: "request_too_large",
	429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error",
}

// parseFault finds the first [[fail STATUS option…]] marker in text. A
// malformed one is ignored, as plain text.
func parseFault(text string) (*fault, bool) {
	i := strings.Index(text, markFail)
	if i < 0 {
		return nil, false
	}
	rest := text[i+len(markFail):]
	end := strings.Index(rest, "]]")
	if end < 0 {
		return nil, false
	}
	fields := strings.Fields(rest[:end])
	if len(fields) == 0 {
		return nil, false
	}
	status, err := strconv.Atoi(fields[0])
	if err != nil || status < 400 || status > 599 {
		return nil, false
	}
	typ, ok := errorTypes[status]
	if !ok {
		typ = "api_error"
	}
	f := &fault{times: 1, reset: time.Minute, err: &apiError{status: status, typ: typ, msg: "simulated failure ([[fail " + fields[0] + "]])", header: map[string]string{}}}
	switch status {
	case 529:
		f.err.msg = "Overloaded"
	case 429:
		f.err.msg = "This request would exceed your organization's rate limit (simulated). Please try again later."
	}
	for _, opt := range fields[1:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "times":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, false
			}
			f.times = n
		case "retry-after", "retry-after-ms":
			f.err.header[k] = v
		case "should-retry":
			if v != "true" && v != "false" {
				return nil, false
			}
			f.err.header["x-should-retry"] = v
		case "mid-stream":
			f.midStream = true
		case "exhausted":
			if v != "requests" && v != "input-tokens" && v != "output-tokens" {
				return nil, false
			}
			f.exhausted = v
		case "reset":
			s, err := strconv.ParseFloat(v, 64)
			if err != nil || s < 0 || s > 86400 {
				return nil, false
			}
			f.reset = time.Duration(s * float64(time.Second))
		default:
			return nil, false
		}
	}
	return f, true
}

// limitHeaders overrides the rate limit headers as f asks: its exhausted
// limit reports 0 remaining until now+reset, the others a reset in one
// second, earlier, so that a client that waits for the earliest reset
// retries too soon.
func (f *fault) limitHeaders(now time.Time) {
	if f.exhausted == "" {
		return
	}
	for _, name := range []string{"requests", "input-tokens", "output-tokens"} {
		p := "anthropic-ratelimit-" + name + "-"
		reset := now.Add(time.Second)
		if name == f.exhausted {
			f.err.header[p+"remaining"] = "0"
			reset = now.Add(f.reset)
		}
		f.err.header[p+"reset"] = reset.UTC().Format(time.RFC3339)
	}
}

// errorEvent is the error event that ends a stream failing mid-way.
func (e *apiError) event(requestID string) sseEvent {
	return sseEvent{name: "error", data: marshal(errorBody{
		Type: "error", Error: errorObject{Type: e.typ, Message: e.msg}, RequestID: requestID,
	})}
}

package apierr

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"
)

// A Kind names a class of failure. It is the "type" of the JSON error
// body, the "error" field of a turn's log line and the kind label of
// lambdagent_errors_total: a short, stable word, never a message.
type Kind string

// Kinds of the HTTP API, with the status each gets (see [Kind.Status]).
const (
	InvalidRequest   Kind = "invalid_request"    // 400: bad JSON, missing fields, bad session id
	Unauthorized     Kind = "unauthorized"       // 401: no or bad credentials
	BudgetExceeded   Kind = "budget_exceeded"    // 402: a daily budget is spent
	Forbidden        Kind = "forbidden"          // 403: credentials valid, access denied
	Stopped          Kind = "stopped"            // 403: an operator's kill switch is on
	NotFound         Kind = "not_found"          // 404: unknown session or endpoint
	MethodNotAllowed Kind = "method_not_allowed" // 405
	SessionBusy      Kind = "session_busy"       // 409: another turn of the session is in flight
	Conflict         Kind = "conflict"           // 409: the session changed under the turn
	InvalidHistory   Kind = "invalid_history"    // 409: the stored history breaks the Messages API rules
	RequestTooLarge  Kind = "request_too_large"  // 413
	// ContextWindowExceeded (413): the session's history no longer fits
	// the model's context window; the message names its size.
	ContextWindowExceeded Kind = "context_window_exceeded"
	SessionTooLarge       Kind = "session_too_large"      // 413: the session's stored history is at its limit
	UnsupportedMediaType  Kind = "unsupported_media_type" // 415
	IdempotencyMismatch   Kind = "idempotency_mismatch"   // 422: an Idempotency-Key reused for another request
	RateLimited           Kind = "rate_limited"           // 429: Claude's or our own rate limit
	TooManyTurns          Kind = "too_many_turns"         // 429: our concurrency limit
	Canceled              Kind = "canceled"               // 499: the client went away
	Internal              Kind = "internal_error"         // 500: a bug, or a failure we did not foresee
	UpstreamError         Kind = "upstream_error"         // 502: Claude answered with an error
	UpstreamUnreachable   Kind = "upstream_unreachable"   // 502: Claude could not be reached
	StoreUnavailable      Kind = "store_unavailable"      // 503: the session or limiter store is down
	UpstreamOverloaded    Kind = "upstream_overloaded"    // 503: Claude is overloaded (529)
	Interrupted           Kind = "interrupted"            // 503: a streamed turn's process stopped; retry with the same Idempotency-Key (#15)
	ShuttingDown          Kind = "shutting_down"          // 503: the server stopped before the turn finished
	Timeout               Kind = "timeout"                // 504: the turn outlived its deadline
)

// StatusClientClosedRequest is nginx's 499, the status of [Canceled]: the
// client hung up, so nobody reads it, but logs and metrics tell it from a
// failure of ours.
const StatusClientClosedRequest = 499

var statuses = map[Kind]int{
	InvalidRequest:        http.StatusBadRequest,
	Unauthorized:          http.StatusUnauthorized,
	BudgetExceeded:        http.StatusPaymentRequired,
	Forbidden:             http.StatusForbidden,
	Stopped:               http.StatusForbidden,
	NotFound:              http.StatusNotFound,
	MethodNotAllowed:      http.StatusMethodNotAllowed,
	SessionBusy:           http.StatusConflict,
	Conflict:              http.StatusConflict,
	InvalidHistory:        http.StatusConflict,
	RequestTooLarge:       http.StatusRequestEntityTooLarge,
	ContextWindowExceeded: http.StatusRequestEntityTooLarge,
	SessionTooLarge:       http.StatusRequestEntityTooLarge,
	UnsupportedMediaType:  http.StatusUnsupportedMediaType,
	IdempotencyMismatch:   http.StatusUnprocessableEntity,
	RateLimited:           http.StatusTooManyRequests,
	TooManyTurns:          http.StatusTooManyRequests,
	Canceled:              StatusClientClosedRequest,
	Internal:              http.StatusInternalServerError,
	UpstreamError:         http.StatusBadGateway,
	UpstreamUnreachable:   http.StatusBadGateway,
	StoreUnavailable:      http.StatusServiceUnavailable,
	UpstreamOverloaded:    http.StatusServiceUnavailable,
	Interrupted:           http.StatusServiceUnavailable,
	ShuttingDown:          http.StatusServiceUnavailable,
	Timeout:               http.StatusGatewayTimeout,
}

// Status is the HTTP status of k; 500 for a kind this package does not
// define.
func (k Kind) Status() int {
	if s, ok := statuses[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// An Error is a failure as the client sees it, with its cause kept apart
// for the logs (tailscale's HTTPError split). The zero Status means
// Kind.Status().
type Error struct {
	Kind Kind
	// Status is the HTTP status; zero means Kind.Status().
	Status int
	// Message is safe to show the client: it never holds a cause's text
	// unless that text is about the client's own input.
	Message string
	// RetryAfter, when positive, is sent as a Retry-After header.
	RetryAfter time.Duration
	// RequestID is the upstream Claude request-id, for support.
	RequestID string
	// Err is the cause, logged and never sent.
	Err error
}

// Error returns the client message: an *Error is what the client sees.
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Kind)
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// StatusCode is e.Status, or e.Kind.Status() when e.Status is zero.
func (e *Error) StatusCode() int {
	if e.Status != 0 {
		return e.Status
	}
	return e.Kind.Status()
}

// LogLevel is the level to log e at. The rule is by status:
//
//   - 5xx is ERROR: something of ours, or of Claude's, failed.
//   - 402, 403, 409 and 429 are WARN: a refusal an operator should notice
//     (a spent budget, a kill switch, lease contention or a conflict, a
//     rate or concurrency limit), since many of them mean too little
//     capacity or a misbehaving client.
//   - Any other status (bad input, 401, 404, 405, 413, 422, 499 canceled)
//     is INFO: the client's own doing, routine on a public endpoint.
func (e *Error) LogLevel() slog.Level {
	switch s := e.StatusCode(); {
	case s >= 500:
		return slog.LevelError
	case s == http.StatusPaymentRequired, s == http.StatusForbidden, s == http.StatusConflict, s == http.StatusTooManyRequests:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// A Classified error knows how it looks to a client. Sentinels and error
// types of lambdagent's packages implement it, so [From] need not know
// them.
type Classified interface {
	// APIError returns a new *Error each call (the caller may change
	// it). Err is ignored: From sets it to the whole error chain. An
	// empty Message means the error's own text is about the client's
	// input and safe to send (a 4xx only; a 5xx gets a generic message).
	// Nil leaves the decision to From's defaults for the rest of the chain
	// (context errors, *http.MaxBytesError, else internal_error).
	APIError() *Error
}

// From classifies any error: the one classifier of lambdagent. The first
// *Error in err's chain wins; then the first [Classified] error; then
// context.DeadlineExceeded is Timeout, context.Canceled is Canceled and
// *http.MaxBytesError is RequestTooLarge; anything else is Internal with
// the message "internal error". The result is a new *Error with Status
// set and, unless err's chain held an *Error, Err set to err. From(nil) is
// nil.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var he *Error
	if errors.As(err, &he) {
		e := *he
		e.Status = e.StatusCode()
		return &e
	}
	var e *Error
	var c Classified
	if errors.As(err, &c) {
		e = c.APIError()
	}
	var mbe *http.MaxBytesError
	switch {
	case e != nil:
		if e.Message == "" && e.StatusCode() < 500 {
			e.Message = err.Error()
		}
	case errors.Is(err, context.DeadlineExceeded):
		e = &Error{Kind: Timeout, Message: "the turn did not finish in time; nothing was saved, retry"}
	case errors.Is(err, context.Canceled):
		e = &Error{Kind: Canceled, Message: "the request was canceled"}
	case errors.As(err, &mbe):
		e = &Error{Kind: RequestTooLarge, Message: "request body is larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes"}
	default:
		e = &Error{Kind: Internal}
	}
	if e.Kind == "" {
		e.Kind = Internal
	}
	if e.Message == "" {
		// A classification without a message it may send: say no more
		// than the status does.
		e.Message = http.StatusText(e.StatusCode())
		if e.Message == "" || e.StatusCode() == http.StatusInternalServerError {
			e.Message = "internal error"
		}
	}
	e.Status, e.Err = e.StatusCode(), err
	return e
}

// KindOf is From(err).Kind, or "" for a nil error: the value of a metric
// label or a log field.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	return From(err).Kind
}

// Write sends e as the JSON error body with e's status, and a Retry-After
// header in whole seconds (rounded up) when e.RetryAfter is positive.
// Headers set on w before the call (Allow, WWW-Authenticate) are kept.
func Write(w http.ResponseWriter, e *Error) {
	if e == nil {
		e = &Error{Kind: Internal, Message: "internal error"}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(e.RetryAfter.Seconds())), 10))
	}
	b := Body(e)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(e.StatusCode())
	_, _ = w.Write(b)
}

// WriteKind writes an error of kind k with message msg: the shortcut for
// handlers that refuse a request themselves (a wrong method, a bad token).
func WriteKind(w http.ResponseWriter, k Kind, msg string) {
	Write(w, &Error{Kind: k, Message: msg})
}

// StatusOfBody is the HTTP status of the error kind a JSON error body
// names (as [Body] writes it): what a client of a stream, where an error
// arrives as an event after the 200, reads in place of a status. 500 for
// a body it cannot read or a kind this package does not define.
func StatusOfBody(body []byte) int {
	var e struct {
		Error struct {
			Type Kind `json:"type"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Type.Status()
}

// Body is the JSON error body of e, newline included: what [Write] sends.
func Body(e *Error) []byte {
	var body struct {
		Error struct {
			Type      Kind   `json:"type"`
			Message   string `json:"message"`
			RequestID string `json:"request_id,omitempty"`
		} `json:"error"`
	}
	body.Error.Type, body.Error.Message, body.Error.RequestID = e.Kind, e.Message, e.RequestID
	b, err := json.Marshal(body)
	if err != nil { // cannot happen: strings only
		b = []byte(`{"error":{"type":"internal_error","message":"internal error"}}`)
	}
	return append(b, '\n')
}

// ErrShuttingDown is the cause with which a server that is stopping
// cancels the requests still in flight after its grace period
// (internal/httpserver); a turn stopped by it writes nothing and releases
// its session (see #17).
var ErrShuttingDown = Sentinel("the server is shutting down", Error{
	Kind: ShuttingDown, Message: "the server shut down before this turn finished; nothing was saved, retry", RetryAfter: time.Second})

// Sentinel returns a comparable error value (for errors.Is) whose text is
// text and which classifies as e: a package's sentinel that carries its own
// kind. For example:
//
//	ErrConflict = apierr.Sentinel("session: version conflict", apierr.Error{
//		Kind: apierr.Conflict, Message: "the session changed while the turn ran; nothing was saved, retry", RetryAfter: time.Second})
//
// An empty e.Message sends the text of the whole error chain: for errors
// about the client's input only.
func Sentinel(text string, e Error) error {
	e.Err = nil
	return &sentinel{text: text, e: e}
}

type sentinel struct {
	text string
	e    Error
}

func (s *sentinel) Error() string { return s.text }

func (s *sentinel) APIError() *Error {
	e := s.e
	return &e
}

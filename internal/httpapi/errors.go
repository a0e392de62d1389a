package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/session"
)

// An Error is an error with the status and type the client sees.
type Error struct {
	Status int
	Type   string
	// Message is safe to show the client.
	Message string
	// RetryAfter, when positive, is sent as a Retry-After header.
	RetryAfter time.Duration
	// RequestID is the upstream Claude request-id, for support.
	RequestID string
	// Err is the cause, logged and never sent.
	Err error
}

func (e *Error) Error() string { return e.Message }
func (e *Error) Unwrap() error { return e.Err }

// errorBody is the JSON error shape.
type errorBody struct {
	Error struct {
		Type      string `json:"type"`
		Message   string `json:"message"`
		RequestID string `json:"request_id,omitempty"`
	} `json:"error"`
}

// classify maps any error of a request to what the client sees.
func classify(err error) *Error {
	var he *Error
	if errors.As(err, &he) {
		return he
	}
	var busy *session.BusyError
	var mbe *http.MaxBytesError
	var se *claude.StatusError
	var te *claude.TransportError
	var limit *ratelimit.LimitError
	var budget *ratelimit.BudgetError
	var stopped *ratelimit.StoppedError
	switch {
	case errors.As(err, &mbe):
		return &Error{Status: http.StatusRequestEntityTooLarge, Type: "request_too_large", Message: "request body is larger than " + strconv.FormatInt(mbe.Limit, 10) + " bytes", Err: err}
	case errors.Is(err, session.ErrInvalidID), errors.Is(err, agent.ErrBadRequest):
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request", Message: err.Error(), Err: err}
	case errors.As(err, &busy):
		msg := "another turn of this session is in progress; retry later"
		if busy.SameKey {
			msg = "a request with this idempotency key is in progress; retry later for its answer"
		}
		return &Error{Status: http.StatusConflict, Type: "session_busy", Message: msg, RetryAfter: max(busy.RetryAfter, time.Second), Err: err}
	case errors.Is(err, session.ErrIdempotencyMismatch):
		return &Error{Status: http.StatusUnprocessableEntity, Type: "idempotency_mismatch", Message: "this Idempotency-Key was used with a different request", Err: err}
	case errors.Is(err, session.ErrConflict), errors.Is(err, session.ErrLeaseLost):
		return &Error{Status: http.StatusConflict, Type: "conflict", Message: "the session changed while the turn ran; nothing was saved, retry", RetryAfter: time.Second, Err: err}
	case errors.Is(err, agent.ErrBrokenHistory):
		return &Error{Status: http.StatusConflict, Type: "invalid_history", Message: err.Error(), Err: err}
	case errors.As(err, &stopped):
		return &Error{Status: http.StatusForbidden, Type: "stopped", Message: "this " + string(stopped.Scope) + " has been stopped by an operator", Err: err}
	case errors.As(err, &budget):
		return &Error{Status: http.StatusPaymentRequired, Type: "budget_exceeded", Err: err, RetryAfter: budget.RetryAfter,
			Message: "the daily budget of this " + string(budget.Scope) + " is spent; it renews at 00:00 UTC"}
	case errors.As(err, &limit):
		typ, msg := "rate_limited", "the "+limit.Kind+" limit of this "+string(limit.Scope)+" is reached; nothing was saved, retry later"
		if limit.Kind == ratelimit.KindConcurrency {
			typ, msg = "too_many_turns", "too many turns are in progress; nothing was saved, retry later"
		}
		return &Error{Status: http.StatusTooManyRequests, Type: typ, Message: msg, RetryAfter: max(limit.RetryAfter, time.Second), Err: err}
	case errors.Is(err, session.ErrUnavailable), errors.Is(err, ratelimit.ErrUnavailable):
		return &Error{Status: http.StatusServiceUnavailable, Type: "store_unavailable", Message: "the session store is unavailable; nothing was saved, retry", RetryAfter: time.Second, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusGatewayTimeout, Type: "timeout", Message: "the turn did not finish in time; nothing was saved, retry", Err: err}
	case errors.As(err, &se):
		return upstream(se)
	case errors.As(err, &te):
		return &Error{Status: http.StatusBadGateway, Type: "upstream_unreachable", Message: "Claude could not be reached; nothing was saved, retry", Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Status: 499, Type: "canceled", Message: "the request was canceled", Err: err}
	}
	return &Error{Status: http.StatusInternalServerError, Type: "internal_error", Message: "internal error", Err: err}
}

// upstream maps a Messages API error: the client did nothing wrong, so it
// gets 429 (rate limited, retry later), 503 (overloaded) or 502.
func upstream(se *claude.StatusError) *Error {
	e := &Error{Status: http.StatusBadGateway, Type: "upstream_error", RequestID: se.RequestID, Err: se,
		Message: "Claude answered " + strconv.Itoa(se.Code) + " " + se.Type + "; nothing was saved"}
	switch {
	case se.Code == http.StatusTooManyRequests:
		e.Status, e.Type, e.RetryAfter = http.StatusTooManyRequests, "rate_limited", max(se.Wait, time.Second)
	case se.Code == 529 || se.Code == http.StatusServiceUnavailable:
		e.Status, e.Type, e.RetryAfter = http.StatusServiceUnavailable, "upstream_overloaded", max(se.Wait, time.Second)
	}
	return e
}

// writeError sends err as a JSON error and logs its cause.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := classify(err)
	level := slog.LevelInfo
	if e.Status >= 500 {
		level = slog.LevelError
	}
	h.log.LogAttrs(r.Context(), level, "request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", e.Status), slog.String("type", e.Type), slog.Any("err", e.Err))
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
	var body errorBody
	body.Error.Type, body.Error.Message, body.Error.RequestID = e.Type, e.Message, e.RequestID
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"type":"internal_error","message":"encode response"}}`)
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte{'\n'})
}

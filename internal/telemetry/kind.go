package telemetry

import (
	"context"
	"errors"
	"net/http"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/session"
)

// Error kinds, the values of the error.type span attribute, the "error"
// log field and the kind label of lambdagent_errors_total. They are the
// error types of the HTTP API (internal/httpapi), so a metric, a log line
// and the answer a client got use one vocabulary.
const (
	KindInvalidRequest      = "invalid_request"
	KindSessionBusy         = "session_busy"
	KindIdempotencyMismatch = "idempotency_mismatch"
	KindConflict            = "conflict"
	KindInvalidHistory      = "invalid_history"
	KindStoreUnavailable    = "store_unavailable"
	KindTimeout             = "timeout"
	KindRateLimited         = "rate_limited"
	KindUpstreamOverloaded  = "upstream_overloaded"
	KindUpstreamError       = "upstream_error"
	KindUpstreamUnreachable = "upstream_unreachable"
	KindCanceled            = "canceled"
	KindInternal            = "internal_error"
)

// ErrorKind names the kind of a turn's error in a few words fit for a
// metric label: one of the Kind constants, or "" for a nil error. It never
// looks at the error's message.
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	var busy *session.BusyError
	var se *claude.StatusError
	var te *claude.TransportError
	switch {
	case errors.Is(err, session.ErrInvalidID), errors.Is(err, agent.ErrBadRequest):
		return KindInvalidRequest
	case errors.As(err, &busy):
		return KindSessionBusy
	case errors.Is(err, session.ErrIdempotencyMismatch):
		return KindIdempotencyMismatch
	case errors.Is(err, session.ErrConflict), errors.Is(err, session.ErrLeaseLost):
		return KindConflict
	case errors.Is(err, agent.ErrBrokenHistory):
		return KindInvalidHistory
	case errors.Is(err, session.ErrUnavailable):
		return KindStoreUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.As(err, &se):
		switch {
		case se.Code == http.StatusTooManyRequests:
			return KindRateLimited
		case se.Code == 529 || se.Code == http.StatusServiceUnavailable:
			return KindUpstreamOverloaded
		}
		return KindUpstreamError
	case errors.As(err, &te):
		return KindUpstreamUnreachable
	case errors.Is(err, context.Canceled):
		return KindCanceled
	}
	return KindInternal
}

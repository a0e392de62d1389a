package lambdafn

import (
	"fmt"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// Kinds of lambdafn's own failures, beside apierr's: what was wrong with a
// Lambda event, which the HTTP API never sees. A failed invocation's
// errorType is "lambdagent." + apierr.From(err).Kind.
const (
	kindUnknownEvent     apierr.Kind = "unknown_event"
	kindUnsupportedEvent apierr.Kind = "unsupported_event"
	kindInvalidEvent     apierr.Kind = "invalid_event"
	kindNoReplyClient    apierr.Kind = "no_reply_client"
	kindNoWorkflows      apierr.Kind = "no_workflows"
)

// Sentinels, each carrying its kind ([apierr.Sentinel]).
var (
	// ErrUnknownEvent means the payload is JSON but matches no event shape
	// lambdafn knows (API Gateway v1/v2, Function URL, SQS, EventBridge,
	// direct {"session_id","message"}).
	ErrUnknownEvent = apierr.Sentinel("lambdafn: unknown event", apierr.Error{Kind: kindUnknownEvent, Status: 400})
	// ErrUnsupportedEvent means the payload is an AWS event lambdafn
	// recognises but does not serve (ALB, WebSocket, S3 records, …).
	ErrUnsupportedEvent = apierr.Sentinel("lambdafn: unsupported event", apierr.Error{Kind: kindUnsupportedEvent, Status: 400})
	// ErrInvalidEvent means the payload has the shape of a known event but
	// a field is missing or malformed (bad JSON, bad base64, bad method).
	ErrInvalidEvent = apierr.Sentinel("lambdafn: invalid event", apierr.Error{Kind: kindInvalidEvent, Status: 400})
	// ErrNoReplyClient means a turn names a reply_to queue but the
	// Function has no SQS client (Config.SQS); the turn did not run.
	ErrNoReplyClient = apierr.Sentinel("lambdafn: reply_to given but no SQS client configured", apierr.Error{
		Kind: kindNoReplyClient, Status: 500, Message: "reply_to given but no SQS client configured"})
)

// ErrNoWorkflows means a workflow event came to a Function without
// Config.Runs (no LAMBDAGENT_WORKFLOWS); nothing started. Not permanent:
// the message survives until the function is configured.
var ErrNoWorkflows = apierr.Sentinel("lambdafn: workflow event but no workflows configured", apierr.Error{
	Kind: kindNoWorkflows, Status: 500, Message: "workflow event but no workflows are configured (LAMBDAGENT_WORKFLOWS)"})

// A StatusError is how a direct invocation or an EventBridge event fails
// when the handler answers with a non-2xx status: the turn did not
// succeed, so the invocation must not either (Lambda then retries
// asynchronous invocations and sends the last failure to the function's
// on-failure destination).
type StatusError struct {
	// Code is the HTTP status the handler answered.
	Code int
	// Type and Message come from the JSON error body
	// {"error":{"type":…,"message":…}}; Type is "http_<code>" when the body
	// has none.
	Type    string
	Message string
	// RetryAfter is the handler's Retry-After; zero if it sent none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("lambdafn: status %d %s: %s", e.Code, e.Type, e.Message)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	return s
}

// APIError is the handler's answer as it gave it: its type (which may be
// "http_<code>", not one of apierr's kinds), status, message and
// Retry-After.
func (e *StatusError) APIError() *apierr.Error {
	return &apierr.Error{Kind: apierr.Kind(e.Type), Status: e.Code, Message: e.Message, RetryAfter: e.RetryAfter}
}

// Retryable reports whether running the same request again may succeed:
// everything but the permanent statuses 400, 413 and 422 (a malformed or
// oversized request, an idempotency key reused for another request).
func (e *StatusError) Retryable() bool { return !permanent(e.Code) }

// permanent reports whether a status says the request itself is wrong, so
// that delivering it again cannot help. Auth failures (401, 403), 404 and
// 405 are not permanent: they mean the function is misconfigured, and the
// message should survive until that is fixed (or reach the dead-letter
// queue).
func permanent(code int) bool {
	return code == 400 || code == 413 || code == 422
}

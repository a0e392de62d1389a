// Package apierr is lambdagent's one vocabulary for errors: the kind of a
// failure, the HTTP status it gets, the message a client may see and the
// level it is logged at.
//
// Errors carry their own classification: a package's sentinels and error
// types implement [Classified] (session.ErrConflict, ratelimit.BudgetError,
// claude.StatusError, …), and [From] is the one function that reads it.
// The HTTP API, the telemetry (logs, the kind label of
// lambdagent_errors_total, the error.type span attribute), the Lambda
// adapter and the /mcp tool all call From, so a client's answer, a log
// line and a metric name a failure alike. Before this package the
// classification was written twice and the copies drifted: the limiter's
// refusals were logged at ERROR as internal_error (see #12).
//
// [Write] is the one writer of the JSON error body,
//
//	{"error":{"type":"…","message":"…","request_id":"…"}}
//
// with request_id only when Claude gave one.
//
// The package imports only the standard library, so that any package,
// the session store included, may depend on it.
package apierr

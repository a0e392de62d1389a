// Package httpapi is lambdagent's HTTP API, written once as an
// http.Handler: the container server serves it directly and the Lambda
// adapter (internal/lambdafn) feeds every event source through it.
//
// Errors are JSON, {"error":{"type":…,"message":…}}, mapped from Go errors
// to a status by apierr.From, the one classifier, and written by
// apierr.Write ([writeError]); the cause is logged and the client gets a
// safe message.
package httpapi

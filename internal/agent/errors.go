package agent

import "github.com/lambdagent/lambdagent/internal/apierr"

// Sentinels. They carry their own kind ([apierr.Sentinel]); their client
// message is the error's own text, which says what is wrong and holds no
// secret.
var (
	// ErrBadRequest means the turn request is malformed (empty message).
	ErrBadRequest = apierr.Sentinel("agent: bad request", apierr.Error{Kind: apierr.InvalidRequest})
	// ErrBrokenHistory means the stored transcript breaks the Messages API
	// rules in a way the turn cannot repair; it is never sent to Claude.
	ErrBrokenHistory = apierr.Sentinel("agent: stored history breaks the Messages API rules", apierr.Error{Kind: apierr.InvalidHistory})
	// ErrMessageTooLarge means the turn's message is over
	// Config.MaxMessageBytes; the wrapping error names both sizes.
	ErrMessageTooLarge = apierr.Sentinel("agent: message too large", apierr.Error{Kind: apierr.RequestTooLarge})
	// ErrSessionFull means the session's history would pass
	// Config.MaxSessionBytes: the turn is refused before the model is
	// called and nothing is saved. The wrapping error names the limit.
	ErrSessionFull = apierr.Sentinel("agent: session full", apierr.Error{Kind: apierr.SessionTooLarge})
)

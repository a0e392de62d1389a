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
)

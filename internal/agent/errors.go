package agent

import "errors"

var (
	// ErrBadRequest means the turn request is malformed (empty message).
	ErrBadRequest = errors.New("agent: bad request")
	// ErrBrokenHistory means the stored transcript breaks the Messages API
	// rules in a way the turn cannot repair; it is never sent to Claude.
	ErrBrokenHistory = errors.New("agent: stored history breaks the Messages API rules")
)

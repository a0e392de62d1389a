package workflow

import (
	"fmt"
	"strings"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// A Problem is one thing wrong with a definition. Its text names the
// file (when the definition came from one), the step (when the problem
// is in one) and what is wrong.
type Problem struct {
	File string // empty for a definition built in Go
	Step string // empty for a problem of the whole definition
	Msg  string
}

func (p Problem) Error() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		b.WriteString(": ")
	}
	if p.Step != "" {
		fmt.Fprintf(&b, "step %q: ", p.Step)
	}
	b.WriteString(p.Msg)
	return b.String()
}

// An InvalidError lists every problem found in a definition (or in the
// input given to it): a caller fixes them all at once instead of one per
// attempt. It is a 400 invalid_request whose message is the list.
type InvalidError struct {
	Problems []Problem
}

func (e *InvalidError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return "workflow: invalid definition: " + strings.Join(lines, "; ")
}

// APIError shows the problems to the client: they say what to fix and
// hold nothing secret.
func (e *InvalidError) APIError() *apierr.Error {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return &apierr.Error{Kind: apierr.InvalidRequest, Message: strings.Join(lines, "; ")}
}

// ErrInvalidInput means a run's input does not match the definition's
// input schema; nothing was started. Its client message is the error's
// text.
var ErrInvalidInput = apierr.Sentinel("workflow: input does not match the schema", apierr.Error{Kind: apierr.InvalidRequest})

package workflow

import (
	"encoding/json"
	"text/template"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
)

// A Definition is a workflow: what a run starts from. Build one in Go or
// read one with [Parse] or [Load], then call [Definition.Validate] before
// running it.
type Definition struct {
	// Name names the workflow in POST /v1/workflows/{name}/runs.
	Name string `json:"name"`
	// Input, if set, is the JSON Schema a run's input must match.
	Input json.RawMessage `json:"input,omitempty"`
	// Steps run in order, unless a branch or on_timeout says otherwise.
	Steps []Step `json:"steps"`

	// File is where the definition was read from, for error messages.
	File string `json:"-"`

	schema *jsonschema.Resolved
	tmpls  map[string]*template.Template // by template text; set by Validate
}

// A Step is one step of a definition. Exactly one of Prompt, Tool,
// Parallel, Map, Branch, Sleep and WaitForEvent is set: it is the step's
// kind.
type Step struct {
	// ID names the step, unique in the definition: templates read its
	// result as .steps.<id>.output. Letters, digits and '_', not starting
	// with a digit, so that the template syntax can reach it.
	ID string `json:"id"`

	// Prompt is a message (a template) sent to Claude as one turn, in the
	// run's own conversation or in Session's.
	Prompt  string `json:"prompt,omitempty"`
	Session string `json:"session,omitempty"`

	// Tool names one MCP tool to call with Input, whose string values are
	// templates. A string that starts with {{ and ends with }} and renders
	// to JSON becomes that JSON value ("{{json .steps.a.output}}" passes
	// an object).
	Tool  string          `json:"tool,omitempty"`
	Input json.RawMessage `json:"input,omitempty"`

	// Parallel runs its branches (each a list of steps) at once and joins;
	// its output is the list of each branch's last output.
	Parallel [][]Step `json:"parallel,omitempty"`

	// Map runs its steps once for each element of a list.
	Map *Map `json:"map,omitempty"`

	// Branch picks the next step: the first case whose If renders true
	// (a case without If always matches). With no match the run goes on
	// with the next step. Its output is the id chosen ("" for none).
	Branch []Case `json:"branch,omitempty"`

	// Sleep pauses the run without holding a worker.
	Sleep *Sleep `json:"sleep,omitempty"`

	// WaitForEvent pauses the run until POST /v1/runs/{id}/events/{event}
	// (or until the event already sent is found); its output is the
	// event's body.
	WaitForEvent *Wait `json:"wait_for_event,omitempty"`

	// Retry retries a failing prompt or tool step.
	Retry *Retry `json:"retry,omitempty"`
	// Timeout bounds each attempt of a prompt or tool step ("30s").
	Timeout string `json:"timeout,omitempty"`
}

// Map is the map step: Steps run for each element of the JSON list Over
// renders to, at most MaxConcurrency at once (zero: all). Inside, the
// templates also see .item and .index. Its output is the list of each
// element's last output, in order.
type Map struct {
	Over           string `json:"over"`
	MaxConcurrency int    `json:"max_concurrency,omitempty"`
	Steps          []Step `json:"steps"`
}

// A Case of a branch step.
type Case struct {
	// If is a template; the case matches unless it renders to "", "false",
	// "0" or "<no value>" (spaces trimmed).
	If string `json:"if,omitempty"`
	// Next is the id of a step of the same list, or "end" to end the list.
	Next string `json:"next"`
}

// Sleep waits For a duration ("90s", "2h") or Until a time (a template
// rendering RFC 3339).
type Sleep struct {
	For   string `json:"for,omitempty"`
	Until string `json:"until,omitempty"`
}

// Wait is the wait_for_event step.
type Wait struct {
	// Event is the name the event is posted under.
	Event string `json:"event"`
	// Timeout, if set, bounds the wait ("24h").
	Timeout string `json:"timeout,omitempty"`
	// OnTimeout says what a timeout does: "fail" (the default) fails the
	// run, "continue" goes on with a null output, and a step id of the
	// same list goes there.
	OnTimeout string `json:"on_timeout,omitempty"`
}

// Retry is a step's retry policy.
type Retry struct {
	// Attempts is the most attempts, the first included (1 to 100).
	Attempts int `json:"attempts"`
	// Backoff is the wait before the second attempt, doubled after each
	// ("1s"). Empty means none.
	Backoff string `json:"backoff,omitempty"`
}

// End is the Case.Next that ends a list of steps.
const End = "end"

// Kind names the step's kind: "prompt", "tool", "parallel", "map",
// "branch", "sleep" or "wait_for_event"; "" when none is set.
func (s *Step) Kind() string {
	k, _ := s.kinds()
	return k
}

// kinds returns the step's kind and how many kinds are set.
func (s *Step) kinds() (string, int) {
	kind, n := "", 0
	set := func(ok bool, name string) {
		if ok {
			if n == 0 {
				kind = name
			}
			n++
		}
	}
	set(s.Prompt != "", "prompt")
	set(s.Tool != "", "tool")
	set(len(s.Parallel) > 0, "parallel")
	set(s.Map != nil, "map")
	set(len(s.Branch) > 0, "branch")
	set(s.Sleep != nil, "sleep")
	set(s.WaitForEvent != nil, "wait_for_event")
	return kind, n
}

// Attempts is how many attempts the step gets: Retry.Attempts or 1.
func (s *Step) Attempts() int {
	if s.Retry == nil || s.Retry.Attempts < 1 {
		return 1
	}
	return s.Retry.Attempts
}

// Backoff is the wait before attempt n+1 after attempt n failed.
func (s *Step) Backoff(n int) time.Duration {
	if s.Retry == nil {
		return 0
	}
	d := duration(s.Retry.Backoff)
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return d
}

// AttemptTimeout is Timeout as a duration; zero means none.
func (s *Step) AttemptTimeout() time.Duration { return duration(s.Timeout) }

// duration parses a duration Validate has checked; "" is zero.
func duration(s string) time.Duration {
	d, _ := time.ParseDuration(s)
	return d
}

// ParseDuration parses a duration of a definition ("" is zero); the
// engine uses it for Sleep.For and Wait.Timeout.
func ParseDuration(s string) time.Duration { return duration(s) }

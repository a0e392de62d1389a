package workflow

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/lambdagent/lambdagent/internal/session"
)

// ValidateOptions says what Validate can check beyond the definition.
type ValidateOptions struct {
	// Tools, if set, reports whether a tool name is known (the MCP tools
	// of the deployment): a tool step naming another is refused. Nil
	// means the tools are not known and any name passes.
	Tools func(name string) bool
}

// MaxSteps bounds the steps of a definition, nested ones included.
const MaxSteps = 10000

// Validate checks everything about d that does not need a run: the
// name, the input schema, each step's kind and fields, that ids are
// unique, that templates parse and read only steps that exist, that
// branches and on_timeout name steps of their own list, that no loop
// lacks a way out, and (with opts.Tools) that tools exist. It returns an
// *InvalidError listing every problem, or nil. A valid d keeps its
// parsed templates and schema, so Validate must run before d is used.
func (d *Definition) Validate(opts ValidateOptions) error {
	v := &validator{d: d, opts: opts, ids: map[string]bool{}, tmpls: map[string]*template.Template{}}
	if d.Name == "" {
		v.add("", "name is required")
	} else if err := session.ValidID(d.Name); err != nil || strings.ContainsAny(d.Name, ":@") {
		v.add("", fmt.Sprintf("name %q: use 1 to %d letters, digits, '-', '_' or '.'", d.Name, session.MaxIDLen))
	}
	if len(d.Input) > 0 {
		var s jsonschema.Schema
		if err := json.Unmarshal(d.Input, &s); err != nil {
			v.add("", "input schema: "+err.Error())
		} else if r, err := s.Resolve(nil); err != nil {
			v.add("", "input schema: "+err.Error())
		} else {
			d.schema = r
		}
	}
	if len(d.Steps) == 0 {
		v.add("", "steps: at least one step is required")
	}
	v.collect(d.Steps)
	v.list(d.Steps)
	if len(v.problems) > 0 {
		return &InvalidError{Problems: v.problems}
	}
	d.tmpls = v.tmpls
	return nil
}

// CheckInput checks a run's input against the input schema. A
// definition without a schema takes any JSON value.
func (d *Definition) CheckInput(input json.RawMessage) error {
	if d.schema == nil {
		return nil
	}
	var doc any
	if len(input) > 0 {
		if err := json.Unmarshal(input, &doc); err != nil {
			return fmt.Errorf("%w: input is not JSON: %v", ErrInvalidInput, err)
		}
	}
	if err := d.schema.Validate(doc); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	return nil
}

type validator struct {
	d        *Definition
	opts     ValidateOptions
	ids      map[string]bool
	tmpls    map[string]*template.Template
	problems []Problem
	count    int
}

func (v *validator) add(step, msg string) {
	v.problems = append(v.problems, Problem{File: v.d.File, Step: step, Msg: msg})
}

// collect records every id, nested ones included, and reports
// duplicates, so that templates may read a step defined anywhere.
func (v *validator) collect(steps []Step) {
	for i := range steps {
		s := &steps[i]
		v.count++
		if v.count == MaxSteps+1 {
			v.add("", fmt.Sprintf("more than %d steps", MaxSteps))
		}
		switch {
		case s.ID == "":
			v.add(fmt.Sprintf("#%d", i+1), "id is required")
		case !validStepID(s.ID):
			v.add(s.ID, "id: use letters, digits and '_', not starting with a digit")
		case s.ID == End:
			v.add(s.ID, `id "end" is reserved for branch targets`)
		case v.ids[s.ID]:
			v.add(s.ID, "duplicate id")
		}
		v.ids[s.ID] = true
		for _, b := range s.Parallel {
			v.collect(b)
		}
		if s.Map != nil {
			v.collect(s.Map.Steps)
		}
	}
}

func validStepID(id string) bool {
	if id == "" || len(id) > 64 || ('0' <= id[0] && id[0] <= '9') {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// template checks that text parses and reads only known steps.
func (v *validator) template(step, field, text string) {
	if !hasAction(text) {
		return
	}
	if _, ok := v.tmpls[text]; ok {
		return
	}
	t, err := parseTemplate(text)
	if err != nil {
		v.add(step, fmt.Sprintf("%s: template does not parse: %v", field, strings.TrimPrefix(err.Error(), "template: :")))
		return
	}
	for _, ref := range stepRefs(t) {
		if !v.ids[ref] {
			v.add(step, fmt.Sprintf("%s: unknown step reference .steps.%s", field, ref))
		}
	}
	v.tmpls[text] = t
}

// jsonTemplates checks the templates in the strings of a JSON value.
func (v *validator) jsonTemplates(step, field string, raw json.RawMessage) {
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		v.add(step, field+": not JSON: "+err.Error())
		return
	}
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case string:
			v.template(step, path, x)
		case map[string]any:
			for k, e := range x {
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk(field, doc)
}

func (v *validator) duration(step, field, s string) {
	if s == "" {
		return
	}
	if d, err := time.ParseDuration(s); err != nil || d <= 0 {
		v.add(step, fmt.Sprintf("%s: %q is not a positive duration such as \"30s\" or \"2h\"", field, s))
	}
}

// list checks the steps of one list and those nested in them.
func (v *validator) list(steps []Step) {
	index := map[string]int{}
	for i, s := range steps {
		index[s.ID] = i
	}
	target := func(id, field, next string) {
		if next == End {
			return
		}
		if _, ok := index[next]; !ok {
			if v.ids[next] {
				v.add(id, fmt.Sprintf("%s: step %q is not in the same list of steps", field, next))
			} else {
				v.add(id, fmt.Sprintf("%s: unknown step reference %q", field, next))
			}
		}
	}
	for i := range steps {
		s := &steps[i]
		id := s.ID
		if id == "" {
			id = fmt.Sprintf("#%d", i+1)
		}
		kind, n := s.kinds()
		switch {
		case n == 0:
			v.add(id, "no kind: set one of prompt, tool, parallel, map, branch, sleep, wait_for_event")
		case n > 1:
			v.add(id, "more than one kind: set only one of prompt, tool, parallel, map, branch, sleep, wait_for_event")
		}
		if s.Retry != nil && (s.Retry.Attempts < 1 || s.Retry.Attempts > 100) {
			v.add(id, "retry.attempts: must be 1 to 100")
		}
		if s.Retry != nil {
			v.duration(id, "retry.backoff", s.Retry.Backoff)
		}
		v.duration(id, "timeout", s.Timeout)
		if (s.Retry != nil || s.Timeout != "") && kind != "prompt" && kind != "tool" {
			v.add(id, "retry and timeout apply to prompt and tool steps only")
		}
		if s.Session != "" && kind != "prompt" {
			v.add(id, "session applies to prompt steps only")
		}
		if len(s.Input) > 0 && kind != "tool" {
			v.add(id, "input applies to tool steps only")
		}
		switch kind {
		case "prompt":
			v.template(id, "prompt", s.Prompt)
			if s.Session != "" {
				if err := session.ValidID(s.Session); err != nil {
					v.add(id, "session: "+err.Error())
				}
			}
		case "tool":
			if v.opts.Tools != nil && !v.opts.Tools(s.Tool) {
				v.add(id, fmt.Sprintf("unknown tool %q", s.Tool))
			}
			if len(s.Input) > 0 {
				if t := strings.TrimSpace(string(s.Input)); !strings.HasPrefix(t, "{") {
					v.add(id, "input: must be an object")
				} else {
					v.jsonTemplates(id, "input", s.Input)
				}
			}
		case "parallel":
			for j, b := range s.Parallel {
				if len(b) == 0 {
					v.add(id, fmt.Sprintf("parallel[%d]: a branch needs at least one step", j))
				}
				v.list(b)
			}
		case "map":
			if s.Map.Over == "" {
				v.add(id, "map.over: required (a template rendering a JSON list)")
			}
			v.template(id, "map.over", s.Map.Over)
			if s.Map.MaxConcurrency < 0 {
				v.add(id, "map.max_concurrency: must not be negative")
			}
			if len(s.Map.Steps) == 0 {
				v.add(id, "map.steps: at least one step is required")
			}
			v.list(s.Map.Steps)
		case "branch":
			for j, c := range s.Branch {
				v.template(id, fmt.Sprintf("branch[%d].if", j), c.If)
				if c.Next == "" {
					v.add(id, fmt.Sprintf("branch[%d].next: required (a step id or %q)", j, End))
				} else {
					target(id, fmt.Sprintf("branch[%d].next", j), c.Next)
				}
			}
		case "sleep":
			switch {
			case (s.Sleep.For == "") == (s.Sleep.Until == ""):
				v.add(id, "sleep: set exactly one of for and until")
			case s.Sleep.For != "":
				v.duration(id, "sleep.for", s.Sleep.For)
			default:
				v.template(id, "sleep.until", s.Sleep.Until)
				if !hasAction(s.Sleep.Until) {
					if _, err := time.Parse(time.RFC3339, s.Sleep.Until); err != nil {
						v.add(id, fmt.Sprintf("sleep.until: %q is not an RFC 3339 time", s.Sleep.Until))
					}
				}
			}
		case "wait_for_event":
			w := s.WaitForEvent
			if w.Event == "" || session.ValidID(w.Event) != nil {
				v.add(id, "wait_for_event.event: required, letters, digits and -_.:@")
			}
			v.duration(id, "wait_for_event.timeout", w.Timeout)
			switch w.OnTimeout {
			case "", "fail", "continue":
			default:
				target(id, "wait_for_event.on_timeout", w.OnTimeout)
			}
		}
	}
	v.exits(steps, index)
}

// exits reports the steps of a list from which its end cannot be reached
// whatever the branches decide: a loop with no way out. Each step goes on
// to the next, except that a branch may jump to its cases' targets (and
// falls through only when its last case has a condition), and a
// wait_for_event may jump to its on_timeout step.
func (v *validator) exits(steps []Step, index map[string]int) {
	n := len(steps)
	next := make([][]int, n)
	for i, s := range steps {
		fall := true
		add := func(id string) {
			if id == End {
				next[i] = append(next[i], n)
			} else if j, ok := index[id]; ok {
				next[i] = append(next[i], j)
			}
		}
		if len(s.Branch) > 0 {
			for _, c := range s.Branch {
				add(c.Next)
				if c.If == "" {
					fall = false
					break
				}
			}
		}
		if w := s.WaitForEvent; w != nil && w.OnTimeout != "" && w.OnTimeout != "fail" && w.OnTimeout != "continue" {
			add(w.OnTimeout)
		}
		if fall {
			next[i] = append(next[i], i+1)
		}
	}
	// Walk backwards from the end: which steps can reach it?
	reach := make([]bool, n+1)
	reach[n] = true
	for changed := true; changed; {
		changed = false
		for i := n - 1; i >= 0; i-- {
			if !reach[i] && slices.ContainsFunc(next[i], func(j int) bool { return reach[j] }) {
				reach[i], changed = true, true
			}
		}
	}
	for i := range n {
		if !reach[i] {
			v.add(steps[i].ID, "cycle without exit: no path from this step reaches the end of its list")
			return
		}
	}
}

package workflow

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadExample(t *testing.T) {
	defs, err := Load("testdata/triage.yaml", ValidateOptions{Tools: func(n string) bool { return n == "lookup" }})
	if err != nil {
		t.Fatal(err)
	}
	d := defs[0]
	if d.Name != "triage" || len(d.Steps) != 4 || d.Steps[0].Attempts() != 3 || d.Steps[3].Kind() != "wait_for_event" {
		t.Fatalf("definition = %+v", d)
	}
	if err := d.CheckInput(json.RawMessage(`{"ticket":"T-1"}`)); err != nil {
		t.Errorf("good input: %v", err)
	}
	err = d.CheckInput(json.RawMessage(`{"ticket":7}`))
	if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "ticket") {
		t.Errorf("bad input: %v", err)
	}
	data := func() map[string]any {
		return map[string]any{"input": map[string]any{"ticket": "T-1"}, "steps": map[string]any{"fetch": map[string]any{"output": map[string]any{"priority": "high", "n": 3.0}}}}
	}
	got, err := d.RenderJSON(json.RawMessage(`{"id":"{{.input.ticket}}","n":"{{.steps.fetch.output.n}}","all":"{{json .steps.fetch.output}}"}`), data)
	if err != nil || string(got) != `{"all":{"n":3,"priority":"high"},"id":"T-1","n":3}` {
		t.Errorf("RenderJSON = %s, %v", got, err)
	}
	s, err := d.Render(d.Steps[2].Branch[0].If, data)
	if err != nil || !Truthy(s) {
		t.Errorf("branch if = %q, %v", s, err)
	}
}

// TestInvalid shows that each kind of mistake is refused with a message
// naming the file, the step and the problem.
func TestInvalid(t *testing.T) {
	tools := ValidateOptions{Tools: func(n string) bool { return n == "lookup" }}
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown ref", "name: w\nsteps:\n- {id: a, prompt: '{{.steps.nope.output}}'}", `f.yaml: step "a": prompt: unknown step reference .steps.nope`},
		{"duplicate", "name: w\nsteps:\n- {id: a, prompt: x}\n- {id: a, prompt: y}", `f.yaml: step "a": duplicate id`},
		{"duplicate nested", "name: w\nsteps:\n- {id: a, prompt: x}\n- {id: p, parallel: [[{id: a, prompt: y}]]}", `step "a": duplicate id`},
		{"cycle", "name: w\nsteps:\n- {id: a, prompt: x}\n- id: b\n  branch: [{next: a}]", `step "a": cycle without exit`},
		{"bad template", "name: w\nsteps:\n- {id: a, prompt: '{{.input'}", `step "a": prompt: template does not parse`},
		{"unknown tool", "name: w\nsteps:\n- {id: a, tool: nuke}", `step "a": unknown tool "nuke"`},
		{"two kinds", "name: w\nsteps:\n- {id: a, prompt: x, tool: lookup}", `step "a": more than one kind`},
		{"no kind", "name: w\nsteps:\n- {id: a}", `step "a": no kind`},
		{"bad next", "name: w\nsteps:\n- id: a\n  branch: [{next: zz}]", `step "a": branch[0].next: unknown step reference "zz"`},
		{"bad duration", "name: w\nsteps:\n- {id: a, sleep: {for: soon}}", `step "a": sleep.for: "soon" is not a positive duration`},
		{"unknown field", "name: w\nsteps:\n- {id: a, promt: x}", `f.yaml: bad shape: unknown field "promt"`},
		{"bad schema", "name: w\ninput: {type: 7}\nsteps:\n- {id: a, prompt: x}", `f.yaml: input schema:`},
		{"no name", "steps:\n- {id: a, prompt: x}", `f.yaml: name is required`},
		{"not yaml", "name: [", `f.yaml: not YAML or JSON`},
		{"map without over", "name: w\nsteps:\n- id: m\n  map: {steps: [{id: x, prompt: y}]}", `step "m": map.over: required`},
		{"timeout target", "name: w\nsteps:\n- id: a\n  wait_for_event: {event: e, on_timeout: nowhere}", `step "a": wait_for_event.on_timeout: unknown step reference "nowhere"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Parse("f.yaml", []byte(tc.yaml))
			if err == nil {
				err = d.Validate(tools)
			}
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want an *InvalidError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoopWithExit(t *testing.T) {
	d, err := Parse("f.json", []byte(`{"name":"w","steps":[{"id":"a","prompt":"x"},{"id":"b","branch":[{"if":"{{.steps.a.output}}","next":"a"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(ValidateOptions{}); err != nil {
		t.Errorf("a conditional loop is valid: %v", err)
	}
}

func TestLoadDirRefusesDuplicateNames(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.yaml", "b.json"} {
		os.WriteFile(filepath.Join(dir, f), []byte(`{"name":"same","steps":[{"id":"a","prompt":"x"}]}`), 0o600)
	}
	_, err := Load(dir, ValidateOptions{})
	if err == nil || !strings.Contains(err.Error(), `workflow "same" is also defined in`) {
		t.Errorf("err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	seed, _ := os.ReadFile("testdata/triage.yaml")
	f.Add(seed)
	f.Add([]byte(`{"name":"w","steps":[{"id":"a","map":{"over":"{{json .input}}","steps":[{"id":"b","prompt":"{{.item}}"}]}}]}`))
	f.Add([]byte("name: w\nsteps:\n- id: b\n  branch: [{next: b}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("fuzz", data)
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("Parse error is not an *InvalidError: %v", err)
			}
			return
		}
		if err := d.Validate(ValidateOptions{}); err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || len(ie.Problems) == 0 {
				t.Fatalf("Validate error is not a non-empty *InvalidError: %v", err)
			}
		}
	})
}

package workflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// funcs are the functions templates may call besides text/template's.
var funcs = template.FuncMap{
	// json encodes a value as JSON: "{{json .steps.list.output}}".
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
}

// parseTemplate parses text as a step's template. missingkey=zero makes
// a missing map key render "<no value>" rather than fail the run.
func parseTemplate(text string) (*template.Template, error) {
	return template.New("").Funcs(funcs).Option("missingkey=zero").Parse(text)
}

// hasAction reports whether text has a template action at all; text
// without one renders to itself and needs no data.
func hasAction(text string) bool { return strings.Contains(text, "{{") }

// Render executes the template text (checked by Validate) over data, the
// map {"input", "steps": {id: {"output"}}, "item", "index"} the engine
// builds.
func (d *Definition) Render(text string, data func() map[string]any) (string, error) {
	if !hasAction(text) {
		return text, nil
	}
	t := d.tmpls[text]
	if t == nil {
		var err error
		if t, err = parseTemplate(text); err != nil {
			return "", err
		}
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data()); err != nil {
		return "", err
	}
	return b.String(), nil
}

// RenderJSON renders every string of the JSON value v as a template. A
// string that starts with {{ and ends with }} and renders to JSON
// becomes that JSON value, so a tool can be passed a number or an
// object.
func (d *Definition) RenderJSON(v json.RawMessage, data func() map[string]any) (json.RawMessage, error) {
	if !bytes.Contains(v, []byte("{{")) {
		return v, nil
	}
	var doc any
	if err := json.Unmarshal(v, &doc); err != nil {
		return nil, err
	}
	out, err := d.renderValue(doc, data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(out)
}

func (d *Definition) renderValue(v any, data func() map[string]any) (any, error) {
	switch v := v.(type) {
	case string:
		s, err := d.Render(v, data)
		if err != nil {
			return nil, err
		}
		if whole(v) {
			var j any
			if json.Unmarshal([]byte(s), &j) == nil {
				return j, nil
			}
		}
		return s, nil
	case map[string]any:
		for k, e := range v {
			r, err := d.renderValue(e, data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			v[k] = r
		}
		return v, nil
	case []any:
		for i, e := range v {
			r, err := d.renderValue(e, data)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			v[i] = r
		}
		return v, nil
	}
	return v, nil
}

// whole reports whether s is template actions from end to end ("{{…}}",
// "{{if …}}{{…}}{{else}}1{{end}}"): its rendering, when JSON, is meant
// as a value.
func whole(s string) bool {
	s = strings.TrimSpace(s)
	return strings.HasPrefix(s, "{{") && strings.HasSuffix(s, "}}")
}

// Truthy is how a branch's If reads its rendered text.
func Truthy(s string) bool {
	switch strings.TrimSpace(s) {
	case "", "false", "0", "<no value>", "null":
		return false
	}
	return true
}

// stepRefs returns the step ids a template reads as .steps.<id>.
func stepRefs(t *template.Template) []string {
	var refs []string
	var walk func(n parse.Node)
	field := func(ident []string) {
		if len(ident) >= 2 && ident[0] == "steps" {
			refs = append(refs, ident[1])
		}
	}
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case nil:
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.ActionNode:
			walk(n.Pipe)
		case *parse.PipeNode:
			if n == nil {
				return
			}
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			field(n.Ident)
		case *parse.VariableNode:
			if len(n.Ident) > 0 && n.Ident[0] == "$" {
				field(n.Ident[1:])
			}
		case *parse.ChainNode:
			walk(n.Node)
		case *parse.IfNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			walk(n.Pipe)
		}
	}
	if t.Tree != nil {
		walk(t.Tree.Root)
	}
	return refs
}

package workflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v4"
)

// MaxFileBytes bounds a definition file.
const MaxFileBytes = 1 << 20

// Parse reads one definition from YAML or JSON (JSON is YAML) and
// validates its shape: unknown fields are errors, so a misspelt key is
// not silently ignored. file names the source in errors. Call
// [Definition.Validate] for the rest.
func Parse(file string, data []byte) (*Definition, error) {
	if len(data) > MaxFileBytes {
		return nil, &InvalidError{Problems: []Problem{{File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxFileBytes)}}}
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &InvalidError{Problems: []Problem{{File: file, Msg: "not YAML or JSON: " + err.Error()}}}
	}
	// One decoder for both syntaxes: YAML becomes JSON, which decodes
	// into the structs with unknown fields refused.
	js, err := json.Marshal(jsonable(doc))
	if err != nil {
		return nil, &InvalidError{Problems: []Problem{{File: file, Msg: "cannot be read as JSON: " + err.Error()}}}
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	d := &Definition{}
	if err := dec.Decode(d); err != nil {
		return nil, &InvalidError{Problems: []Problem{{File: file, Msg: "bad shape: " + strings.TrimPrefix(err.Error(), "json: ")}}}
	}
	d.File = file
	return d, nil
}

// jsonable turns YAML's map[any]any (non-string keys) into something
// encoding/json takes, with the keys formatted as text.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	}
	return v
}

// Load reads the definitions of path: one file, or every .yaml, .yml and
// .json file of a directory (not its subdirectories). It parses and
// validates each with opts, and refuses two definitions of one name. All
// problems of all files are returned together.
func Load(path string, opts ValidateOptions) ([]*Definition, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("workflow: %w", err)
	}
	files := []string{path}
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("workflow: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					files = append(files, filepath.Join(path, e.Name()))
				}
			}
		}
		slices.Sort(files)
	}
	var defs []*Definition
	var problems []Problem
	seen := map[string]string{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("workflow: %w", err)
		}
		d, err := Parse(f, data)
		if err == nil {
			err = d.Validate(opts)
		}
		if ie, ok := err.(*InvalidError); ok {
			problems = append(problems, ie.Problems...)
			continue
		} else if err != nil {
			return nil, err
		}
		if prev, dup := seen[d.Name]; dup {
			problems = append(problems, Problem{File: f, Msg: fmt.Sprintf("workflow %q is also defined in %s", d.Name, prev)})
			continue
		}
		seen[d.Name] = f
		defs = append(defs, d)
	}
	if len(problems) > 0 {
		return nil, &InvalidError{Problems: problems}
	}
	return defs, nil
}

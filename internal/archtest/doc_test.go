package archtest

import (
	"fmt"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDoc checks that every package of the module, commands included,
// has one package doc comment that starts as go doc expects.
func TestDoc(t *testing.T) {
	for _, p := range goList(t) {
		files := map[string][]byte{}
		// Every non-test file, whatever its build tags: a doc comment in
		// a file some builds leave out is still the package's doc.
		for _, name := range slices.Concat(p.GoFiles, p.CgoFiles, p.IgnoredGoFiles) {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(filepath.Join(p.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			files[name] = src
		}
		for _, problem := range checkDoc(p.ImportPath, p.Name, files) {
			t.Error(problem)
		}
	}
}

// checkDoc returns what is wrong with the package doc comments of the
// package importPath named name, whose non-test files are files (name →
// source): there must be exactly one, starting "Package <name>", or
// "Command <last element of importPath>" for a main package. Files of
// another package (a //go:build ignore program) are not its files.
func checkDoc(importPath, name string, files map[string][]byte) []string {
	want := "Package " + name
	if name == "main" {
		want = "Command " + path.Base(importPath)
	}
	var problems, docs []string
	fset := token.NewFileSet()
	for _, file := range slices.Sorted(maps.Keys(files)) {
		f, err := parser.ParseFile(fset, file, files[file], parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", short(importPath), err))
			continue
		}
		if f.Name.Name != name || f.Doc == nil {
			continue
		}
		docs = append(docs, file)
		text := f.Doc.Text()
		rest, ok := strings.CutPrefix(text, want)
		if !ok || (rest != "" && !strings.ContainsAny(rest[:1], " \n")) {
			first, _, _ := strings.Cut(text, "\n")
			problems = append(problems, fmt.Sprintf("%s: %s: package doc starts %q, want %q", short(importPath), file, first, want))
		}
	}
	switch len(docs) {
	case 0:
		problems = append(problems, fmt.Sprintf("%s: no package doc comment: add one starting %q, in doc.go if no file is the obvious place", short(importPath), want))
	case 1:
	default:
		problems = append(problems, fmt.Sprintf("%s: package doc comments in %s: keep one (go doc joins them)", short(importPath), strings.Join(docs, ", ")))
	}
	return problems
}

// TestCheckDoc shows checkDoc catching each kind of deliberate violation,
// and passing the shapes of doc comment the module uses.
func TestCheckDoc(t *testing.T) {
	const lib, command = "example.com/m/internal/x", "example.com/m/cmd/tool"
	tests := []struct {
		name       string
		importPath string
		pkg        string
		files      map[string]string
		want       []string
	}{
		{
			name: "one doc in doc.go", importPath: lib, pkg: "x",
			files: map[string]string{"doc.go": "// Package x does one thing.\npackage x\n", "x.go": "package x\n"},
		},
		{
			name: "after a build constraint", importPath: lib, pkg: "x",
			files: map[string]string{"x.go": "//go:build !lambda\n\n// Package x does one thing\n// over two lines.\npackage x\n"},
		},
		{
			name: "command", importPath: command, pkg: "main",
			files: map[string]string{"main.go": "// Command tool does one thing.\npackage main\n"},
		},
		{
			name: "a program of its own in the directory", importPath: lib, pkg: "x",
			files: map[string]string{"doc.go": "// Package x does one thing.\npackage x\n", "gen.go": "//go:build ignore\n\n// Gen generates.\npackage main\n"},
		},
		{
			name: "no doc", importPath: lib, pkg: "x",
			files: map[string]string{"x.go": "package x\n", "y.go": "package x\n"},
			want:  []string{`example.com/m/internal/x: no package doc comment: add one starting "Package x", in doc.go if no file is the obvious place`},
		},
		{
			name: "a comment cut off by a blank line is no doc", importPath: lib, pkg: "x",
			files: map[string]string{"x.go": "// Package x does one thing.\n\npackage x\n"},
			want:  []string{`example.com/m/internal/x: no package doc comment: add one starting "Package x", in doc.go if no file is the obvious place`},
		},
		{
			name: "two docs", importPath: lib, pkg: "x",
			files: map[string]string{"a.go": "// Package x does one thing.\npackage x\n", "b.go": "// Package x does another.\npackage x\n"},
			want:  []string{"example.com/m/internal/x: package doc comments in a.go, b.go: keep one (go doc joins them)"},
		},
		{
			name: "wrong start", importPath: lib, pkg: "x",
			files: map[string]string{"x.go": "// This package does one thing.\npackage x\n"},
			want:  []string{`example.com/m/internal/x: x.go: package doc starts "This package does one thing.", want "Package x"`},
		},
		{
			name: "another package's name", importPath: lib, pkg: "x",
			files: map[string]string{"x.go": "// Package xy does one thing.\npackage x\n"},
			want:  []string{`example.com/m/internal/x: x.go: package doc starts "Package xy does one thing.", want "Package x"`},
		},
		{
			name: "command documented as a package", importPath: command, pkg: "main",
			files: map[string]string{"main.go": "// Package main does one thing.\npackage main\n"},
			want:  []string{`example.com/m/cmd/tool: main.go: package doc starts "Package main does one thing.", want "Command tool"`},
		},
		{
			name: "syntax error", importPath: lib, pkg: "x",
			files: map[string]string{"doc.go": "// Package x does one thing.\npackage x\n", "x.go": "pakage x\n"},
			want:  []string{"example.com/m/internal/x: x.go:1:1: expected 'package', found pakage"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string][]byte{}
			for name, src := range tt.files {
				files[name] = []byte(src)
			}
			if diff := cmp.Diff(tt.want, checkDoc(tt.importPath, tt.pkg, files)); diff != "" {
				t.Errorf("checkDoc (-want +got):\n%s", diff)
			}
		})
	}
}

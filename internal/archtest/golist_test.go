package archtest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// module is the import path of the module the tests read.
const module = "github.com/lambdagent/lambdagent"

// mod prefixes the module's packages in the rule tables.
const mod = module + "/"

// listed is the part of `go list -json` output the tests read.
type listed struct {
	ImportPath     string
	Name           string
	Dir            string
	GoFiles        []string
	CgoFiles       []string
	IgnoredGoFiles []string
	Imports        []string
	TestImports    []string
	XTestImports   []string
	Error          *struct{ Err string }
}

// goList runs `go list -json` with args and the module's packages as the
// pattern, and decodes what it prints. Any package go list cannot load
// fails the test: a rule checked on a partial graph proves nothing.
func goList(t *testing.T, args ...string) []listed {
	t.Helper()
	args = append(append([]string{"list", "-json=ImportPath,Name,Dir,GoFiles,CgoFiles,IgnoredGoFiles,Imports,TestImports,XTestImports,Error"}, args...), mod+"...")
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var pkgs []listed
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("go %s listed no package", strings.Join(args, " "))
	}
	return pkgs
}

// short trims the module path from an import path, for messages.
func short(path string) string {
	return strings.TrimPrefix(path, mod)
}

package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/lambdagent/lambdagent/internal/workflow"
)

const workflowUsage = `Usage:
  lambdagent workflow validate FILE|DIR...

validate reads workflow definitions (YAML or JSON; a directory means its
.yaml, .yml and .json files) and reports every problem, each naming the
file, the step and what is wrong. It exits 1 when any is found. Tool names
are not checked here (the tools are known only to a running server, which
checks them at startup).
`

// runWorkflow is `lambdagent workflow`.
func runWorkflow(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "validate" || len(args) < 2 {
		fmt.Fprint(stderr, workflowUsage)
		return fmt.Errorf("workflow: %w", errUsage)
	}
	bad := 0
	for _, path := range args[1:] {
		defs, err := workflow.Load(path, workflow.ValidateOptions{})
		var ie *workflow.InvalidError
		switch {
		case errors.As(err, &ie):
			for _, p := range ie.Problems {
				fmt.Fprintln(stderr, p.Error())
			}
			bad += len(ie.Problems)
		case err != nil:
			return err
		default:
			for _, d := range defs {
				fmt.Fprintf(stdout, "%s: workflow %q: ok (%d steps)\n", d.File, d.Name, len(d.Steps))
			}
		}
	}
	if bad > 0 {
		return fmt.Errorf("workflow validate: %d problems", bad)
	}
	return nil
}

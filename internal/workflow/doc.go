// Package workflow reads and checks workflow definitions: a name, an
// optional JSON Schema for the input, and steps of one kind each (prompt,
// tool, parallel, map, branch, sleep, wait_for_event), from YAML or JSON
// files or built in Go (see #16).
//
// Everything that can be known about a definition before a run is
// checked by [Definition.Validate], so that a bad definition is refused
// at startup or by `lambdagent workflow validate`, never half-way through
// a run: each problem names the file, the step and what is wrong. The
// package runs nothing; internal/workflow/engine does.
package workflow

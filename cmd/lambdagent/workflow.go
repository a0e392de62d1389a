package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent/internal/workflow"
)

const workflowUsage = `Usage:
  lambdagent workflow validate FILE|DIR...
  lambdagent workflow start  [flags] WORKFLOW     start a run (-input JSON, -idempotency-key K)
  lambdagent workflow get    [flags] RUN_ID       the run and its steps
  lambdagent workflow list   [flags]              runs, newest first (-workflow W, -status S)
  lambdagent workflow signal [flags] RUN_ID EVENT send an event (-body JSON)
  lambdagent workflow cancel [flags] RUN_ID

validate reads workflow definitions (YAML or JSON; a directory means its
.yaml, .yml and .json files) and reports every problem, each naming the
file, the step and what is wrong; it exits 1 when any is found. Tool names
are not checked here (a server checks them against its tools at startup).

The other commands call a server's HTTP API (-url, -key) and print its
JSON answer.

Flags of the API commands:
`

// runWorkflow is `lambdagent workflow`. env reads LAMBDAGENT_API_KEY.
func runWorkflow(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, workflowUsage)
		return fmt.Errorf("workflow: no command given: %w", errUsage)
	}
	cmd, args := args[0], args[1:]
	if cmd == "validate" {
		return validateWorkflows(args, stdout, stderr)
	}
	fs := flag.NewFlagSet("workflow "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, workflowUsage); fs.PrintDefaults() }
	base := fs.String("url", "http://127.0.0.1:8080", "the server")
	key := fs.String("key", "", "API key, sent as Authorization: Bearer (default: $LAMBDAGENT_API_KEY)")
	input := fs.String("input", "{}", "start: the run's input, a JSON value")
	idem := fs.String("idempotency-key", "", "start: the same key returns the same run")
	body := fs.String("body", "null", "signal: the event's body, a JSON value")
	wf := fs.String("workflow", "", "list: only runs of this workflow")
	status := fs.String("status", "", "list: only runs in this status")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("workflow %s: %w", cmd, errUsage)
	}
	if *key == "" {
		*key = env("LAMBDAGENT_API_KEY")
	}
	pos := fs.Args()
	need := map[string]int{"start": 1, "get": 1, "list": 0, "signal": 2, "cancel": 1}
	n, known := need[cmd]
	if !known {
		fmt.Fprint(stderr, workflowUsage)
		return fmt.Errorf("workflow: unknown command %q: %w", cmd, errUsage)
	}
	if len(pos) != n {
		fmt.Fprint(stderr, workflowUsage)
		return fmt.Errorf("workflow %s: want %d arguments, got %d: %w", cmd, n, len(pos), errUsage)
	}
	var method, path string
	var payload []byte
	hdr := http.Header{}
	switch cmd {
	case "start":
		if !json.Valid([]byte(*input)) {
			return fmt.Errorf("workflow start: -input is not JSON")
		}
		method, path = "POST", "/v1/workflows/"+url.PathEscape(pos[0])+"/runs"
		payload = []byte(`{"input":` + *input + `}`)
		if *idem != "" {
			hdr.Set("Idempotency-Key", *idem)
		}
	case "get":
		method, path = "GET", "/v1/runs/"+url.PathEscape(pos[0])
	case "list":
		q := url.Values{}
		if *wf != "" {
			q.Set("workflow", *wf)
		}
		if *status != "" {
			q.Set("status", *status)
		}
		method, path = "GET", "/v1/runs?"+q.Encode()
	case "signal":
		if !json.Valid([]byte(*body)) {
			return fmt.Errorf("workflow signal: -body is not JSON")
		}
		method, path = "POST", "/v1/runs/"+url.PathEscape(pos[0])+"/events/"+url.PathEscape(pos[1])
		payload = []byte(*body)
	case "cancel":
		method, path = "POST", "/v1/runs/"+url.PathEscape(pos[0])+"/cancel"
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(*base, "/")+path, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("workflow %s: %w", cmd, err)
	}
	req.Header = hdr
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if *key != "" {
		req.Header.Set("Authorization", "Bearer "+*key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("workflow %s: %w", cmd, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("workflow %s: read answer: %w", cmd, err)
	}
	if resp.StatusCode >= 300 {
		stderr.Write(out)
		return fmt.Errorf("workflow %s: %s", cmd, resp.Status)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, out, "", "  ") == nil {
		out = pretty.Bytes()
	}
	_, err = fmt.Fprintln(stdout, strings.TrimSpace(string(out)))
	return err
}

func validateWorkflows(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, workflowUsage)
		return fmt.Errorf("workflow validate: no file given: %w", errUsage)
	}
	bad := 0
	for _, path := range args {
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

// Command testfn is the bootstrap lambdafn's emulator tests run: the
// apistub handler behind a lambdafn.Function, started the way
// cmd/lambdagent starts in Lambda. Build it with -tags lambda.norpc.
//
// With LAMBDAGENT_FUNCTION_URL_STREAMING=true it answers Function URL
// requests as response streams.
//
// When AWS_ENDPOINT_URL_SQS is set it sends replies there, with the
// credentials and region from the environment, as in Lambda.
//
// With TESTFN_WORKFLOWS (a definition file) it also runs workflows, kept
// in the file TESTFN_RUNS_DB, whose one tool "work" takes TESTFN_STEP
// and appends each call's tool_use id to TESTFN_CALLS; runs are handed on
// to LAMBDAGENT_WORKFLOW_QUEUE_URL.
package main

import (
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/lambdafn"
	"github.com/lambdagent/lambdagent/internal/lambdafn/internal/apistub"
	"github.com/lambdagent/lambdagent/internal/workflow"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
	"github.com/lambdagent/lambdagent/internal/workflow/filerun"
)

func main() {
	var cfg lambdafn.Config
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	if ep := os.Getenv("AWS_ENDPOINT_URL_SQS"); ep != "" {
		c, err := lambdafn.NewSQSClient(lambdafn.SQSClientConfig{
			Region:          os.Getenv("AWS_REGION"),
			AccessKeyID:     os.Getenv("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken:    os.Getenv("AWS_SESSION_TOKEN"),
			Endpoint:        ep,
		})
		if err != nil {
			log.Fatal(err)
		}
		cfg.SQS = c
		cfg.DeadLetterURL = os.Getenv("LAMBDAGENT_DLQ_URL")
	}
	if m := os.Getenv("LAMBDAGENT_DEADLINE_MARGIN"); m != "" {
		d, err := time.ParseDuration(m)
		if err != nil {
			log.Fatal(err)
		}
		cfg.DeadlineMargin = d
	}
	if path := os.Getenv("TESTFN_WORKFLOWS"); path != "" {
		cfg.Runs = openRuns(path)
		cfg.RunQueueURL = os.Getenv("LAMBDAGENT_WORKFLOW_QUEUE_URL")
	}
	fn, err := lambdafn.New(apistub.New(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	if os.Getenv("LAMBDAGENT_FUNCTION_URL_STREAMING") == "true" {
		// As cmd/lambdagent with a RESPONSE_STREAM Function URL.
		lambda.Start(fn.Streamer(nil))
		return
	}
	lambda.Start(fn)
}

func openRuns(path string) lambdafn.Runs {
	defs, err := workflow.Load(path, workflow.ValidateOptions{})
	if err != nil {
		log.Fatal(err)
	}
	store, err := filerun.Open(os.Getenv("TESTFN_RUNS_DB"))
	if err != nil {
		log.Fatal(err)
	}
	step, err := time.ParseDuration(os.Getenv("TESTFN_STEP"))
	if err != nil {
		log.Fatal(err)
	}
	e, err := engine.New(engine.Config{Store: store, Definitions: defs, Tools: workTool{step: step, log: os.Getenv("TESTFN_CALLS")}})
	if err != nil {
		log.Fatal(err)
	}
	return runs{e}
}

// workTool is a tool that takes step and records each call.
type workTool struct {
	step time.Duration
	log  string
}

func (workTool) Definitions() json.RawMessage { return json.RawMessage(`[{"name":"work"}]`) }
func (w workTool) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	if f, err := os.OpenFile(w.log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.WriteString(c.ID + "\n")
		f.Close()
	}
	select {
	case <-time.After(w.step):
		return json.RawMessage(`{"type":"tool_result","content":"{\"worked\":true}"}`)
	case <-ctx.Done():
		return json.RawMessage(`{"type":"tool_result","content":"cut","is_error":true}`)
	}
}

// runs adapts the engine as the lambdagent package does.
type runs struct{ e *engine.Engine }

func (r runs) Start(ctx context.Context, tenant, wf string, input json.RawMessage, key string) (lambdafn.Started, error) {
	run, _, err := r.e.Start(ctx, tenant, wf, input, key)
	return lambdafn.Started{Ref: run.StoreID, RunID: run.ID, Workflow: run.Workflow, Status: run.Status}, err
}

func (r runs) Advance(ctx context.Context, ref string) (lambdafn.Progress, error) {
	o, err := r.e.AdvanceUntil(ctx, ref)
	return lambdafn.Progress{Status: o.Status, Due: o.Due, Cut: o.Cut}, err
}

func (r runs) Due(ctx context.Context, n int) ([]string, error) { return r.e.Due(ctx, n) }

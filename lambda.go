package lambdagent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdagent/lambdagent/internal/lambdafn"
	"github.com/lambdagent/lambdagent/internal/telemetry"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
)

// LambdaHandler returns the AWS Lambda handler of the runtime, for
// lambda.Start or lambda.StartWithOptions: every event source (API
// Gateway REST and HTTP APIs, function URLs, SQS, EventBridge, direct
// invocation) goes through [Runtime.Handler]. An SQS turn that asks for a
// reply (reply_to) sends it with a client built from the standard AWS_*
// variables of the Lambda environment.
//
// Build the Runtime once at init, outside the handler, so that warm
// invocations reuse its connections.
func (r *Runtime) LambdaHandler() (lambda.Handler, error) {
	_, h, err := r.lambdaFunction()
	return h, err
}

// LambdaStart returns what to pass to lambda.Start or
// lambda.StartWithOptions: [Runtime.LambdaHandler], or, with
// Options.FunctionURLStreaming, a handler func that answers Function URL
// requests as response streams (a streamed turn's events reach the
// client as they happen) and every other event as LambdaHandler does.
// aws-lambda-go streams an answer only from a handler func, hence the
// two shapes.
func (r *Runtime) LambdaStart() (any, error) {
	fn, h, err := r.lambdaFunction()
	if err != nil || !r.opts.FunctionURLStreaming {
		return h, err
	}
	stream := fn.Streamer(h)
	return func(ctx context.Context, payload json.RawMessage) (io.Reader, error) {
		out, err := stream(ctx, payload)
		if s, ok := out.(*events.LambdaFunctionURLStreamingResponse); ok {
			// The invocation ends with the stream, not with this return.
			s.Body = telemetry.WrapStreamBody(ctx, s.Body, r.tel)
		}
		return out, err
	}, nil
}

// lambdaFunction builds the Lambda adapter and its buffered handler (the
// adapter wrapped by telemetry).
func (r *Runtime) lambdaFunction() (*lambdafn.Function, lambda.Handler, error) {
	fcfg := lambdafn.Config{Logger: r.opts.Logger, DeadlineMargin: r.opts.DeadlineMargin, DefaultTenant: r.opts.DefaultTenant,
		DeadLetterURL: r.opts.DLQURL, RunQueueURL: r.opts.WorkflowQueueURL}
	if r.workflows != nil {
		fcfg.Runs = lambdaRuns{r.workflows}
	}
	if os.Getenv("AWS_REGION") != "" {
		c, err := lambdafn.NewSQSClient(lambdafn.SQSClientConfig{
			Region:          os.Getenv("AWS_REGION"),
			AccessKeyID:     os.Getenv("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken:    os.Getenv("AWS_SESSION_TOKEN"),
			Endpoint:        os.Getenv("AWS_ENDPOINT_URL_SQS"),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("lambdagent: SQS client: %w", err)
		}
		fcfg.SQS = c
	}
	fn, err := lambdafn.New(r.handler, fcfg)
	if err != nil {
		return nil, nil, fmt.Errorf("lambdagent: %w", err)
	}
	// Export each invocation's spans before it returns: Lambda may freeze
	// the process right after.
	return fn, telemetry.WrapInvoker(fn, r.tel), nil
}

// lambdaRuns adapts the workflow engine to lambdafn.Runs.
type lambdaRuns struct{ e *engine.Engine }

func (l lambdaRuns) Start(ctx context.Context, tenant, workflow string, input json.RawMessage, key string) (lambdafn.Started, error) {
	r, _, err := l.e.Start(ctx, tenant, workflow, input, key)
	if err != nil {
		return lambdafn.Started{}, err
	}
	return lambdafn.Started{Ref: r.StoreID, RunID: r.ID, Workflow: r.Workflow, Status: r.Status}, nil
}

func (l lambdaRuns) Advance(ctx context.Context, ref string) (lambdafn.Progress, error) {
	o, err := l.e.AdvanceUntil(ctx, ref)
	return lambdafn.Progress{Status: o.Status, Due: o.Due, Cut: o.Cut}, err
}

func (l lambdaRuns) Due(ctx context.Context, n int) ([]string, error) { return l.e.Due(ctx, n) }

// StartLambda builds a Runtime from o and serves Lambda invocations with
// it until the process ends; it returns only if the runtime cannot be
// built. With a nil o.Logger it logs JSON to stderr, which Lambda sends to
// CloudWatch Logs. On SIGTERM (Lambda's shutdown phase) it closes the
// runtime cleanly.
func StartLambda(o Options) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if o.Metrics == "" {
		o.Metrics = "emf"
	}
	r, err := New(context.Background(), o)
	if err != nil {
		return fmt.Errorf("lambda init: %w", err)
	}
	h, err := r.LambdaStart()
	if err != nil {
		r.Close()
		return fmt.Errorf("lambda init: %w", err)
	}
	lambda.StartWithOptions(h, lambda.WithEnableSIGTERM(func() { r.Close() }))
	return nil
}

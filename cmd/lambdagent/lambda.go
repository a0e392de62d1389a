package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdagent/lambdagent/internal/lambdafn"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// runLambda runs lambdagent as an AWS Lambda function (AWS_LAMBDA_RUNTIME_API
// is set). Everything expensive, the store's connection pool, the Claude
// client and MCP connections, is built once at init and reused by every
// warm invocation; every event source goes through the same HTTP handler
// as serve mode (see internal/lambdafn).
func runLambda(ctx context.Context, cfg config, log *slog.Logger, getenv func(string) string) error {
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("lambda init: %w", err)
	}
	fcfg := lambdafn.Config{Logger: log, DeadlineMargin: cfg.DeadlineMargin}
	if getenv("AWS_REGION") != "" {
		c, err := lambdafn.NewSQSClient(lambdafn.SQSClientConfig{
			Region:          getenv("AWS_REGION"),
			AccessKeyID:     getenv("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken:    getenv("AWS_SESSION_TOKEN"),
			Endpoint:        getenv("AWS_ENDPOINT_URL_SQS"),
		})
		if err != nil {
			a.Close()
			return fmt.Errorf("lambda init: SQS client: %w", err)
		}
		fcfg.SQS = c
	}
	fn, err := lambdafn.New(a.handler, fcfg)
	if err != nil {
		a.Close()
		return fmt.Errorf("lambda init: %w", err)
	}
	// Lambda sends SIGTERM before it shuts a sandbox down (with an
	// extension registered); close the store and MCP servers cleanly.
	// WrapInvoker exports each invocation's spans before it returns: Lambda
	// may freeze the process right after.
	lambda.StartWithOptions(telemetry.WrapInvoker(fn, a.tel), lambda.WithEnableSIGTERM(func() { a.Close() }))
	return nil
}

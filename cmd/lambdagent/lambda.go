package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda"
)

// runLambda runs lambdagent as an AWS Lambda function (AWS_LAMBDA_RUNTIME_API
// is set). Everything expensive, the store's connection pool, the Claude
// client and MCP connections, is built once at init and reused by every
// warm invocation; every event source goes through the same HTTP handler
// as serve mode (see internal/lambdafn).
func runLambda(ctx context.Context, cfg config, log *slog.Logger) error {
	rt, err := newRuntime(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("lambda init: %w", err)
	}
	h, err := rt.LambdaStart()
	if err != nil {
		rt.Close()
		return fmt.Errorf("lambda init: %w", err)
	}
	// Lambda sends SIGTERM before it shuts a sandbox down (with an
	// extension registered); close the store and MCP servers cleanly.
	lambda.StartWithOptions(h, lambda.WithEnableSIGTERM(func() { rt.Close() }))
	return nil
}

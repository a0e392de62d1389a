// Command testfn is the bootstrap lambdafn's emulator tests run: the
// apistub handler behind a lambdafn.Function, started the way
// cmd/lambdagent starts in Lambda. Build it with -tags lambda.norpc.
//
// With LAMBDAGENT_FUNCTION_URL_STREAMING=true it answers Function URL
// requests as response streams.
//
// When AWS_ENDPOINT_URL_SQS is set it sends replies there, with the
// credentials and region from the environment, as in Lambda.
package main

import (
	"log"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdagent/lambdagent/internal/lambdafn"
	"github.com/lambdagent/lambdagent/internal/lambdafn/internal/apistub"
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

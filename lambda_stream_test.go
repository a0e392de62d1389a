package lambdagent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestLambdaStart: with FunctionURLStreaming, LambdaStart is a handler
// func whose Function URL answers are response streams (the prelude,
// then the body); without, it is the buffered lambda.Handler.
func TestLambdaStart(t *testing.T) {
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	_, line := testKey(t, "dddddddddddd", "acme")
	redis := redistest.Start(t)
	for _, streaming := range []bool{false, true} {
		rt, err := New(t.Context(), Options{APIKey: "k", BaseURL: sim.URL, RedisURL: redistest.URL(redis), RedisPrefix: redistest.Prefix(t),
			APIKeysFile: line + "\n", Logger: slog.New(slog.DiscardHandler), FunctionURLStreaming: streaming})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rt.Close() })
		h, err := rt.LambdaStart()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := h.(lambda.Handler); ok == streaming {
			t.Fatalf("FunctionURLStreaming %v: LambdaStart gave %T", streaming, h)
		}
		if !streaming {
			continue
		}
		f := h.(func(context.Context, json.RawMessage) (io.Reader, error))
		const domain = "abc.lambda-url.us-east-1.on.aws"
		event, _ := json.Marshal(map[string]any{"version": "2.0", "rawPath": "/healthz", "headers": map[string]string{"host": domain},
			"requestContext": map[string]any{"domainName": domain, "http": map[string]string{"method": "GET", "sourceIp": "198.51.100.1"}}})
		out, err := f(t.Context(), event)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(out)
		head, body, ok := bytes.Cut(b, make([]byte, 8))
		var p struct{ StatusCode int }
		if !ok || json.Unmarshal(head, &p) != nil || p.StatusCode != 200 || len(body) == 0 {
			t.Errorf("Function URL answer %q: want a 200 prelude, 8 zero bytes, the body", b)
		}
	}
}

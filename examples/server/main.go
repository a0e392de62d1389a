// Command server serves lambdagent's HTTP API from a long-running process
// (a container, a VM) with a Go tool of its own, through any net/http
// server: here the standard library's, with the graceful shutdown of
// Runtime.Serve.
//
//	ANTHROPIC_API_KEY=… REDIS_URL=redis://localhost:6379 go run ./examples/server
package main

import (
	"context"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts, err := lambdagent.OptionsFromEnv(os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	clock := mcp.NewServer(&mcp.Implementation{Name: "clock", Version: "1.0.0"}, nil)
	mcp.AddTool(clock, &mcp.Tool{Name: "current_time", Description: "The current time in UTC."}, now)
	opts.Servers = map[string]*mcp.Server{"clock": clock}

	rt, err := lambdagent.New(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()
	addr := os.Getenv("LAMBDAGENT_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving on http://%s", ln.Addr())
	if err := rt.Serve(ctx, ln); err != nil {
		log.Fatal(err)
	}
}

type nothing struct{}

type clockTime struct {
	UTC string `json:"utc"`
}

func now(context.Context, *mcp.CallToolRequest, nothing) (*mcp.CallToolResult, clockTime, error) {
	return nil, clockTime{UTC: time.Now().UTC().Format(time.RFC3339)}, nil
}

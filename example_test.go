package lambdagent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent"
	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// ask posts one turn to h and returns the answer's text.
func ask(rt *lambdagent.Runtime, session, message string) string {
	body, _ := json.Marshal(map[string]string{"session_id": session, "message": message})
	req := httptest.NewRequest("POST", "/agent", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	rt.Handler().ServeHTTP(rec, req)
	var a struct {
		Response string `json:"response"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &a)
	return fmt.Sprintf("%d %s", rec.Code, a.Response)
}

// Build a runtime and serve its HTTP API with any net/http server. Here
// Claude is lambdagent's simulator (it echoes), and the store is the
// embedded file; in production set RedisURL and APIKey, or read both from
// the environment with OptionsFromEnv.
func Example() {
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	defer sim.Close()
	dir, _ := os.MkdirTemp("", "lambdagent-example")
	defer os.RemoveAll(dir)

	rt, err := lambdagent.New(context.Background(), lambdagent.Options{
		APIKey:  "sk-ant-example",
		BaseURL: sim.URL,
		DBPath:  filepath.Join(dir, "sessions.db"),
		// Only this process calls the handler. In production leave Auth
		// at its default, "key", and create keys with `lambdagent keys
		// create`: New refuses to start open by accident.
		Auth:   "none",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()

	fmt.Println(ask(rt, "s1", "hello"))
	fmt.Println(ask(rt, "s1", "again"))
	// Output:
	// 200 echo: hello (messages: 1)
	// 200 echo: again (messages: 3)
}

type order struct {
	ID string `json:"id" jsonschema:"the order id"`
}

type status struct {
	Status string `json:"status"`
}

// Give the agent Go tools of your own: an MCP server of the official Go
// SDK, in this process. Claude (the simulator, asked to) calls the tool,
// and the turn answers with its result.
func Example_goTools() {
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	defer sim.Close()
	dir, _ := os.MkdirTemp("", "lambdagent-example")
	defer os.RemoveAll(dir)

	orders := mcp.NewServer(&mcp.Implementation{Name: "orders", Version: "1.0.0"}, nil)
	mcp.AddTool(orders, &mcp.Tool{Name: "order_status", Description: "The status of an order."},
		func(ctx context.Context, _ *mcp.CallToolRequest, in order) (*mcp.CallToolResult, status, error) {
			return nil, status{Status: "shipped"}, nil
		})

	rt, err := lambdagent.New(context.Background(), lambdagent.Options{
		APIKey:  "sk-ant-example",
		BaseURL: sim.URL,
		DBPath:  filepath.Join(dir, "sessions.db"),
		Servers: map[string]*mcp.Server{"orders": orders},
		Auth:    "none",
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer rt.Close()

	fmt.Println(ask(rt, "s1", `Where is my order? [[tool order_status {"id":"o-1"}]]`))
	// Output:
	// 200 tool results: order_status={"status":"shipped"}
}

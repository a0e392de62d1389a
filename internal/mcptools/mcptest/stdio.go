package mcptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ServerEnv, set to "tools" in a test binary's environment, makes
// [RunStdioServerIfAsked] turn that binary into the stdio test server.
const ServerEnv = "LAMBDAGENT_MCPTEST_SERVER"

// StdioServerName is the name the stdio test server gives itself; its
// echo tool answers "stdio-test: " and the message.
const StdioServerName = "stdio-test"

// RunStdioServerIfAsked makes the running test binary a real MCP peer
// that can fail on demand (go-sdk's trick): when [ServerEnv] asks for it,
// it serves [NewServer]'s tools plus "crash" (the process exits
// mid-call) and "bad_content" (a content block of a type MCP does not
// have) on stdin and stdout, then exits; otherwise it returns at once.
// Call it first in TestMain, or in an init function when TestMain does
// costly work a server run should skip. [StdioConfig] starts the binary
// this way.
func RunStdioServerIfAsked() {
	name := os.Getenv(ServerEnv)
	if name == "" {
		return
	}
	os.Unsetenv(ServerEnv)
	if name != "tools" {
		log.Fatalf("mcptest: unknown test server %q in %s", name, ServerEnv)
	}
	srv := NewServer(StdioServerName)
	mcp.AddTool(srv, &mcp.Tool{Name: "crash", Description: "exits the server process mid-call"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			os.Exit(3)
			return nil, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "bad_content", Description: "returns content of a type MCP does not have"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return textResult(invalidMarker), nil, nil
		})
	t := &mcp.IOTransport{Reader: os.Stdin, Writer: corruptingWriter{os.Stdout}}
	if err := srv.Run(context.Background(), t); err != nil {
		log.Fatal(err)
	}
	os.Exit(0)
}

// StdioConfig returns the MCP server config (the JSON object of one entry
// of "mcpServers") that runs the test binary as the stdio test server,
// with extra JSON fields added (`, "timeout": "1s"`). The binary must call
// [RunStdioServerIfAsked].
func StdioConfig(t testing.TB, extra string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd, _ := json.Marshal(exe)
	return fmt.Sprintf(`{"command": %s, "env": {%q: "tools"}%s}`, cmd, ServerEnv, extra)
}

// invalidMarker is text the stdio test server turns into a content block
// of an unknown type on the wire.
const invalidMarker = "@@INVALID_CONTENT@@"

// A corruptingWriter replaces the invalidMarker text block with a block of
// a type MCP does not have. go-sdk writes one message per Write.
type corruptingWriter struct{ w io.Writer }

func (c corruptingWriter) Write(p []byte) (int, error) {
	q := bytes.ReplaceAll(p, []byte(`{"type":"text","text":"`+invalidMarker+`"}`), []byte(`{"type":"hologram"}`))
	if _, err := c.w.Write(q); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (corruptingWriter) Close() error { return nil }

type echoIn struct {
	Message string `json:"message"`
}

type sleepIn struct {
	MS int `json:"ms"`
}

// NewServer returns a go-sdk server named name with the tools of the
// stdio test server that do not end or break it: "echo" (answers
// "NAME: message"), "sleep" (ms milliseconds), "hang" (until cancelled),
// "pid" (the server's process id), "fail" (a tool error) and
// "ns.dotted/v2" (a name Claude does not accept). Tests serve it over
// HTTP too.
func NewServer(name string) *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "echoes the message"},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
			return textResult(name + ": " + in.Message), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "sleep", Description: "sleeps ms milliseconds"},
		func(ctx context.Context, _ *mcp.CallToolRequest, in sleepIn) (*mcp.CallToolResult, any, error) {
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
				return textResult("slept"), nil, nil
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "hang", Description: "never answers"},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			<-ctx.Done()
			return nil, nil, ctx.Err()
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "pid", Description: "returns the server's process id"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return textResult(strconv.Itoa(os.Getpid())), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "fail", Description: "returns a tool error"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return nil, nil, fmt.Errorf("the frobnicator is out of order")
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "ns.dotted/v2", Description: "has a name Claude does not accept"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return textResult("dotted"), nil, nil
		})
	return srv
}

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

package mcptools

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestToolUseIDInMeta: the server sees the call's tool_use id in the
// request's _meta, next to the traceparent, so that it can deduplicate.
func TestToolUseIDInMeta(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "meta", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "meta", Description: "answers with its request's _meta"},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			m := req.Params.GetMeta()
			return textResult(fmt.Sprintf("%v|%v", m[ToolUseIDMeta], m["traceparent"])), nil, nil
		})
	ts, err := Open(t.Context(), Config{Servers: map[string]ServerConfig{"meta": {Name: "meta", Type: TypeInProcess, Server: srv}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	r := ts.Call(WithTraceparent(t.Context(), tp), Call{ID: "toolu_01abc", Name: "meta", Input: json.RawMessage(`{}`)})
	if got, want := text(t, r), "toolu_01abc|"+tp; got != want {
		t.Errorf("server saw _meta %q, want %q", got, want)
	}
	r = ts.Call(t.Context(), Call{Name: "meta", Input: json.RawMessage(`{}`)})
	if got := text(t, r); got != "<nil>|<nil>" {
		t.Errorf("a call without an id sent _meta %q", got)
	}
}

package mcptools

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestAgentHandlerProgress calls ask_agent with the official go-sdk
// client: with a progressToken, each progress report of the turn reaches
// the client as a notification while the turn still runs, numbered in
// order; without one, the ask gets no ProgressFunc.
func TestAgentHandlerProgress(t *testing.T) {
	t.Parallel()
	type note struct {
		Token    any
		Progress float64
		Message  string
	}
	var mu sync.Mutex
	var notes []note
	got := make(chan struct{}, 16)
	hadProgress := make(chan bool, 2)
	ask := func(ctx context.Context, sessionID, message string, progress ProgressFunc) (string, error) {
		hadProgress <- progress != nil
		if progress == nil {
			return "quiet", nil
		}
		for _, m := range []string{"turn 1 started", "Hello", ", world"} {
			progress(m)
			// The client has it before the turn goes on: it was sent
			// while the turn ran, not with the answer.
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Errorf("notification %q not received while the turn runs", m)
				return "", ctx.Err()
			}
		}
		return "Hello, world", nil
	}
	hs := httptest.NewServer(NewAgentHandler(ask, AgentHandlerOptions{}))
	t.Cleanup(hs.Close)

	client := mcp.NewClient(&mcp.Implementation{Name: "progress-test", Version: "0"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			notes = append(notes, note{req.Params.ProgressToken, req.Params.Progress, req.Params.Message})
			mu.Unlock()
			got <- struct{}{}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: hs.URL, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	params := &mcp.CallToolParams{Name: AgentToolName, Arguments: map[string]any{"session_id": "p1", "message": "hi"}}
	params.SetProgressToken("tok-1")
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "Hello, world" {
		t.Fatalf("result %+v", res)
	}
	if !<-hadProgress {
		t.Fatal("ask got no ProgressFunc though the call has a progressToken")
	}
	mu.Lock()
	want := []note{{"tok-1", 1, "turn 1 started"}, {"tok-1", 2, "Hello"}, {"tok-1", 3, ", world"}}
	if diff := cmp.Diff(want, notes); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
	mu.Unlock()

	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: AgentToolName, Arguments: map[string]any{"session_id": "p1", "message": "hi"}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "quiet" {
		t.Fatalf("call without progressToken: %+v, %v", res, err)
	}
	if <-hadProgress {
		t.Error("ask got a ProgressFunc though the call has no progressToken")
	}
}

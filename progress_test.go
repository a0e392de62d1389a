package lambdagent

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// TestMCPProgress: an MCP client that asks /mcp's ask_agent for progress
// (go-sdk's client, a progressToken) is told the turn as it runs: it
// started, then the answer's text, whose pieces join to the tool result.
func TestMCPProgress(t *testing.T) {
	sim := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(sim.Close)
	key, line := testKey(t, "bbbbbbbbbbbb", "acme")
	redis := redistest.Start(t)
	rt, err := New(t.Context(), Options{APIKey: "k", BaseURL: sim.URL, RedisURL: redistest.URL(redis), RedisPrefix: redistest.Prefix(t),
		APIKeysFile: line + "\n", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	srv := httptest.NewServer(rt.Handler())
	t.Cleanup(srv.Close)

	var mu sync.Mutex
	var messages []string
	client := mcp.NewClient(&mcp.Implementation{Name: "progress-test", Version: "0"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			messages = append(messages, req.Params.Message)
			mu.Unlock()
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: srv.URL + "/mcp", DisableStandaloneSSE: true,
		HTTPClient: &http.Client{Transport: bearer{key}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	params := &mcp.CallToolParams{Name: "ask_agent", Arguments: map[string]any{"session_id": "mp1", "message": "tell me something"}}
	params.SetProgressToken(7)
	res, err := cs.CallTool(ctx, params)
	if err != nil || res.IsError || len(res.Content) != 1 {
		t.Fatalf("ask_agent: %+v, %v", res, err)
	}
	answer := res.Content[0].(*mcp.TextContent).Text
	// The client may still be handling the last notifications.
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		done := len(messages) > 1 && strings.Join(messages[1:], "") == answer
		mu.Unlock()
		if done {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(messages) < 2 || messages[0] != "turn 1 started" {
		t.Fatalf("progress messages %q: want turn 1 started, then the text", messages)
	}
	if text := strings.Join(messages[1:], ""); text != answer {
		t.Errorf("progress text %q != answer %q", text, answer)
	}
}

package mcptools

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent/internal/mcptools/mcptest"
)

// TestMain lets the test binary run as the stdio test server (see
// mcptest.RunStdioServerIfAsked).
func TestMain(m *testing.M) {
	mcptest.RunStdioServerIfAsked()
	os.Exit(m.Run())
}

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// open opens a Toolset on the config JSON and closes it when the test ends.
func open(t testing.TB, config string, opts Options) *Toolset {
	t.Helper()
	cfg, err := ParseConfig([]byte(config))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	if opts.Stderr == nil {
		opts.Stderr = io.Discard
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ts, err := Open(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	return ts
}

// testLogger logs to the test, at debug level.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// A decoded tool_result block.
type block struct {
	Type      string           `json:"type"`
	ToolUseID string           `json:"tool_use_id"`
	Content   []map[string]any `json:"content"`
	IsError   bool             `json:"is_error"`
}

func decode(t testing.TB, r Result) block {
	t.Helper()
	var b block
	if err := json.Unmarshal(r.Block, &b); err != nil {
		t.Fatalf("result block %s: %v", r.Block, err)
	}
	if b.Type != "tool_result" || b.ToolUseID != r.ToolUseID || b.IsError != r.IsError {
		t.Fatalf("result block %s does not match %+v", r.Block, r)
	}
	return b
}

// text joins the text blocks of a result.
func text(t testing.TB, r Result) string {
	t.Helper()
	var parts []string
	for _, c := range decode(t, r).Content {
		if c["type"] == "text" {
			parts = append(parts, c["text"].(string))
		}
	}
	return strings.Join(parts, "\n")
}

// run1 runs one call.
func run1(t testing.TB, ts *Toolset, name, input string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := ts.Call(ctx, Call{ID: "toolu_" + name, Name: name, Input: json.RawMessage(input)})
	if r.ToolUseID != "toolu_"+name {
		t.Fatalf("result answers %q, want toolu_%s", r.ToolUseID, name)
	}
	return r
}

// runAll makes the calls at once, as the agent makes those of one reply,
// and returns their results in call order.
func runAll(ctx context.Context, ts *Toolset, calls []Call) []Result {
	out := make([]Result, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() { out[i] = ts.Call(ctx, c) })
	}
	wg.Wait()
	return out
}

// toolNames lists the names in Definitions.
func toolNames(t testing.TB, ts *Toolset) []string {
	t.Helper()
	var defs []struct {
		Name        string          `json:"name"`
		InputSchema json.RawMessage `json:"input_schema"`
	}
	if err := json.Unmarshal(ts.Definitions(), &defs); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range defs {
		if !validName(d.Name) {
			t.Errorf("tool name %q is not valid for Claude", d.Name)
		}
		var schema map[string]any
		if err := json.Unmarshal(d.InputSchema, &schema); err != nil || schema["type"] != "object" {
			t.Errorf("tool %s: input_schema %s is not an object schema", d.Name, d.InputSchema)
		}
		names = append(names, d.Name)
	}
	return names
}

// An httpPeer is a go-sdk server behind httptest on a real port, recording
// what it was sent.
type httpPeer struct {
	srv *mcp.Server
	hs  *httptest.Server
	h   *mcp.StreamableHTTPHandler

	mu       sync.Mutex // guards the fields below
	down     bool       // answer 503 to everything
	requests []recorded
}

type recorded struct {
	method, rpc string // HTTP method, JSON-RPC method
	header      http.Header
}

func newHTTPPeer(t testing.TB, name string) *httpPeer {
	p := &httpPeer{srv: mcptest.NewServer(name)}
	p.h = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return p.srv }, nil)
	p.hs = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.hs.Close)
	return p
}

func (p *httpPeer) serve(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Method string `json:"method"`
	}
	if r.Body != nil {
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &msg)
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	p.mu.Lock()
	down := p.down
	p.requests = append(p.requests, recorded{r.Method, msg.Method, r.Header.Clone()})
	p.mu.Unlock()
	if down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	p.h.ServeHTTP(w, r)
}

func (p *httpPeer) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
}

// sent returns the requests recorded so far.
func (p *httpPeer) sent() []recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recorded(nil), p.requests...)
}

// kill stops the server at once: httptest's Close alone would wait for the
// client's event stream to end.
func (p *httpPeer) kill() {
	p.hs.Listener.Close()
	p.hs.CloseClientConnections()
	p.hs.Close()
}

func (p *httpPeer) url() string { return p.hs.URL + "/mcp" }

// waitFor polls cond for up to 10s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A syncBuffer is a strings.Builder safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// slogTo logs to w at debug level.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

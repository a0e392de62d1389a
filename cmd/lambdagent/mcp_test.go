package main

// Full turns with MCP tools (#8): the app as serve builds it (the agent,
// a real store, the Claude client against claudesim over HTTP, the MCP
// adapter of tools.go) against real MCP servers: the reference
// @modelcontextprotocol/server-everything over stdio and Streamable HTTP,
// and go-sdk servers of our own, in this test binary over HTTP, or this
// test binary run again as a stdio server (go-sdk's trick; see init), so
// that a tool can crash its server, hang or send content MCP does not
// have.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/mcptools/mcptest"
)

// init lets this test binary run as the stdio test server (see
// mcptest.RunStdioServerIfAsked); it runs before TestMain, so a server run
// does not build the binary.
func init() { mcptest.RunStdioServerIfAsked() }

func textResult(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// A toolLog counts the calls a tool server received, by tool, and holds
// the first call of "slow" until released.
type toolLog struct {
	mu       sync.Mutex
	calls    map[string]int // guarded by mu
	running  int            // sleep calls in progress; guarded by mu
	overlap  int            // the most sleep calls seen in progress at once; guarded by mu
	slowed   chan struct{}  // closed when the first slow call arrives
	released chan struct{}  // closed by release: the first slow call returns
	once     sync.Once
}

func newToolLog() *toolLog {
	return &toolLog{calls: map[string]int{}, slowed: make(chan struct{}), released: make(chan struct{})}
}

func (l *toolLog) add(tool string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls[tool]++
	return l.calls[tool]
}

func (l *toolLog) count(tool string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.calls[tool]
}

func (l *toolLog) release() { l.once.Do(func() { close(l.released) }) }

type messageIn struct {
	Message string `json:"message"`
}

type amountIn struct {
	Amount int `json:"amount"`
}

type msIn struct {
	MS int `json:"ms"`
}

// newToolServer returns a go-sdk server with the tools both test servers
// have; l, when set, counts their calls.
func newToolServer(name string, l *toolLog) *mcp.Server {
	if l == nil {
		l = newToolLog()
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "echoes the message"},
		func(_ context.Context, _ *mcp.CallToolRequest, in messageIn) (*mcp.CallToolResult, any, error) {
			l.add("echo")
			return textResult(name + ": " + in.Message), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "sleep", Description: "sleeps ms milliseconds"},
		func(ctx context.Context, _ *mcp.CallToolRequest, in msIn) (*mcp.CallToolResult, any, error) {
			l.add("sleep")
			l.mu.Lock()
			l.running++
			l.overlap = max(l.overlap, l.running)
			l.mu.Unlock()
			defer func() {
				l.mu.Lock()
				l.running--
				l.mu.Unlock()
			}()
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
				return textResult("slept"), nil, nil
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "hang", Description: "never answers"},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			l.add("hang")
			<-ctx.Done()
			return nil, nil, ctx.Err()
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "charge", Description: "charges the card: a side effect that must happen once"},
		func(_ context.Context, _ *mcp.CallToolRequest, in amountIn) (*mcp.CallToolResult, any, error) {
			l.add("charge")
			return textResult(fmt.Sprintf("charged %d", in.Amount)), nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "slow", Description: "takes its time the first time"},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			if l.add("slow") == 1 {
				close(l.slowed)
				select {
				case <-l.released:
				case <-ctx.Done():
				case <-time.After(time.Minute):
				}
			}
			return textResult("slept"), nil, nil
		})
	return srv
}

// An mcpPeer is a go-sdk server behind httptest on a real port, recording
// the JSON-RPC methods and session IDs it was sent.
type mcpPeer struct {
	log *toolLog
	srv *mcp.Server
	hs  *httptest.Server

	mu       sync.Mutex // guards requests
	requests []peerRequest
}

type peerRequest struct {
	method, rpc, session string // HTTP method, JSON-RPC method, Mcp-Session-Id
}

func newMCPPeer(t *testing.T, name string) *mcpPeer {
	t.Helper()
	p := &mcpPeer{log: newToolLog()}
	p.srv = newToolServer(name, p.log)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return p.srv }, nil)
	p.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var msg struct {
			Method string `json:"method"`
		}
		if r.Body != nil {
			body, _ := io.ReadAll(r.Body)
			json.Unmarshal(body, &msg)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		p.mu.Lock()
		p.requests = append(p.requests, peerRequest{r.Method, msg.Method, r.Header.Get("Mcp-Session-Id")})
		p.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.log.release()
		p.hs.CloseClientConnections()
		p.hs.Close()
	})
	return p
}

func (p *mcpPeer) url() string { return p.hs.URL + "/mcp" }

func (p *mcpPeer) sent() []peerRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]peerRequest(nil), p.requests...)
}

// toolApp is the app serve builds, with the simulator as Claude and the
// MCP servers of mcpConfig, serving HTTP on a real port.
type toolApp struct {
	url string
	sim *claudesim.Server
}

func newToolApp(t *testing.T, mcpConfig string, env map[string]string) *toolApp {
	t.Helper()
	sim := claudesim.New(claudesim.Config{})
	simSrv := httptest.NewServer(sim)
	t.Cleanup(simSrv.Close)
	vars := map[string]string{
		"ANTHROPIC_API_KEY":     "test-key",
		"ANTHROPIC_BASE_URL":    simSrv.URL,
		"LAMBDAGENT_DB":         filepath.Join(t.TempDir(), "s.db"),
		"LAMBDAGENT_MCP_CONFIG": mcpConfig,
		"LAMBDAGENT_AUTH":       "none", // these tests are about tools
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := loadConfig(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	// The servers log after a test's t.Log would panic; keep the log and
	// show it when the test fails.
	var logs syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := newRuntime(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("newRuntime: %v\n%s", err, logs.String())
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		srv.Close()
		a.Close()
		if t.Failed() {
			t.Logf("app log:\n%s", logs.String())
		}
	})
	return &toolApp{url: srv.URL, sim: sim}
}

// answer is a turn's answer as these tests read it.
type answer struct {
	Response   string `json:"response"`
	Turn       int64  `json:"turn"`
	StopReason string `json:"stop_reason"`
	ModelCalls int    `json:"model_calls"`
	Limit      string `json:"limit"`
}

// turn posts a turn to base (http://host:port) and decodes a 200 answer.
func turn(t *testing.T, base, session, message, key string) answer {
	t.Helper()
	code, body, err := postTurn(base, session, message, key)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusOK {
		t.Fatalf("POST /agent %q: %d %s", message, code, body)
	}
	var a answer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	return a
}

func postTurn(base, session, message, key string) (int, []byte, error) {
	body, _ := json.Marshal(map[string]string{"session_id": session, "message": message})
	req, err := http.NewRequest("POST", base+"/agent", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// results splits the simulator's "tool results: NAME=CONTENT; …" answer.
func results(t *testing.T, response string) map[string]string {
	t.Helper()
	rest, ok := strings.CutPrefix(response, "tool results: ")
	if !ok {
		t.Fatalf("answer %q does not report tool results", response)
	}
	out := map[string]string{}
	for _, part := range strings.Split(rest, "; ") {
		name, content, _ := strings.Cut(part, "=")
		out[name] = content
	}
	return out
}

// TestTurnEverything runs a turn whose reply calls server-everything's
// echo and get-sum, over stdio and over Streamable HTTP, and checks the
// answer made from their results and the history stored.
func TestTurnEverything(t *testing.T) {
	entry := mcptest.Everything(t)
	for _, tc := range []struct {
		name   string
		server func(t *testing.T) string
	}{
		{"Stdio", func(t *testing.T) string {
			return fmt.Sprintf(`{"command": "node", "args": [%q, "stdio"]}`, entry)
		}},
		{"HTTP", func(t *testing.T) string {
			return fmt.Sprintf(`{"type": "http", "url": %q}`, mcptest.StartEverythingHTTP(t, entry))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ta := newToolApp(t, `{"mcpServers": {"everything": `+tc.server(t)+`}}`, nil)
			a := turn(t, ta.url, "everything", `[[tool echo {"message":"hi"}]] and [[tool get-sum {"a":2,"b":3}]]`, "")
			want := "tool results: echo=Echo: hi; get-sum=The sum of 2 and 3 is 5."
			if a.Response != want || a.ModelCalls != 2 || a.StopReason != "end_turn" || a.Turn != 1 {
				t.Errorf("answer = %+v; want %q after 2 model calls", a, want)
			}
			// The stored turn is user, tool_use, tool_result, answer, and a
			// next turn sends it back (the simulator checks the pairing
			// and the thinking signatures).
			if st := getSession(t, ta.url, "everything"); st.Version != 4 || st.Turns != 1 {
				t.Fatalf("stored session: %+v; want 4 messages, 1 turn", st)
			}
			if a := turn(t, ta.url, "everything", "thanks", ""); a.Turn != 2 || !strings.Contains(a.Response, "messages: 5") {
				t.Errorf("next turn = %+v; want turn 2 on the 4 stored messages", a)
			}
		})
	}
}

// TestTurnParallelTools runs a reply with 5 tool_use blocks of a tool that
// takes 200 ms: the calls overlap, so the turn takes about 200 ms of tool
// time, not a second.
func TestTurnParallelTools(t *testing.T) {
	peer := newMCPPeer(t, "go")
	ta := newToolApp(t, fmt.Sprintf(`{"mcpServers": {"go": {"url": %q}}}`, peer.url()), nil)
	turn(t, ta.url, "warm", "hello", "") // the first turn pays for connections

	msg := strings.Repeat(`[[tool sleep {"ms":200}]] `, 5)
	start := time.Now()
	a := turn(t, ta.url, "parallel", msg, "")
	took := time.Since(start)
	t.Logf("turn with 5 parallel 200 ms tool calls took %v", took)
	if got := results(t, a.Response); len(got) != 1 || got["sleep"] != "slept" || strings.Count(a.Response, "sleep=slept") != 5 {
		t.Errorf("answer = %q; want 5 sleep results", a.Response)
	}
	peer.log.mu.Lock()
	overlap := peer.log.overlap
	peer.log.mu.Unlock()
	if overlap != 5 {
		t.Errorf("at most %d sleep calls ran at once; want all 5", overlap)
	}
	if took >= time.Second {
		t.Errorf("turn took %v; want well under 1s (5 × 200 ms in parallel)", took)
	}
}

// TestTurnToolFailures runs one turn whose reply calls a tool that crashes
// its stdio server mid-call, one that hangs past its timeout and one that
// returns content MCP does not have: each comes back to Claude as an
// is_error tool_result and the turn completes. The crashed server is
// started again for the next turn.
func TestTurnToolFailures(t *testing.T) {
	config := `{"mcpServers": {
		"crasher": ` + mcptest.StdioConfig(t, `, "allowedTools": ["crash", "echo"]`) + `,
		"hanger": ` + mcptest.StdioConfig(t, `, "allowedTools": ["hang"], "timeout": "300ms"`) + `,
		"corrupt": ` + mcptest.StdioConfig(t, `, "allowedTools": ["bad_content"]`) + `}}`
	ta := newToolApp(t, config, nil)
	a := turn(t, ta.url, "failures", "[[tool crash]] [[tool hang]] [[tool bad_content]]", "")
	if a.StopReason != "end_turn" || a.ModelCalls != 2 {
		t.Errorf("answer = %+v; want the turn to end after 2 model calls", a)
	}
	got := results(t, a.Response)
	for _, tc := range []struct {
		tool string
		want []string
	}{
		{"crash", []string{`MCP server "crasher" stopped during the call to tool "crash"`}},
		{"hang", []string{`Tool "hang" timed out after 300ms`}},
		{"bad_content", []string{`"corrupt"`, `"hologram"`}},
	} {
		r := got[tc.tool]
		if !strings.HasPrefix(r, "(error) ") {
			t.Errorf("result of %s = %q; want an is_error result", tc.tool, r)
		}
		for _, w := range tc.want {
			if !strings.Contains(r, w) {
				t.Errorf("result of %s = %q; want it to say %s", tc.tool, r, w)
			}
		}
	}
	if a := turn(t, ta.url, "failures", `[[tool echo {"message":"back"}]]`, ""); a.Response != "tool results: echo=stdio-test: back" {
		t.Errorf("after the crash, echo on the restarted server = %q", a.Response)
	}
}

// TestTurnMaxModelCalls lets a turn make 2 model calls: the second is made
// with tools off, and the answer says that the limit ended the tool loop.
func TestTurnMaxModelCalls(t *testing.T) {
	peer := newMCPPeer(t, "go")
	ta := newToolApp(t, fmt.Sprintf(`{"mcpServers": {"go": {"url": %q}}}`, peer.url()), map[string]string{"LAMBDAGENT_MAX_MODEL_CALLS": "2"})
	a := turn(t, ta.url, "limited", `[[tool echo {"message":"one"}]]`, "")
	if a.ModelCalls != 2 || a.Limit != "max_model_calls" || a.Response != "tool results: echo=go: one" {
		t.Errorf("answer = %+v; want 2 model calls and limit max_model_calls", a)
	}
	reqs := ta.sim.Requests()
	if len(reqs) != 2 || !bytes.Contains(reqs[1].Body, []byte(`"tool_choice":{"type":"none"}`)) {
		t.Errorf("the last allowed model call did not turn tools off")
	}
	// A turn that ends before the limit says nothing of it.
	ta = newToolApp(t, fmt.Sprintf(`{"mcpServers": {"go": {"url": %q}}}`, peer.url()), map[string]string{"LAMBDAGENT_MAX_MODEL_CALLS": "3"})
	if a := turn(t, ta.url, "free", `[[tool echo {"message":"one"}]]`, ""); a.ModelCalls != 2 || a.Limit != "" {
		t.Errorf("answer under the limit = %+v; want no limit", a)
	}
}

// storedSession is what GET /v1/sessions/{id} says of a session.
type storedSession struct {
	Version int64 `json:"version"`
	Turns   int64 `json:"turns"`
}

func getSession(t *testing.T, base, id string) storedSession {
	t.Helper()
	resp, err := http.Get(base + "/v1/sessions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st storedSession
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET session %s: %d, %v", id, resp.StatusCode, err)
	}
	return st
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent/internal/mcptools"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// ledger is a side-effecting MCP server that deduplicates on the
// tool_use id lambdagent sends in _meta: "charge" acts once per id and
// answers a repeat with the first result. effects counts what it did, per
// order and kind, at the server; repeats counts calls it deduplicated.
type ledger struct {
	mu      sync.Mutex
	results map[string]string // tool_use id → first answer
	effects map[string]int    // "order/what" → charges made
	repeats int
	noID    int // calls without a tool_use id
}

func (l *ledger) server() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "ledger", Version: "1"}, nil)
	type chargeIn struct {
		Order string `json:"order"`
		What  string `json:"what"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "charge", Description: "charges an order once per tool_use id"},
		func(_ context.Context, req *mcp.CallToolRequest, in chargeIn) (*mcp.CallToolResult, any, error) {
			id, _ := req.Params.GetMeta()[mcptools.ToolUseIDMeta].(string)
			l.mu.Lock()
			if id == "" {
				l.noID++
			} else if res, ok := l.results[id]; ok {
				l.repeats++
				l.mu.Unlock()
				return textResult(res), nil, nil
			}
			l.effects[in.Order+"/"+in.What]++
			res := fmt.Sprintf(`{"charged":%q}`, in.Order+"/"+in.What)
			l.results[id] = res
			l.mu.Unlock()
			// The charge is made; the answer takes a while, so that a
			// kill often lands after the act and before the step's
			// commit: the window the tool_use id closes.
			time.Sleep(150 * time.Millisecond)
			return textResult(res), nil, nil
		})
	type msIn struct {
		MS int `json:"ms"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "work", Description: "takes ms milliseconds, no side effect"},
		func(ctx context.Context, _ *mcp.CallToolRequest, in msIn) (*mcp.CallToolResult, any, error) {
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
				return textResult(`{"worked":true}`), nil, nil
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		})
	return srv
}

// TestWorkflowChaos runs 20 workflow runs over two `serve` processes
// while one of them, picked at random, is SIGKILLed at a random moment
// and started again, eight times. Every run must complete with its
// outputs, and each of the three side-effecting charge steps of every
// run must have acted exactly once, counted at the MCP server, which
// deduplicates on the tool_use id lambdagent sends in the call's _meta
// (the same id on every replay of the step).
//
//	go test ./cmd/lambdagent -run WorkflowChaos -v
func TestWorkflowChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("a chaos run")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	l := &ledger{results: map[string]string{}, effects: map[string]int{}}
	srv := l.server()
	// Stateful: serve processes sharing one Redis continue one stored
	// Mcp-Session-Id, calling on it at once; each sends request ids of its
	// own (mcptools' idSpace), which the server would otherwise refuse as
	// a "duplicate in-flight request ID".
	hs := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(func() { hs.CloseClientConnections(); hs.Close() })

	dir := t.TempDir()
	def := filepath.Join(dir, "order.yaml")
	os.WriteFile(def, []byte(`name: order
steps:
  - {id: pay, tool: charge, input: {order: "{{.input.order}}", what: pay}}
  - {id: w1, tool: work, input: {ms: 300}}
  - {id: ship, tool: charge, input: {order: "{{.input.order}}", what: ship}}
  - {id: w2, tool: work, input: {ms: 300}}
  - {id: bill, tool: charge, input: {order: "{{.input.order}}", what: bill}}
  - {id: w3, tool: work, input: {ms: 300}}
`), 0o600)
	env := append(serveEnv(t, redistest.Start(t), hs.URL),
		"LAMBDAGENT_WORKFLOWS="+def, "LAMBDAGENT_WORKFLOW_WORKERS=3", "LAMBDAGENT_LOG_LEVEL=error")
	procs := []*proc{start(t, "serve", env...), start(t, "serve", env...)}

	// Start the runs, each under its own key: a start cut by a kill is
	// sent again and finds its run.
	const runs = 20
	ids := make([]string, runs)
	for i := range runs {
		for attempt := 0; ; attempt++ {
			req, _ := http.NewRequest("POST", "http://"+procs[i%2].addr+"/v1/workflows/order/runs",
				strings.NewReader(fmt.Sprintf(`{"input":{"order":"o%d"}}`, i)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", fmt.Sprintf("chaos-%d", i))
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				var c struct {
					RunID string `json:"run_id"`
				}
				json.NewDecoder(resp.Body).Decode(&c)
				resp.Body.Close()
				if c.RunID != "" {
					ids[i] = c.RunID
					break
				}
			}
			if attempt > 20 {
				t.Fatalf("start run %d: %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	status := func(id string) (string, []byte) {
		for _, p := range procs {
			resp, err := http.Get("http://" + p.addr + "/v1/runs/" + id)
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var r struct{ Status string }
			json.Unmarshal(body, &r)
			return r.Status, body
		}
		return "", nil
	}
	allDone := func() bool {
		for _, id := range ids {
			if s, _ := status(id); s != "completed" {
				return false
			}
		}
		return true
	}

	kills := 0
	deadline := time.Now().Add(90 * time.Second)
	for kills < 8 && !allDone() {
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		n := rng.IntN(2)
		procs[n].kill()
		kills++
		procs[n] = start(t, "serve", env...)
	}
	if kills < 4 {
		t.Errorf("only %d kills before every run completed: the runs are too short to be hit", kills)
	}
	for !allDone() {
		if time.Now().After(deadline) {
			for i, id := range ids {
				if s, body := status(id); s != "completed" {
					t.Errorf("run %d %s: %s", i, id, body)
				}
			}
			t.Fatalf("not every run completed after %d kills", kills)
		}
		time.Sleep(100 * time.Millisecond)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	for i, id := range ids {
		_, body := status(id)
		for _, what := range []string{"pay", "ship", "bill"} {
			key := fmt.Sprintf("o%d/%s", i, what)
			if n := l.effects[key]; n != 1 {
				t.Errorf("run %d (%s): %s charged %d times at the server, want 1", i, id, key, n)
			}
			if !strings.Contains(string(body), `"charged":"`+key+`"`) {
				t.Errorf("run %d: output of %s missing: %s", i, what, body)
			}
		}
	}
	if l.noID > 0 {
		t.Errorf("%d charge calls came without a tool_use id in _meta", l.noID)
	}
	t.Logf("%d runs completed over 2 serve processes with %d SIGKILLs; %d charges, each once; %d repeated calls deduplicated by tool_use id",
		runs, kills, len(l.effects), l.repeats)
}

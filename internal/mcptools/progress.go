package mcptools

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// progressRouter sends a request that asks for progress notifications
// (a progressToken in its params' _meta) to sse, and every other to
// plain. The agent handler answers in plain JSON, which suits stateless
// compute, but a JSON answer cannot carry notifications before it: the
// go-sdk sends them on the request's own response only when that is an
// event stream.
func progressRouter(plain, sse http.Handler, limit int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && wantsProgress(r, limit) {
			sse.ServeHTTP(w, r)
			return
		}
		plain.ServeHTTP(w, r)
	})
}

// wantsProgress reads up to limit+1 bytes of the body, which it puts
// back, and reports whether it is one JSON-RPC request with a
// progressToken. A body over the limit is not looked at: the SDK refuses
// it.
func wantsProgress(r *http.Request, limit int64) bool {
	head, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	r.Body = readCloser{io.MultiReader(bytes.NewReader(head), r.Body), r.Body}
	if err != nil || int64(len(head)) > limit {
		return false
	}
	var m struct {
		Params struct {
			Meta map[string]json.RawMessage `json:"_meta"`
		} `json:"params"`
	}
	if json.Unmarshal(head, &m) != nil {
		return false // a batch, or not JSON: the SDK answers it
	}
	tok, ok := m.Params.Meta["progressToken"]
	return ok && string(tok) != "null"
}

type readCloser struct {
	io.Reader
	io.Closer
}

// progress sends the notifications of one ask_agent call, numbered 1, 2,
// … in the order sent; none after stop.
type progress struct {
	ctx     context.Context
	session *mcp.ServerSession
	token   any

	mu sync.Mutex
	// guarded by mu:
	n       float64
	stopped bool
}

func newProgress(ctx context.Context, req *mcp.CallToolRequest) *progress {
	p := &progress{ctx: ctx}
	if req != nil && req.Params != nil {
		p.session, p.token = req.Session, req.Params.GetProgressToken()
	}
	return p
}

// fn is the ProgressFunc to hand the AskFunc: nil when the client asked
// for none.
func (p *progress) fn() ProgressFunc {
	if p.token == nil || p.session == nil {
		return nil
	}
	return p.send
}

func (p *progress) send(message string) {
	p.mu.Lock()
	defer p.mu.Unlock() // held while sending, so the numbers arrive in order
	if p.stopped {
		return
	}
	p.n++
	// A notification that cannot be sent (the client left) is no reason
	// to stop the turn.
	_ = p.session.NotifyProgress(p.ctx, &mcp.ProgressNotificationParams{ProgressToken: p.token, Progress: p.n, Message: message})
}

func (p *progress) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
}

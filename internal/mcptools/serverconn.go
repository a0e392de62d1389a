package mcptools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent/internal/redact"
)

// terminateDuration is how long a stdio server gets to exit after its stdin
// closes before it is sent SIGTERM (and later SIGKILL).
const terminateDuration = 2 * time.Second

// inheritedEnv are the variables a stdio server inherits, as in the
// TypeScript SDK's getDefaultEnvironment (used by Claude Desktop).
var inheritedEnv = []string{"HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"}

// clientInfo is how we introduce ourselves to servers.
var clientInfo = &mcp.Implementation{Name: "lambdagent", Version: "0"}

// A server is one configured MCP server and its current connection.
type server struct {
	t      *Toolset
	cfg    ServerConfig
	logger *slog.Logger
	client *mcp.Client
	// allowed is the allow-list as a set; nil allows every tool.
	allowed map[string]bool
	// listSeq numbers tool list requests, so an older answer never replaces
	// a newer one.
	listSeq atomic.Int64

	mu sync.Mutex // guards the fields below
	// conn is the current connection; nil, or not alive, if none.
	conn *conn
	// dialing is closed when the connect in progress ends; nil if none.
	dialing chan struct{}
	// tools are the tools Claude may see, from the newest list; nil until
	// listed.
	tools    []*mcp.Tool
	toolsSeq int64 // listSeq of tools
	// failures counts connects failed in a row; nextDial is the earliest
	// time for a background reconnect.
	failures int
	nextDial time.Time
	// resume is a session to continue on the next connect; nil if none.
	resume *Session
	// refreshing is set while refreshTools runs; refreshAgain asks it to
	// list once more; refreshSession is the session to list on.
	refreshing, refreshAgain bool
	refreshSession           *mcp.ClientSession
}

// A conn is one live MCP session with a server.
type conn struct {
	cs      *mcp.ClientSession
	session Session       // zero for stdio and sessionless HTTP servers
	done    chan struct{} // closed when the session ends
}

func (c *conn) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func newServer(t *Toolset, cfg ServerConfig) *server {
	s := &server{t: t, cfg: cfg}
	s.logger = slog.New(redact.Handler(t.logger.Handler(), cfg.redact)).With("mcp_server", cfg.Name)
	if cfg.AllowedTools != nil {
		s.allowed = make(map[string]bool, len(cfg.AllowedTools))
		for _, name := range cfg.AllowedTools {
			s.allowed[name] = true
		}
	}
	s.client = mcp.NewClient(clientInfo, &mcp.ClientOptions{
		Logger: s.logger,
		// No roots, sampling or elicitation: a turn has no user at hand.
		Capabilities: &mcp.ClientCapabilities{},
		ToolListChangedHandler: func(_ context.Context, req *mcp.ToolListChangedRequest) {
			s.refreshSoon(req.Session)
		},
	})
	return s
}

// connection returns the live connection, connecting first if there is
// none. Concurrent callers share one connect.
func (s *server) connection(ctx context.Context) (*conn, error) {
	for {
		s.mu.Lock()
		if c := s.conn; c != nil && c.alive() {
			s.mu.Unlock()
			return c, nil
		}
		if ch := s.dialing; ch != nil {
			s.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		ch := make(chan struct{})
		s.dialing = ch
		resume := s.resume
		s.mu.Unlock()

		c, err := s.dialTracked(ctx, resume)

		s.mu.Lock()
		s.dialing = nil
		close(ch)
		if err != nil {
			s.failures++
			s.nextDial = time.Now().Add(redialDelay(s.t.opts.RedialDelay, s.failures))
			s.mu.Unlock()
			return nil, err
		}
		if s.t.isClosed() {
			// Close ran during the dial and could not see c: close it here,
			// or its watcher would keep Close waiting.
			s.mu.Unlock()
			s.closeConn(c)
			return nil, ErrClosed
		}
		s.failures = 0
		s.resume = nil
		s.conn = c
		s.mu.Unlock()
		s.t.rebuild()
		return c, nil
	}
}

// dialTracked dials as work Close waits for, and cancels it on Close.
func (s *server) dialTracked(ctx context.Context, resume *Session) (*conn, error) {
	if !s.t.enter() {
		return nil, ErrClosed
	}
	defer s.t.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, s.t.opts.ConnectTimeout)
	defer cancel()
	stop := context.AfterFunc(s.t.ctx, cancel)
	defer stop()
	return s.dial(ctx, resume)
}

// dial connects, continuing resume if it can, and lists the tools.
func (s *server) dial(ctx context.Context, resume *Session) (*conn, error) {
	if resume != nil {
		c, err := s.dialOnce(ctx, resume)
		if err == nil {
			s.logger.Info("resumed MCP session")
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		s.logger.Info("could not resume MCP session; starting a new one", "error", err)
	}
	return s.dialOnce(ctx, nil)
}

func (s *server) dialOnce(ctx context.Context, resume *Session) (*conn, error) {
	var transport mcp.Transport
	var opts *mcp.ClientSessionOptions
	switch s.cfg.Type {
	case TypeStdio:
		cmd := exec.Command(s.cfg.Command, s.cfg.Args...)
		cmd.Env = stdioEnv(s.cfg.Env)
		cmd.Stderr = s.t.opts.Stderr
		transport = &mcp.CommandTransport{Command: cmd, TerminateDuration: terminateDuration}
	case TypeHTTP:
		transport = &mcp.StreamableClientTransport{
			Endpoint:   s.cfg.URL,
			HTTPClient: s.t.httpClient(s.cfg, resume),
		}
		if resume != nil {
			// A stored session speaks its version; asking for it also skips
			// the server/discover probe of newer protocol versions.
			opts = &mcp.ClientSessionOptions{ProtocolVersion: resume.ProtocolVersion}
		}
	case TypeInProcess:
		if s.cfg.Server == nil {
			return nil, errors.New("in-process server is nil")
		}
		ct, st := mcp.NewInMemoryTransports()
		// The server session ends when the client closes its end of the
		// pipe: closing the connection closes both.
		if _, err := s.cfg.Server.Connect(ctx, st, nil); err != nil {
			return nil, fmt.Errorf("connect in-process server: %w", err)
		}
		transport = ct
	default:
		return nil, fmt.Errorf("unknown server type %q", s.cfg.Type)
	}
	cs, err := s.client.Connect(ctx, transport, opts)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	seq := s.listSeq.Add(1)
	tools, err := s.list(ctx, cs)
	if err != nil {
		cs.Close()
		return nil, fmt.Errorf("list tools: %w", err)
	}
	c := &conn{cs: cs, done: make(chan struct{})}
	if id := cs.ID(); id != "" && s.cfg.Type == TypeHTTP {
		c.session = Session{ID: id, ProtocolVersion: cs.InitializeResult().ProtocolVersion}
	}
	if !s.t.goBackground(func() { s.watch(c) }) {
		cs.Close()
		return nil, ErrClosed
	}
	s.mu.Lock()
	if seq > s.toolsSeq {
		s.tools, s.toolsSeq = tools, seq
	}
	s.mu.Unlock()
	return c, nil
}

// watch waits for c to end and forgets it, so the next use reconnects.
func (s *server) watch(c *conn) {
	err := c.cs.Wait()
	close(c.done)
	s.mu.Lock()
	current := s.conn == c
	if current {
		s.conn = nil
	}
	s.mu.Unlock()
	if current && !s.t.isClosed() {
		if err == nil {
			err = errors.New("connection closed")
		}
		s.logger.Warn("MCP server connection ended; it will be reopened on next use", "error", err)
	}
}

// drop forgets c and closes it.
func (s *server) drop(c *conn) {
	s.mu.Lock()
	if s.conn == c {
		s.conn = nil
	}
	s.mu.Unlock()
	s.closeConn(c)
}

func (s *server) closeConn(c *conn) {
	if err := c.cs.Close(); err != nil {
		s.logger.Debug("close MCP session", "error", err)
	}
}

// list lists the tools Claude may see.
func (s *server) list(ctx context.Context, cs *mcp.ClientSession) ([]*mcp.Tool, error) {
	tools := []*mcp.Tool{}
	seen := make(map[string]bool)
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, err
		}
		seen[tool.Name] = true
		if s.allowed == nil || s.allowed[tool.Name] {
			tools = append(tools, tool)
		}
	}
	var missing []string
	for name := range s.allowed {
		if !seen[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		s.logger.Warn("allowedTools names tools the server does not have", "tools", missing)
	}
	return tools, nil
}

// refreshSoon relists the tools of cs in the background, after a
// notifications/tools/list_changed. Notifications arriving while a refresh
// runs cause one more.
func (s *server) refreshSoon(cs *mcp.ClientSession) {
	s.mu.Lock()
	s.refreshSession = cs
	if s.refreshing {
		s.refreshAgain = true
		s.mu.Unlock()
		return
	}
	s.refreshing = true
	s.mu.Unlock()
	if !s.t.goBackground(s.refreshTools) {
		s.mu.Lock()
		s.refreshing = false
		s.mu.Unlock()
	}
}

func (s *server) refreshTools() {
	for {
		s.mu.Lock()
		cs := s.refreshSession
		s.refreshAgain = false
		s.mu.Unlock()

		seq := s.listSeq.Add(1)
		ctx, cancel := context.WithTimeout(s.t.ctx, s.t.opts.ConnectTimeout)
		tools, err := s.list(ctx, cs)
		cancel()
		if err != nil {
			if s.t.ctx.Err() == nil {
				s.logger.Warn("refresh MCP tool list", "error", err)
			}
		} else {
			s.mu.Lock()
			changed := seq > s.toolsSeq
			if changed {
				s.tools, s.toolsSeq = tools, seq
			}
			s.mu.Unlock()
			if changed {
				s.t.rebuild()
			}
		}

		s.mu.Lock()
		if !s.refreshAgain {
			s.refreshing = false
			s.refreshSession = nil
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// redialIfDue starts a background connect if there is no connection, none
// is in progress and the backoff has passed.
func (s *server) redialIfDue() {
	s.mu.Lock()
	due := (s.conn == nil || !s.conn.alive()) && s.dialing == nil && !time.Now().Before(s.nextDial)
	if due {
		// Hold off other callers until this attempt has had its chance.
		s.nextDial = time.Now().Add(s.t.opts.ConnectTimeout)
	}
	s.mu.Unlock()
	if !due {
		return
	}
	s.t.goBackground(func() {
		if _, err := s.connection(s.t.ctx); err != nil && s.t.ctx.Err() == nil {
			s.logger.Info("MCP server still unreachable", "error", err)
		}
	})
}

// redialDelay is base doubled per failure beyond the first, capped, with
// ±25% jitter.
func redialDelay(base time.Duration, failures int) time.Duration {
	d := base
	for i := 1; i < failures && d < maxRedialDelay; i++ {
		d *= 2
	}
	d = min(d, maxRedialDelay)
	return d - d/4 + rand.N(d/2+1)
}

// call calls a tool, allowing it timeout once connected: starting or
// reconnecting the server has its own Options.ConnectTimeout. A session the
// server no longer knows (404) was never asked to run the tool, so it is
// renewed and the call sent once more.
//
// toolUseID, when set, goes in the request's _meta under ToolUseIDMeta:
// a call repeated after a crash or a redelivery carries the same id, so a
// side-effecting server can act once per id.
func (s *server) call(ctx context.Context, tool string, input []byte, timeout time.Duration, toolUseID string) (*mcp.CallToolResult, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.connection(ctx)
		if err != nil {
			return nil, &unavailableError{err}
		}
		params := &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(input)}
		if tp := traceparentFrom(ctx); tp != "" {
			params.Meta = mcp.Meta{"traceparent": tp}
		}
		if toolUseID != "" {
			if params.Meta == nil {
				params.Meta = mcp.Meta{}
			}
			params.Meta[ToolUseIDMeta] = toolUseID
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		stop := context.AfterFunc(s.t.ctx, cancel) // Close cancels calls
		res, err := c.cs.CallTool(cctx, params)
		timedOut := cctx.Err() != nil && ctx.Err() == nil && s.t.ctx.Err() == nil
		stop()
		cancel()
		switch {
		case err == nil:
			return res, nil
		case timedOut:
			return nil, &timeoutError{timeout}
		case errors.Is(err, mcp.ErrSessionMissing) && attempt == 0 && ctx.Err() == nil:
			s.logger.Info("MCP session expired; starting a new one")
			s.drop(c)
			continue
		}
		return nil, &callError{conn: c, err: err}
	}
}

// A timeoutError means a call ran out of its time.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string { return fmt.Sprintf("timed out after %s", e.after) }

// An unavailableError means no connection could be made for a call.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// A callError is a failed tools/call on conn.
type callError struct {
	conn *conn
	err  error
}

func (e *callError) Error() string { return e.err.Error() }
func (e *callError) Unwrap() error { return e.err }

// Codes of errors go-sdk makes up locally (internal/jsonrpc2): they are not
// the server's answer.
const (
	codeClientClosing = -32003
	codeServerClosing = -32004
	codeRejected      = -32005 // the transport did not deliver the request
)

// exitGrace is how long describe waits for a connection to be seen as ended
// after a call failed, to tell a crash from other errors.
const exitGrace = 200 * time.Millisecond

// describe turns a call failure into a message for Claude. ctx is the
// Run context.
func (s *server) describe(ctx context.Context, err error, tool string) string {
	name := s.cfg.Name
	var msg string
	var unavailable *unavailableError
	var timeout *timeoutError
	var ce *callError
	var werr *jsonrpc.Error
	var nerr net.Error
	switch {
	case errors.Is(err, ErrClosed) || s.t.ctx.Err() != nil:
		msg = fmt.Sprintf("Tool %q could not run to the end: the agent is shutting down.", tool)
	case ctx.Err() != nil:
		msg = fmt.Sprintf("Tool %q was cancelled: the turn was cancelled.", tool)
	case errors.As(err, &timeout):
		msg = fmt.Sprintf("Tool %q timed out after %s and was cancelled. It may have done part of its work. Retry only if that is safe, perhaps with a smaller request.", tool, timeout.after)
	case errors.As(err, &unavailable):
		msg = fmt.Sprintf("MCP server %q, which provides tool %q, is unavailable: %v. Its tools cannot be used right now; continue without them or try again later.", name, tool, unavailable.err)
	case errors.As(err, &nerr):
		msg = fmt.Sprintf("MCP server %q, which provides tool %q, is unreachable: %v. Try again later or continue without it.", name, tool, err)
	case errors.As(err, &werr) && werr.Code == codeRejected:
		msg = fmt.Sprintf("MCP server %q did not take the call to tool %q: %v. Try again later or continue without it.", name, tool, err)
	case errors.As(err, &werr) && werr.Code != codeClientClosing && werr.Code != codeServerClosing:
		msg = fmt.Sprintf("MCP server %q rejected the call to tool %q: %s (JSON-RPC error %d).", name, tool, werr.Message, werr.Code)
	case errors.As(err, &ce) && ended(ce.conn, err):
		restart := "it will be restarted on the next call"
		if s.cfg.Type == TypeHTTP {
			restart = "it will be reconnected on the next call"
		}
		msg = fmt.Sprintf("MCP server %q stopped during the call to tool %q (%v); %s. The tool may or may not have completed its work.", name, tool, err, restart)
	default:
		msg = fmt.Sprintf("Calling tool %q on MCP server %q failed: %v.", tool, name, err)
	}
	return s.cfg.redact(msg)
}

// ended reports whether c ended with (or just after) err.
func ended(c *conn, err error) bool {
	if errors.Is(err, mcp.ErrConnectionClosed) {
		return true
	}
	select {
	case <-c.done:
		return true
	case <-time.After(exitGrace):
		return false
	}
}

// stdioEnv is the environment of a stdio server.
func stdioEnv(extra map[string]string) []string {
	var env []string
	for _, k := range inheritedEnv {
		if _, override := extra[k]; override {
			continue
		}
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, k := range sortedKeys(extra) {
		env = append(env, k+"="+extra[k])
	}
	return env
}

package mcptools

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/sync/errgroup"
)

// Defaults for zero [Options] fields.
const (
	DefaultCallTimeout    = 60 * time.Second
	DefaultConnectTimeout = 30 * time.Second
	DefaultRedialDelay    = time.Second
)

// maxRedialDelay caps the wait between background reconnects.
const maxRedialDelay = time.Minute

// Options tunes a [Toolset]. A zero field means its default.
type Options struct {
	// CallTimeout bounds each tool call of a server whose config has no
	// "timeout". Zero means DefaultCallTimeout.
	CallTimeout time.Duration
	// ConnectTimeout bounds starting or connecting to one server and listing
	// its tools. Zero means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// RedialDelay is the first wait before reconnecting in the background to
	// an HTTP server that is down; it doubles, with jitter, up to a minute.
	// Zero means DefaultRedialDelay.
	RedialDelay time.Duration

	// HTTPClient sends the requests to Streamable HTTP servers; its Transport
	// is wrapped to add the configured headers (telemetry can plug in here).
	// Its Timeout is not used: it would cut the server's event stream. Nil
	// means http.DefaultClient.
	HTTPClient *http.Client
	// ResumeSessions maps server names to sessions (from [Toolset.Sessions]
	// in an earlier process) to continue instead of starting new ones. A
	// session the server no longer knows is replaced by a new one.
	ResumeSessions map[string]Session
	// KeepSessions makes Close leave HTTP sessions open on their servers,
	// so that another process can resume them. Without it Close ends them.
	KeepSessions bool

	// Stderr receives what stdio servers write to their stderr. Nil means
	// os.Stderr.
	Stderr io.Writer
	// Logger receives connection events. Nil means slog.Default().
	Logger *slog.Logger
}

// A Call is one tool_use block of a Claude reply.
type Call struct {
	// ID is the tool_use block's id; the result answers it. It is sent to
	// the server in the request's _meta as ToolUseIDMeta.
	ID string
	// Name is the tool name as Claude saw it in Definitions.
	Name string
	// Input is the tool_use block's input, a JSON object.
	Input json.RawMessage
}

// ToolUseIDMeta is the _meta key of a tools/call request that carries the
// call's tool_use id. The id is the same every time the same call is made
// again (a turn or a workflow step repeated after a crash or a
// redelivery), so a server whose tool has a side effect can deduplicate
// on it: act once per id, and answer a repeat with the first result.
const ToolUseIDMeta = "lambdagent/tool_use_id"

// A Result answers one Call.
type Result struct {
	// ToolUseID is the ID of the Call.
	ToolUseID string
	// Block is the tool_result content block, ready to put in the next user
	// message: {"type":"tool_result","tool_use_id":…,"content":[…],"is_error":…}.
	Block json.RawMessage
	// IsError repeats the block's is_error: the tool failed, or could not be
	// called at all.
	IsError bool
}

// A Toolset holds the connections to the MCP servers of a [Config] and
// presents their tools to Claude. Open one per process and share it: all
// methods are safe for concurrent use.
type Toolset struct {
	opts    Options
	logger  *slog.Logger
	servers []*server // sorted by name

	// ctx scopes background work: reconnects, tool list refreshes and
	// connection watchers. Close cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed, and wg.Add against Close's wg.Wait
	closed bool
	wg     sync.WaitGroup

	rebuildMu sync.Mutex // serialises rebuild
	snap      atomic.Pointer[snapshot]
}

// A snapshot is what Claude sees, rebuilt whenever a tool list changes.
type snapshot struct {
	defs  json.RawMessage    // the Messages API "tools" array
	tools map[string]toolRef // by name in defs, plus <server>__<tool> aliases
	names []string           // names in defs, in order
}

// A toolRef points at one tool of one server.
type toolRef struct {
	srv  *server
	name string // the MCP name
}

// Open connects to every server of cfg and lists their tools.
//
// A stdio server that cannot be started fails Open. An HTTP server that
// cannot be reached does not: it is logged, its tools stay unknown, and it is
// retried in the background (see [Toolset.Definitions]).
//
// Stdio servers inherit only HOME, LOGNAME, PATH, SHELL, TERM and USER from
// this process (as Claude Desktop does), plus their "env": the process
// environment holds our own credentials, which third-party servers must not
// see.
//
// ctx bounds the connecting only; call Close to stop the servers.
func Open(ctx context.Context, cfg Config, opts Options) (*Toolset, error) {
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = DefaultCallTimeout
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.RedialDelay <= 0 {
		opts.RedialDelay = DefaultRedialDelay
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	for name := range opts.ResumeSessions {
		if _, ok := cfg.Servers[name]; !ok {
			opts.Logger.Info("ignoring MCP session of a server no longer configured", "server", name)
		}
	}

	t := &Toolset{opts: opts, logger: opts.Logger}
	t.ctx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))
	t.snap.Store(&snapshot{defs: json.RawMessage("[]"), tools: map[string]toolRef{}})
	for _, name := range sortedKeys(cfg.Servers) {
		sc := cfg.Servers[name]
		sc.Name = name
		s := newServer(t, sc)
		if r, ok := opts.ResumeSessions[name]; ok && sc.Type == TypeHTTP && r.ID != "" && r.ProtocolVersion != "" {
			s.resume = &r
		}
		t.servers = append(t.servers, s)
	}

	var g errgroup.Group
	for _, s := range t.servers {
		g.Go(func() error {
			_, err := s.connection(ctx)
			switch {
			case err == nil:
				return nil
			case s.cfg.Type == TypeHTTP:
				s.logger.Warn("MCP server unreachable; its tools will appear when it answers", "error", s.cfg.redact(err.Error()))
				return nil
			}
			return fmt.Errorf("mcptools: start MCP server %s: %s", s.cfg.Name, s.cfg.redact(err.Error()))
		})
	}
	if err := g.Wait(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Definitions returns the Messages API "tools" array for all tools now
// known: [{"name", "description", "input_schema"}, …], in a fixed order (so
// prompt caching keeps working). It is cached and rebuilt only when a tool
// list changes; callers must not modify it.
//
// It also starts, in the background, a reconnect to any HTTP server that is
// down and due for one, so a server that comes up shows its tools from a
// following turn on.
func (t *Toolset) Definitions() json.RawMessage {
	for _, s := range t.servers {
		if s.cfg.Type == TypeHTTP {
			s.redialIfDue()
		}
	}
	return t.snap.Load().defs
}

// Call runs one tool call and returns its result. A call that fails, for
// any reason, gets a result with is_error set and a message saying what
// went wrong; Call itself does not fail. Cancelling ctx cancels the call.
//
// Call is safe for concurrent use, and concurrent calls, to one server or
// several, run at once: the caller decides how many (the agent runs the
// calls of one reply in parallel, see agent.Config.MaxParallelTools).
func (t *Toolset) Call(ctx context.Context, call Call) Result {
	fail := func(msg string) Result {
		return Result{ToolUseID: call.ID, Block: errorBlock(call.ID, msg), IsError: true}
	}
	snap := t.snap.Load()
	ref, ok := snap.tools[call.Name]
	if !ok {
		return fail(unknownTool(call.Name, snap.names))
	}
	s := ref.srv
	input := bytes.TrimSpace(call.Input)
	switch {
	case len(input) == 0 || string(input) == "null":
		input = []byte("{}")
	case !json.Valid(input):
		return fail("The tool input is not valid JSON.")
	case input[0] != '{':
		return fail("The tool input must be a JSON object.")
	}

	timeout := s.cfg.Timeout
	if timeout <= 0 {
		timeout = t.opts.CallTimeout
	}
	start := time.Now()
	res, err := s.call(ctx, ref.name, input, timeout, call.ID)
	if err != nil {
		msg := s.describe(ctx, err, ref.name)
		s.logger.Warn("MCP tool call failed", "tool", ref.name, "duration", time.Since(start), "error", msg)
		return fail(msg)
	}
	block, err := resultBlock(call.ID, res)
	if err != nil {
		msg := s.cfg.redact(fmt.Sprintf("MCP server %q returned invalid content for tool %q: %v", s.cfg.Name, ref.name, err))
		s.logger.Warn("MCP tool call failed", "tool", ref.name, "duration", time.Since(start), "error", msg)
		return fail(msg)
	}
	return Result{ToolUseID: call.ID, Block: block, IsError: res.IsError}
}

// unknownTool tells Claude which tools exist.
func unknownTool(name string, names []string) string {
	const maxListed = 50
	if len(names) == 0 {
		return fmt.Sprintf("Unknown tool %q: no tools are available right now.", name)
	}
	listed := names
	more := ""
	if len(listed) > maxListed {
		listed = listed[:maxListed]
		more = fmt.Sprintf(" and %d more", len(names)-maxListed)
	}
	return fmt.Sprintf("Unknown tool %q. Available tools: %s%s.", name, strings.Join(listed, ", "), more)
}

// Sessions returns the Streamable HTTP session of each HTTP server that has
// one, by server name, for [Options.ResumeSessions] in a later process. A
// session given to Open that has not been tried yet (its server is down) is
// included, so it is not lost.
func (t *Toolset) Sessions() map[string]Session {
	out := make(map[string]Session)
	for _, s := range t.servers {
		s.mu.Lock()
		if c := s.conn; c != nil && c.alive() && c.session.ID != "" {
			out[s.cfg.Name] = c.session
		} else if s.resume != nil {
			out[s.cfg.Name] = *s.resume
		}
		s.mu.Unlock()
	}
	return out
}

// Close cancels calls still running (they fail), stops every stdio server,
// ends HTTP sessions (unless Options.KeepSessions) and waits for all
// background work. A stdio server gets 2s to exit after its stdin closes
// before it is signalled. Close always returns nil; problems are logged.
func (t *Toolset) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	t.mu.Unlock()
	t.cancel()

	var wg sync.WaitGroup
	for _, s := range t.servers {
		s.mu.Lock()
		c := s.conn
		s.conn = nil
		s.mu.Unlock()
		if c != nil {
			wg.Go(func() { s.closeConn(c) })
		}
	}
	wg.Wait()
	t.wg.Wait()
	return nil
}

// goBackground runs f in a goroutine Close waits for. It reports false, and
// does not run f, if the Toolset is closed.
func (t *Toolset) goBackground(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Go(f)
	return true
}

// enter counts work Close waits for; the caller calls t.wg.Done when it
// ends. It reports false, counting nothing, if the Toolset is closed.
func (t *Toolset) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(1)
	return true
}

// isClosed reports whether Close was called.
func (t *Toolset) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// A definition is one element of the Messages API "tools" array.
type definition struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema"`
}

// rebuild recomputes the snapshot from every server's tool list.
func (t *Toolset) rebuild() {
	t.rebuildMu.Lock()
	defer t.rebuildMu.Unlock()

	var keys []toolKey
	byKey := make(map[toolKey]toolRef)
	tools := make(map[toolKey]*mcp.Tool)
	for _, s := range t.servers {
		s.mu.Lock()
		list := s.tools
		s.mu.Unlock()
		for _, tool := range list {
			k := toolKey{s.cfg.Name, tool.Name}
			if _, dup := tools[k]; dup {
				continue
			}
			keys = append(keys, k)
			tools[k] = tool
			byKey[k] = toolRef{srv: s, name: tool.Name}
		}
	}
	names := assignNames(keys)
	nameOf := make(map[toolKey]string, len(names))
	for n, k := range names {
		nameOf[k] = n
	}

	snap := &snapshot{tools: make(map[string]toolRef, 2*len(names))}
	defs := make([]definition, 0, len(names))
	for _, k := range keys {
		n, ok := nameOf[k]
		if !ok {
			continue
		}
		tool := tools[k]
		desc := tool.Description
		if desc == "" {
			desc = tool.Title
		}
		defs = append(defs, definition{Name: n, Description: desc, InputSchema: inputSchema(tool)})
		snap.tools[n] = byKey[k]
		snap.names = append(snap.names, n)
	}
	// Accept <server>__<tool> for every tool, so a call survives a rename
	// caused by another server's list changing mid-turn.
	for _, k := range keys {
		if alias := namespacedName(k); snap.tools[alias].srv == nil {
			snap.tools[alias] = byKey[k]
		}
	}
	b, err := marshal(defs)
	if err != nil {
		// Each schema was checked by inputSchema; this cannot happen.
		t.logger.Error("marshal tool definitions", "error", err)
		return
	}
	snap.defs = b
	if prev := t.snap.Load(); bytes.Equal(prev.defs, b) {
		snap.defs = prev.defs // unchanged (a server restarted): keep the same bytes
	}
	t.snap.Store(snap)
}

// emptySchema stands in for a missing or unusable input schema.
var emptySchema = json.RawMessage(`{"type":"object","properties":{}}`)

// inputSchema returns tool's input schema as a JSON object.
func inputSchema(tool *mcp.Tool) json.RawMessage {
	if tool.InputSchema == nil {
		return emptySchema
	}
	b, err := marshal(tool.InputSchema)
	if err != nil || len(b) == 0 || b[0] != '{' {
		return emptySchema
	}
	return b
}

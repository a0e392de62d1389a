package lambdagent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/mcptools"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// mcpSessionsKey is the store key (session.KV) under which processes keep
// the Streamable HTTP session of each MCP server, by server name, as JSON.
// It belongs to the deployment, not to a conversation: every process
// talks to the server on its own connection, and a new one (a fresh
// Lambda instance) continues the session the last one wrote instead of
// opening another (see #8). It is deliberately not namespaced by tenant
// (see #13): the servers are the operator's, configured once for the
// deployment, and every tenant's tool calls share their connections; the
// value holds session ids, no conversation data.
const mcpSessionsKey = "mcp:sessions"

// mcpSessionsTTL bounds how long a stored MCP session is offered to new
// processes. Every process writes the key at start, which refreshes it; a
// session the server has forgotten by then is renewed on first use.
const mcpSessionsTTL = 24 * time.Hour

// openTools connects the MCP servers of Options.MCPConfig and
// Options.Servers, once per process. It returns nil tools when there are
// none.
//
// When an HTTP server is configured, the servers' sessions are continued
// from the store (its session.KV part) and kept open on Close, for the
// next process.
func openTools(ctx context.Context, o resolved, store session.Store) (*mcpTools, error) {
	if o.MCPConfig == "" && len(o.Servers) == 0 {
		return nil, nil
	}
	log := o.Logger
	mc := mcptools.Config{Servers: map[string]mcptools.ServerConfig{}}
	if o.MCPConfig != "" {
		var err error
		if mc, err = mcptools.Load(o.MCPConfig); err != nil {
			return nil, fmt.Errorf("MCPConfig (LAMBDAGENT_MCP_CONFIG): %w", err)
		}
	}
	for name, srv := range o.Servers {
		if _, dup := mc.Servers[name]; dup {
			return nil, fmt.Errorf("option Servers[%q]: MCPConfig names a server %q too", name, name)
		}
		mc.Servers[name] = mcptools.ServerConfig{Name: name, Type: mcptools.TypeInProcess, Server: srv}
	}
	m := &mcpTools{log: log}
	opts := mcptools.Options{Logger: log, HTTPClient: &http.Client{Transport: telemetry.Transport(nil)}}
	if store != nil && hasHTTPServer(mc) {
		m.kv = store
		opts.ResumeSessions = m.loadSessions(ctx)
		opts.KeepSessions = true
	}
	var err error
	m.ts, err = mcptools.Open(ctx, mc, opts)
	if err != nil {
		return nil, fmt.Errorf("connect MCP servers: %w", err)
	}
	m.saveSessions(ctx)
	log.Info("mcp: connected", "servers", len(mc.Servers), "resumed_sessions", len(opts.ResumeSessions))
	return m, nil
}

func hasHTTPServer(mc mcptools.Config) bool {
	for _, s := range mc.Servers {
		if s.Type == mcptools.TypeHTTP {
			return true
		}
	}
	return false
}

// mcpTools lets the agent run MCP tools, one call at a time (the turn
// runs the calls of a reply in parallel).
type mcpTools struct {
	ts  *mcptools.Toolset
	log *slog.Logger
	kv  session.KV // nil: MCP sessions are not kept in the store

	mu    sync.Mutex                  // guards saved
	saved map[string]mcptools.Session // what the store holds, as far as we know
}

var _ agent.Tools = (*mcpTools)(nil)

func (m *mcpTools) Definitions() json.RawMessage { return m.ts.Definitions() }

func (m *mcpTools) Call(ctx context.Context, c agent.ToolCall) json.RawMessage {
	r := m.ts.Call(ctx, mcptools.Call{ID: c.ID, Name: c.Name, Input: c.Input})
	// The call may have renewed a session the server had forgotten.
	m.saveSessions(ctx)
	return r.Block
}

func (m *mcpTools) Close() error { return m.ts.Close() }

// status lists the servers for GET /v1/tools.
func (m *mcpTools) status() []httpapi.ToolServer {
	var out []httpapi.ToolServer
	for _, s := range m.ts.Status() {
		ts := httpapi.ToolServer{Name: s.Name, Type: s.Type, State: "down", Tools: []httpapi.ToolInfo{}}
		if s.Connected {
			ts.State = "connected"
		}
		for _, t := range s.Tools {
			ts.Tools = append(ts.Tools, httpapi.ToolInfo{Name: t.Name, Description: t.Description, InputSchema: t.InputSchema})
		}
		out = append(out, ts)
	}
	return out
}

// loadSessions reads the sessions stored by earlier processes. A store
// that fails only costs new sessions.
func (m *mcpTools) loadSessions(ctx context.Context) map[string]mcptools.Session {
	b, err := m.kv.Get(ctx, mcpSessionsKey)
	if err != nil {
		m.log.Warn("mcp: read stored sessions; starting new ones", "error", err)
		return nil
	}
	if b == nil {
		return nil
	}
	var s map[string]mcptools.Session
	if err := json.Unmarshal(b, &s); err != nil {
		m.log.Warn("mcp: stored sessions are not valid JSON; starting new ones", "error", err)
		return nil
	}
	return s
}

// saveSessions writes the current sessions to the store when they differ
// from what it was last given: once at start (which refreshes the TTL),
// then only after a session was renewed.
func (m *mcpTools) saveSessions(ctx context.Context) {
	if m.kv == nil {
		return
	}
	// Read the sessions under mu, so that of two calls ending together
	// the later reading is the one written.
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.ts.Sessions()
	if m.saved != nil && maps.Equal(cur, m.saved) {
		return
	}
	b, err := json.Marshal(cur)
	if err == nil {
		err = m.kv.Set(context.WithoutCancel(ctx), mcpSessionsKey, b, mcpSessionsTTL)
	}
	if err != nil {
		m.log.Warn("mcp: store sessions", "error", err)
		return
	}
	m.saved = cur
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/mcptools"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// mcpSessionsKey is the store key (session.KV) under which processes keep
// the Streamable HTTP session of each MCP server, by server name, as JSON.
// It belongs to the deployment, not to a conversation: every process
// talks to the server on its own connection, and a new one (a fresh
// Lambda instance) continues the session the last one wrote instead of
// opening another (see #8).
const mcpSessionsKey = "mcp:sessions"

// mcpSessionsTTL bounds how long a stored MCP session is offered to new
// processes. Every process writes the key at start, which refreshes it; a
// session the server has forgotten by then is renewed on first use.
const mcpSessionsTTL = 24 * time.Hour

// openTools connects the MCP servers of LAMBDAGENT_MCP_CONFIG, once per
// process. It returns nil tools when none are configured.
//
// When an HTTP server is configured, the servers' sessions are continued
// from the store (its session.KV part) and kept open on Close, for the
// next process.
func openTools(ctx context.Context, cfg config, store session.Store, log *slog.Logger) (*mcpTools, error) {
	if cfg.MCPConfig == "" {
		return nil, nil
	}
	mc, err := mcptools.Load(cfg.MCPConfig)
	if err != nil {
		return nil, fmt.Errorf("LAMBDAGENT_MCP_CONFIG: %w", err)
	}
	m := &mcpTools{log: log, maxParallel: mcptools.DefaultMaxParallel}
	opts := mcptools.Options{Logger: log, HTTPClient: &http.Client{Transport: telemetry.Transport(nil)}}
	if store != nil && hasHTTPServer(mc) {
		m.kv = store
		opts.ResumeSessions = m.loadSessions(ctx)
		opts.KeepSessions = true
	}
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

// mcpTools lets the agent run MCP tools. It reports each result as its
// call returns (agent.EachRunner), so the turn saves it at once.
type mcpTools struct {
	ts          *mcptools.Toolset
	log         *slog.Logger
	maxParallel int
	kv          session.KV // nil: MCP sessions are not kept in the store

	mu    sync.Mutex                  // guards saved
	saved map[string]mcptools.Session // what the store holds, as far as we know
}

var (
	_ agent.Tools      = (*mcpTools)(nil)
	_ agent.EachRunner = (*mcpTools)(nil)
)

func (m *mcpTools) Definitions() json.RawMessage { return m.ts.Definitions() }

func (m *mcpTools) Run(ctx context.Context, calls []agent.ToolCall) []json.RawMessage {
	out := make([]json.RawMessage, len(calls))
	m.RunEach(ctx, calls, func(i int, r json.RawMessage) { out[i] = r })
	return out
}

// RunEach runs the calls in parallel, at most maxParallel at once.
func (m *mcpTools) RunEach(ctx context.Context, calls []agent.ToolCall, done func(int, json.RawMessage)) {
	var g errgroup.Group
	g.SetLimit(m.maxParallel)
	for i, c := range calls {
		g.Go(func() error {
			r := m.ts.Run(ctx, []mcptools.Call{{ID: c.ID, Name: c.Name, Input: c.Input}})
			done(i, r[0].Block)
			return nil
		})
	}
	g.Wait()
	// A call may have renewed a session the server had forgotten.
	m.saveSessions(ctx)
}

func (m *mcpTools) Close() error { return m.ts.Close() }

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
	cur := m.ts.Sessions()
	m.mu.Lock()
	defer m.mu.Unlock()
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

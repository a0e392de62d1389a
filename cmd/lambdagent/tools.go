package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/mcptools"
)

// openTools connects the MCP servers of LAMBDAGENT_MCP_CONFIG, once per
// process. It returns nil tools when none are configured.
func openTools(ctx context.Context, cfg config, log *slog.Logger) (*mcpTools, error) {
	if cfg.MCPConfig == "" {
		return nil, nil
	}
	mc, err := mcptools.Load(cfg.MCPConfig)
	if err != nil {
		return nil, fmt.Errorf("LAMBDAGENT_MCP_CONFIG: %w", err)
	}
	ts, err := mcptools.Open(ctx, mc, mcptools.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("connect MCP servers: %w", err)
	}
	log.Info("mcp: connected", "servers", len(mc.Servers))
	return &mcpTools{ts: ts}, nil
}

// mcpTools lets the agent run MCP tools.
type mcpTools struct{ ts *mcptools.Toolset }

var _ agent.Tools = (*mcpTools)(nil)

func (m *mcpTools) Definitions() json.RawMessage { return m.ts.Definitions() }

func (m *mcpTools) Run(ctx context.Context, calls []agent.ToolCall) []json.RawMessage {
	in := make([]mcptools.Call, len(calls))
	for i, c := range calls {
		in[i] = mcptools.Call{ID: c.ID, Name: c.Name, Input: c.Input}
	}
	res := m.ts.Run(ctx, in)
	out := make([]json.RawMessage, len(res))
	for i, r := range res {
		out[i] = r.Block
	}
	return out
}

func (m *mcpTools) Close() error { return m.ts.Close() }

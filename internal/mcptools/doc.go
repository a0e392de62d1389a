// Package mcptools gives the agent loop the tools of MCP servers, in the
// shapes the Messages API wants.
//
// A process opens one [Toolset] and keeps it across turns, so a warm Lambda
// instance reuses its server processes and HTTP sessions (see #8). Per turn
// the agent needs two cheap things: [Toolset.Definitions], the "tools" array
// as raw JSON to splice into a request body (cached, rebuilt only when a
// server's tool list changes), and [Toolset.Call], which runs one of
// Claude's tool_use blocks and returns its tool_result block as raw JSON.
// The agent makes the calls of one reply at once; Call is safe for that.
//
// Call never returns a Go error: an unknown tool, a timeout, a crashed or
// unreachable server or a result we cannot convert all become a tool_result
// with "is_error": true and a message Claude can act on, and the turn goes
// on. A stdio server that died is restarted on the next call; an HTTP server
// that was down at Open is retried in the background when Definitions is
// called, and its tools appear once it answers.
//
// Streamable HTTP sessions can outlive the process: [Toolset.Sessions]
// reports the Mcp-Session-Id each server assigned and [Options.ResumeSessions]
// continues them in a new process. go-sdk v1.8.0 has no API to join an
// existing session (its client always sends initialize), so the HTTP client
// answers that initialize itself with the stored session ID and protocol
// version; a session the server no longer knows is replaced by a new one.
//
// [NewAgentHandler] goes the other way: it serves the agent itself as an MCP
// tool, ask_agent, over Streamable HTTP.
//
// The wire types are go-sdk's (github.com/modelcontextprotocol/go-sdk/mcp);
// this package never exports them, so the agent depends only on raw JSON.
package mcptools

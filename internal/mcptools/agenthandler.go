package mcptools

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/session"
)

// An AskFunc sends message to the agent in session sessionID and returns
// its answer. A failure is shown to the calling MCP host as the
// client-safe message of apierr.From(err), never as the error's text; the
// cause is logged.
//
// progress is nil unless the MCP client asked for progress notifications
// (a progressToken in the call's _meta); then each call of it, until the
// AskFunc returns, sends the client one notification with message, such
// as a piece of the answer as it is written. It is safe for concurrent
// use.
type AskFunc func(ctx context.Context, sessionID, message string, progress ProgressFunc) (string, error)

// A ProgressFunc reports how an ask goes, in a few words or a piece of
// the answer.
type ProgressFunc func(message string)

// AgentToolName is the name of the tool [NewAgentHandler] serves.
const AgentToolName = "ask_agent"

// DefaultAgentToolDescription describes ask_agent when
// AgentHandlerOptions.Description is empty.
const DefaultAgentToolDescription = "Send a message to the agent and get its answer. " +
	"The agent remembers the conversation of each session_id: reuse one to continue a conversation, or pick a new one to start afresh."

// AgentHandlerOptions tunes [NewAgentHandler]. A zero field means its
// default.
type AgentHandlerOptions struct {
	// Name and Version introduce the server to MCP hosts. Zero means
	// "lambdagent" and "0".
	Name, Version string
	// Description tells the calling model what the agent is for. Empty
	// means DefaultAgentToolDescription.
	Description string
	// Logger receives failed asks. Nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes limits a request body (413 beyond): the runtime passes
	// the API's limit. Zero means DefaultAgentMaxBodyBytes.
	MaxBodyBytes int64
}

// DefaultAgentMaxBodyBytes is the body limit of a zero
// AgentHandlerOptions.MaxBodyBytes, the API's default.
const DefaultAgentMaxBodyBytes = 1 << 20

// maxMCPSessionIDBytes bounds an Mcp-Session-Id header. The handler is
// stateless and hands out none; a client that sends one anyway gets it
// ignored, unless it is too long or not visible ASCII (the spec's charset).
const maxMCPSessionIDBytes = 256

type askInput struct {
	SessionID string `json:"session_id" jsonschema:"conversation to continue; any new string starts one"`
	Message   string `json:"message" jsonschema:"what to say to the agent"`
}

// NewAgentHandler serves ask as an MCP server over Streamable HTTP, with one
// tool, ask_agent {session_id, message}. Mount it at /mcp.
//
// The handler is stateless (no Mcp-Session-Id, no event stream between
// requests) and answers in plain JSON, because it runs on stateless compute
// where the next request may reach another instance; the conversation state
// lives in the agent's session store, keyed by session_id. A failed ask is a
// tool result with isError set, not a protocol error.
func NewAgentHandler(ask AskFunc, opts AgentHandlerOptions) http.Handler {
	if ask == nil {
		panic("mcptools: nil AskFunc")
	}
	if opts.Name == "" {
		opts.Name = "lambdagent"
	}
	if opts.Version == "" {
		opts.Version = "0"
	}
	if opts.Description == "" {
		opts.Description = DefaultAgentToolDescription
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultAgentMaxBodyBytes
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: opts.Name, Version: opts.Version}, &mcp.ServerOptions{
		Logger: opts.Logger,
		// Only the tool: no logging capability, no prompts, no resources.
		Capabilities: &mcp.ServerCapabilities{Tools: &mcp.ToolCapabilities{}},
	})
	mcp.AddTool(srv, &mcp.Tool{
		Name:        AgentToolName,
		Description: opts.Description,
	}, func(ctx context.Context, req *mcp.CallToolRequest, in askInput) (*mcp.CallToolResult, any, error) {
		if strings.TrimSpace(in.SessionID) == "" || strings.TrimSpace(in.Message) == "" {
			return errorResult("session_id and message must not be empty"), nil, nil
		}
		// Checked before anything logs it: a megabyte id would otherwise
		// be a megabyte log line, here and in the turn's telemetry.
		// ValidID's message does not quote the id.
		if err := session.ValidID(in.SessionID); err != nil {
			return errorResult("session_id: " + apierr.From(err).Message), nil, nil
		}
		p := newProgress(ctx, req)
		answer, err := ask(ctx, in.SessionID, in.Message, p.fn())
		p.stop()
		if err != nil {
			e := apierr.From(err)
			opts.Logger.LogAttrs(ctx, e.LogLevel(), "ask_agent failed", slog.String("session_id", in.SessionID),
				slog.String("type", string(e.Kind)), slog.Any("error", err))
			return errorResult(e.Message), nil, nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: answer}}}, nil, nil
	})
	streamable := func(jsonResponse bool) http.Handler {
		return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{
			Stateless:    true,
			JSONResponse: jsonResponse,
			Logger:       opts.Logger,
			// The API's limit, not the SDK's 4 MiB.
			MaxRequestBodyBytes: opts.MaxBodyBytes,
			// The SDK's own DNS rebinding guard (a loopback connection with a
			// Host that is not) stays on.
		})
	}
	h := progressRouter(streamable(true), streamable(false), opts.MaxBodyBytes)
	// Cross-origin protection (see #13): a browser page of another origin
	// must not drive the agent through the user's credentials or local
	// network. net/http's check rejects a POST whose Sec-Fetch-Site or
	// Origin says it comes from another origin than the Host; requests
	// without them (MCP hosts, curl) pass. go-sdk v1.8.0 deprecates its own
	// option in favour of this wrapper.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		apierr.WriteKind(w, apierr.Forbidden, "cross-origin request refused: the Origin does not match the Host")
	}))
	return checkSessionHeader(cop.Handler(h))
}

// checkSessionHeader refuses a malformed Mcp-Session-Id before the SDK or
// a log sees it.
func checkSessionHeader(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("Mcp-Session-Id"); id != "" && !validMCPSessionID(id) {
			apierr.WriteKind(w, apierr.InvalidRequest, fmt.Sprintf("Mcp-Session-Id must be at most %d visible ASCII characters", maxMCPSessionIDBytes))
			return
		}
		h.ServeHTTP(w, r)
	})
}

func validMCPSessionID(id string) bool {
	if len(id) > maxMCPSessionIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

func errorResult(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// Package lambdagent runs Claude agents on stateless compute: an AWS Lambda
// function, a container replica, a laptop. Every request may land on a
// fresh, short-lived process; the agent still behaves as one stateful
// conversation, because everything a process cannot keep lives in a store
// (Redis, or an embedded file for local use).
//
// A program builds one [Runtime] from [Options] at start-up and serves it:
//
//   - [Runtime.Handler] is the whole HTTP API (turns, sessions, health,
//     metrics, the agent as an MCP server) for any net/http server;
//   - [Runtime.Serve] serves it on a listener with graceful shutdown;
//   - [Runtime.LambdaHandler] and [StartLambda] feed every Lambda event
//     source (API Gateway, function URLs, SQS, EventBridge, direct
//     invocation) through the same handler.
//
// # Your own tools
//
// Give the agent Go tools by handing it a go-sdk MCP server
// (github.com/modelcontextprotocol/go-sdk/mcp) in [Options.Servers]. The
// runtime connects to it over the SDK's in-memory transport: no process,
// no network, and the same semantics as any MCP server. Tool names are
// prefixed with the server's name, a failing tool becomes an is_error
// result Claude reads, and a tool call is not run twice when a turn is
// retried after a crash.
//
// # Configuration
//
// [OptionsFromEnv] reads the environment variables the lambdagent binary
// documents (see the README); a program may start from them and then set
// what it adds, such as its servers.
//
// # Stability
//
// This package follows semantic versioning: the names it exports keep
// their meaning within a major version. Everything under internal/ may
// change at any time.
package lambdagent

// Package agent runs one agent turn: begin (lease + history) → model →
// tools → model … → commit.
//
// A turn costs two store round trips on its uncontended path
// ([session.Store.Begin] and [session.Store.Commit]) whatever the history
// length, and builds each Messages API request by concatenating the stored
// raw JSON messages: no message is decoded or re-encoded, so thinking
// blocks go back to Claude verbatim and a turn's CPU does not grow with
// its history beyond copying bytes.
//
// Nothing is written unless the whole turn succeeds: the user message, each
// assistant message and each tool_result message are committed together
// at the end, with the idempotency record, on a context detached from the
// caller's (a client hanging up must not leave half a turn).
//
// A turn that runs tools also commits a checkpoint before each round of
// tools and saves each tool result as its call returns, so that a retry
// after a crash resumes the turn and never calls a tool twice (see
// loop.go and #8). A turn without tools does neither.
//
// Conversations are append-only (see pin.go and #14): a session sends the
// system prompt and tools it started with for its whole life, since the
// models with preserved thinking reject a thinking block whose prefix
// changed; changes reach it as a role "system" message. Every stop reason
// is handled as the docs say (see stop.go). What of the history a request
// sends is the session's history strategy: all of it, the API's
// compaction or context editing, or a window of the last turns (see
// strategy.go); the store keeps all of it, and under compaction or a
// window a turn reads only the part from the session's cut on.
package agent

// Package loadgen drives load against an agent endpoint, checks that the
// conversations survived it, and turns what it measured into a cost.
//
// # Load
//
// [Run] is closed-loop: each of S sessions sends a turn, waits for the
// answer, thinks, and sends the next, T times, as a person chatting does.
// The offered load therefore follows the server's speed: a slow server
// sees fewer turns per second rather than a queue the generator builds up
// itself, and a turn's latency is the time its user waited. The endpoint
// is anything that takes the seed article's POST {"session_id","message"}
// (lambdagent's /agent by default); a retry after 409, 429, 502, 503, 504
// or a lost connection sends the turn's Idempotency-Key again, so it runs
// at most once on a server that honours the header.
//
// # History check
//
// Every message is a marker, lg:RUN:SESSION:TURN, so the run can tell
// afterwards whether every acknowledged turn arrived once, in order, with
// its whole history. Two sources are used when the server offers them:
//
//   - the session API, GET /v1/sessions/{id} beside the turn endpoint: the
//     stored user messages must carry the session's markers 1..k, each
//     once, in order, and nobody else's;
//   - the simulator's echo, "echo: TEXT (messages: N)", in every answer and
//     in every stored assistant message: the model must have seen the
//     turn's own marker as the last user text and the whole history before
//     it (N = 2k-1 for turn k).
//
// A turn that failed (after its retries) may or may not have been stored
// (the server cannot tell the client which when a connection drops), so
// the check accepts it either way, and the session sends no further turns.
//
// # Cold starts and cost
//
// [Cold] starts a server command repeatedly and measures spawn → first
// successful turn. [Cost] turns measured figures (wall seconds, tokens and
// Redis commands per turn) into dollars per 100,000 turns at the prices of
// a [Prices] table, which users can override from JSON.
package loadgen

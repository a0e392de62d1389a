// Package claudesim simulates the Anthropic Messages API, so that tests and
// the dev mode run lambdagent's real client code (anthropic-sdk-go) against
// a local server that answers as the API documents, deterministically and
// without a network.
//
// A [Server] is an http.Handler; serve it with httptest.NewServer and point
// the SDK at it with option.WithBaseURL. It answers
//
//   - POST /v1/messages, as JSON or, with "stream": true, as server-sent
//     events: message_start, ping, then for each content block
//     content_block_start, its content_block_delta events (thinking_delta
//     and one signature_delta, text_delta, input_json_delta) and
//     content_block_stop, then message_delta (stop_reason and cumulative
//     usage) and message_stop;
//   - POST /v1/messages/count_tokens;
//   - GET /v1/models and GET /v1/models/{id}.
//
// Every response carries a request-id header and the
// anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}
// headers; every error is the documented body
// {"type":"error","error":{"type":…,"message":…},"request_id":…}.
//
// # Replies
//
// Replies are made up, deterministically, from the request:
//
//   - Echo (the default): the text is "echo: TEXT (messages: N)", where TEXT
//     joins the text blocks of the last user turn with "\n" and N is the
//     number of messages the request carried, so a test can see what
//     history reached the model.
//
//   - Tool directive: when the last user turn's text contains
//     [[tool NAME]] or [[tool NAME {JSON object}]] (one or several;
//     whitespace may separate the parts; the JSON may hold "]]" inside
//     strings) and the request's tools include NAME, the reply is a
//     thinking block, the text "calling: NAME, …" and one tool_use block
//     (id toolu_01…) per directive, in order, with stop_reason tool_use.
//     Directives naming undeclared tools, or malformed ones, are ignored.
//     tool_choice "none" ignores them all; disable_parallel_tool_use keeps
//     the first. On a model that allows forced tool_choice, "any" or "tool"
//     without a directive calls the first (or named) tool with {}.
//
//   - Tool results: when the last user turn carries tool_result blocks (and
//     no directive), the reply is "tool results: NAME=CONTENT; …" in the
//     order of the results, CONTENT being the result's text ("(error) "
//     first when is_error), with stop_reason end_turn. Unless the results'
//     text holds tool directives: then those calls are made, as above, so a
//     tool whose result names the next call drives a tool loop of many
//     steps.
//
//   - Stop reasons on demand, by a marker in the user's text:
//     [[refusal]] anywhere in a user turn of the conversation makes the
//     reply a refusal (stop_reason "refusal", empty content, stop_details
//     {"type":"refusal","category":null,"explanation":…}); as the docs say
//     of the API, every later request that still holds the refused message
//     is refused too. [[pause_turn]] in the last user turn makes a reply
//     with stop_reason "pause_turn"; sending it back as the last
//     (assistant) message continues it, and the continuation, a text
//     "resumed: echo: …", ends with end_turn (this trailing assistant turn
//     is not taken for prefill). [[max_tokens_in_tool]] or
//     [[max_tokens_in_tool N]] with tools declared calls the first
//     directive's tool (else the first tool) with a call that needs N
//     output tokens (no N: it never fits): with max_tokens below N the
//     reply ends with that tool_use cut short, its input {} (also when
//     streamed, where the API would send the partial JSON),
//     output_tokens equal to max_tokens and stop_reason "max_tokens";
//     otherwise it is a normal tool call.
//     [[empty]] makes an end_turn reply with empty content. They take
//     precedence in that order, over tool directives.
//
// stop_sequences cut the text at the first one found (stop_reason
// stop_sequence); max_tokens cuts the reply at that many output tokens
// (stop_reason max_tokens), dropping a tool call that does not fit whole.
//
// # Models and thinking
//
// The model table ([Models]) holds claude-sonnet-5-5, claude-opus-5-5,
// claude-haiku-5-5 and the older claude-sonnet-4-5 (also under its dated
// name) with their documented context window and max output. An unknown
// model gets 404 not_found_error "model: NAME"; max_tokens above the
// model's limit gets 400, and so does a prompt above its context window
// (see below).
//
// The 5.5 models think adaptively by default: a reply starts with a
// thinking block whose display defaults to "omitted" (empty thinking text,
// signature kept), as documented; thinking.display "summarized" returns
// the text. On them, temperature/top_p/top_k other than the defaults,
// thinking {"type":"enabled"} with budget_tokens, assistant prefill (a last
// turn from the assistant) and forced tool_choice ("any", "tool") get 400
// invalid_request_error; thinking {"type":"disabled"} gets 400 too, except
// on Haiku 5.5, which accepts it (as the docs say, at effort high or
// below). Sonnet 5.5 takes {"type":"between_tools"}: no up-front thinking,
// but a thinking note still precedes tool calls. claude-sonnet-4-5 has none
// of these restrictions and thinks only when asked with budget_tokens.
//
// Each thinking block is signed: the signature carries the full reasoning,
// the MAC of the block's prefix and an HMAC (keyed by Config.SigningKey)
// over the three and the text returned. Every thinking block sent back is
// verified, and one whose text or signature changed gets 400 "Invalid
// `signature` in `thinking` block". A verified block bills its full
// reasoning as input tokens, even when its display was omitted.
//
// # Preserved thinking: the prefix check
//
// On the 5.5 models ([Model.BindsThinking]) a thinking block is bound to
// its prefix, as the docs on preserved thinking describe: the top-level
// system prompt, the tools and every content block before it (with its
// role), compared by content: message boundaries, cache_control and the
// string-or-blocks form of a text do not count; a system message appended
// after the block does not touch its prefix. A block sent back after its
// prefix changed gets 400 invalid_request_error "messages.I.content.J:
// Invalid `signature` in `thinking` block. The block is bound to a
// different conversation. Remove the block, or set
// `thinking.block_binding.prefix_mismatch_behavior` to "drop_block"." With
// thinking.block_binding.prefix_mismatch_behavior "drop_block" and the
// beta header anthropic-beta: thinking-binding-controls-2026-08-01 (the
// field without the header gets 400), such blocks are dropped instead
// (not billed) and the reply lists each in input_transformations as
// {"type":"thinking_dropped","path":"messages.I.content.J","reason":"prefix_mismatch"}.
// Every account is simulated as one created after 2026-08-31, where the
// check is on by default.
// While thinking is on, the assistant turn of an open tool loop (the turn
// whose tool_use blocks the last user turn answers) must start with its
// thinking block, or the request gets the documented 400.
//
// # Context windows, compaction and context editing
//
// A prompt over the model's context window (Config.ContextWindow
// replaces every model's, so a test can outgrow a small one) gets 400
// "prompt is too long: N tokens > M maximum"; one that fits but leaves
// less room than max_tokens for its reply stops where the window ends,
// with stop_reason "model_context_window_exceeded". Both count the prompt
// as the model sees it: after compaction and context editing.
//
// context_management.edits takes, each with its beta header (the field
// without it gets 400):
//
//   - {"type":"compact_20260112","trigger":{"type":"input_tokens","value":N},
//     "instructions":…,"pause_after_compaction":…} (compact-2026-01-12;
//     trigger default 150,000, at least Config.MinCompactTrigger, 50,000
//     by default). A prompt over the trigger is summarised: the reply
//     starts with a {"type":"compaction","content":…,"encrypted_content":…,
//     "signature":…} block (streamed as its start, one compaction_delta,
//     its stop) and goes on from the summary, its thinking bound to it;
//     usage.iterations (in the message and in a stream's message_delta)
//     lists the compaction and the message, and the top-level counts are
//     the message's: the compaction's tokens are billed but not in them.
//     With pause_after_compaction the reply is the block alone,
//     stop_reason "compaction", top-level counts zero. Sent back (in an
//     assistant message, with the header), the block must be unchanged
//     (else 400 "Invalid `signature` in `compaction` block"), and
//     everything before the last one is dropped: not counted, cached,
//     echoed, nor part of any thinking block's prefix; the request as a
//     whole must still be valid (first message from the user, tool calls
//     answered). A block with null content is a no-op.
//   - {"type":"clear_thinking_20251015","keep":{"type":"thinking_turns",
//     "value":N}|"all"} (context-management-2025-06-27; keep default 1;
//     first in edits): the thinking of older assistant turns is removed.
//   - {"type":"clear_tool_uses_20250919","trigger":{"type":"input_tokens"|
//     "tool_uses","value":N},"keep":{"type":"tool_uses","value":N},
//     "clear_at_least":…,"exclude_tools":[…],"clear_tool_inputs":…}
//     (same header; defaults 100,000 input tokens and 3 kept): past the
//     trigger, the results (and inputs, if asked) of the oldest tool uses
//     are replaced by a placeholder, if that clears at least
//     clear_at_least tokens.
//
// Edits apply after the signatures and prefixes are checked, to the
// prompt the model sees: they change what is cached from there on. The
// reply of a request with context_management carries
// context_management.applied_edits, each with cleared_input_tokens and
// cleared_tool_uses or cleared_thinking_turns.
//
// # Validation
//
// As the API does, the simulator rejects, with 400 invalid_request_error
// and messages shaped like the API's: bad JSON; missing model, max_tokens
// or messages; an empty messages array; a first message not from the user;
// a role other than user, assistant or system; empty content or empty text
// blocks; a system message with other than text blocks; unknown block
// types; a tool_result without a tool_use of that id in the previous turn;
// a tool_result after other content (text) of its user turn; a tool_use
// without its tool_result in the next turn; duplicate tool names; more
// than four cache_control breakpoints. It does not reject consecutive
// messages of the same role: it combines them into one turn, as
// documented. A role "system" message (an instruction appended to the
// conversation, as the docs on preserved thinking advise for changes)
// neither starts nor separates a turn; it is counted, echoed in the
// message count and part of the prefix of later blocks. Without a key (x-api-key or Authorization:
// Bearer) it answers 401 authentication_error unless Config.AllowNoAPIKey;
// without an anthropic-version header, 400.
//
// # Tokens and prompt caching
//
// Tokens are estimated locally as ceil(bytes/4) per tool definition,
// system block and content block (text, tool_use name and input,
// tool_result content, thinking text), with no per-message overhead; the
// same estimate serves usage, count_tokens, rate limits and caching.
// Output tokens count the full reasoning of a thinking block, even when
// its display is omitted.
//
// cache_control {"type":"ephemeral","ttl":"5m"|"1h"} breakpoints on tools,
// system blocks and message content blocks, and the top-level cache_control
// (automatic caching: a breakpoint on the last block), cache the prefix in
// the order tools → system → messages, keyed by a hash of the model and the
// exact prefix content. A request reads the longest live prefix found at a
// breakpoint or up to 20 blocks before one, and writes the prefixes of its
// later breakpoints that reach the model's minimum (512 tokens for Sonnet
// and Opus 5.5, 1,024 for the others). usage reports the read prefix as
// cache_read_input_tokens, the newly written part as
// cache_creation_input_tokens (split by TTL in cache_creation), and the
// rest as input_tokens. Entries live 5 minutes (or 1 hour), refreshed on
// each read, by Config.Now, so tests move a fake clock instead of sleeping.
//
// # Faults, limits and latency
//
// Config.Rate429, Rate529 and Rate500 inject errors at random (seeded by
// Config.Seed), after validation. Config.RequestsPerMinute,
// InputTokensPerMinute and OutputTokensPerMinute are enforced as token
// buckets, so a test can run into a real 429 whose retry-after says when
// the request would fit. Config.Latency (plus LatencyJitter) is waited
// before answering, spread over the events of a stream; a request whose
// context ends stops waiting and is recorded with status 499.
//
// Failures on demand, for retry tests (see #14): [[fail STATUS option…]]
// in the last user turn's text makes the request fail with STATUS and its
// documented error type (429 rate_limit_error, 529 overloaded_error, 500
// api_error, 400 invalid_request_error, …), after validation and before
// rate limits are charged. Options, separated by spaces:
//
//   - times=N: the first N requests with this exact body fail (default 1),
//     later ones are answered (echoing the marker), so a client's retry of
//     the same request gets through after N failures; times=0 never fails;
//   - retry-after=V, retry-after-ms=V: sent as those headers, verbatim;
//   - should-retry=true|false: sent as x-should-retry;
//   - exhausted=requests|input-tokens|output-tokens, reset=S (seconds,
//     default 60): that limit's anthropic-ratelimit-*-remaining is 0 and
//     its -reset S seconds away, while the other two limits' resets are
//     one second away (a client that waits for the earliest reset comes
//     back too early);
//   - mid-stream: a streamed request gets a 200 whose stream breaks off
//     after message_start, ping and the first block's start and delta (if
//     the reply has a block) with an error event {"type":"error","error":{"type":…,"message":…}}, as the
//     API sends when it fails mid-answer; a request that does not stream
//     gets the status.
//
// For example "[[fail 529 times=2 retry-after-ms=50]]" fails twice with
// 529 overloaded_error and retry-after-ms: 50, then answers. A malformed
// marker is plain text.
//
// # Records
//
// [Server.Requests] returns the most recent requests (body, headers with
// credentials redacted, status, usage), [Recorded.Turns] decodes their
// history, [Server.Stats] counts requests, statuses and tokens in all and
// per minute, and [Server.Reset] clears both. All are safe for concurrent
// use.
//
// # Simplifications
//
// The simulator does not model: real tokenization (counts differ from the
// API's); images, documents and server tools beyond accepting and counting
// them; the removal of earlier turns' thinking from the context (all
// thinking text is counted); the binding of thinking blocks to a model
// (any model reads any block the key signed); where the API may reject a
// system message (between a tool_use and its tool_result it is
// accepted here); errors in the middle of a
// stream other than those [[fail … mid-stream]] asks for (injected errors
// are sent as the HTTP status, before any event); cache invalidation by changes to tool_choice, thinking or images, and the
// rule that 1h entries precede 5m ones; the separate rate limits of
// count_tokens (it is not limited) and of the models endpoints; unknown
// top-level request fields (accepted and ignored, where the API may answer
// 400); the text between tool calls that Sonnet 5.5 returns as thinking.
// The signature carries the reasoning base64-encoded, not encrypted.
// A compaction summary is made up (what the prompt held and the user's
// last words, bounded), not written by a model, and its
// encrypted_content is not encrypted; the message iteration of a
// compacted reply reads nothing from the cache; tool_changes of
// compaction blocks, the top-level compaction request (beta
// compact-2026-09-04) and a trigger that counts anything but input tokens
// are not modelled. count_tokens with context_management counts the
// edited prompt and reports the original in
// context_management.original_input_tokens.
package claudesim

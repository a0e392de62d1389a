package claudesim

import (
	"slices"
	"time"
)

// A Model describes one model the simulator answers for. The fields are
// the documented limits and behaviours the simulator enforces.
type Model struct {
	// ID is the model name requests send, e.g. "claude-sonnet-5-5".
	ID string
	// DisplayName is what GET /v1/models reports, e.g. "Claude Sonnet 5.5".
	DisplayName string
	// CreatedAt is the release date GET /v1/models reports.
	CreatedAt time.Time
	// ContextWindow is the most input tokens a request may carry.
	ContextWindow int
	// MaxOutput is the largest max_tokens the model accepts.
	MaxOutput int
	// Adaptive models think by default (thinking absent means
	// {"type":"adaptive"}) and answer 400 to non-default sampling
	// parameters, thinking with budget_tokens, assistant prefill and
	// forced tool_choice. Older models think only when asked with
	// {"type":"enabled","budget_tokens":N}.
	Adaptive bool
	// AcceptsDisabled reports whether an adaptive model takes
	// thinking {"type":"disabled"} (Claude Haiku 5.5 does; Sonnet and
	// Opus 5.5 answer 400). Older models always take it.
	AcceptsDisabled bool
	// AcceptsBetweenTools reports whether the model takes
	// thinking {"type":"between_tools"} (Claude Sonnet 5.5's way to turn
	// off up-front thinking).
	AcceptsBetweenTools bool
	// DefaultDisplay is the thinking display used when the request names
	// none: "omitted" (thinking text empty, signature kept) or
	// "summarized".
	DefaultDisplay string
	// MinCacheTokens is the shortest prefix, in tokens, that a
	// cache_control breakpoint caches; shorter prefixes are silently not
	// cached, as documented.
	MinCacheTokens int
	// BindsThinking reports whether the model checks the prefix a
	// thinking block was made after (preserved thinking, the 5.5
	// models): a block sent back after a changed system prompt, tool list
	// or earlier message gets 400, or is dropped on request.
	BindsThinking bool
}

// Models returns the default model table, in the order GET /v1/models
// lists it (newest first). The caller may change the returned slice and
// pass it as [Config.Models].
//
// The figures come from Anthropic's model pages as of 2026-11: the 5.5
// models have a 1M-token context window and 128K output; Claude Sonnet 4.5
// has 200K and 64K. Minimum cacheable prefixes are 512 tokens for Sonnet
// and Opus 5.5 and 1,024 for Sonnet 4.5; Haiku 5.5's is not documented
// and is taken to be 1,024.
func Models() []Model {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	sonnet45 := Model{
		ID:             "claude-sonnet-4-5",
		DisplayName:    "Claude Sonnet 4.5",
		CreatedAt:      day(2025, time.September, 29),
		ContextWindow:  200_000,
		MaxOutput:      64_000,
		DefaultDisplay: "summarized",
		MinCacheTokens: 1024,
	}
	sonnet45Dated := sonnet45
	sonnet45Dated.ID = "claude-sonnet-4-5-20250929"
	return []Model{
		{
			ID:            "claude-haiku-5-5",
			DisplayName:   "Claude Haiku 5.5",
			CreatedAt:     day(2026, time.October, 7),
			ContextWindow: 1_000_000,
			MaxOutput:     128_000,
			Adaptive:      true,
			// Haiku 5.5 can turn thinking off at effort high or below.
			AcceptsDisabled: true,
			DefaultDisplay:  "omitted",
			MinCacheTokens:  1024,
			BindsThinking:   true,
		},
		{
			ID:                  "claude-sonnet-5-5",
			DisplayName:         "Claude Sonnet 5.5",
			CreatedAt:           day(2026, time.September, 28),
			ContextWindow:       1_000_000,
			MaxOutput:           128_000,
			Adaptive:            true,
			AcceptsBetweenTools: true,
			DefaultDisplay:      "omitted",
			MinCacheTokens:      512,
			BindsThinking:       true,
		},
		{
			ID:             "claude-opus-5-5",
			DisplayName:    "Claude Opus 5.5",
			CreatedAt:      day(2026, time.September, 22),
			ContextWindow:  1_000_000,
			MaxOutput:      128_000,
			Adaptive:       true,
			DefaultDisplay: "omitted",
			MinCacheTokens: 512,
			BindsThinking:  true,
		},
		sonnet45,
		sonnet45Dated,
	}
}

// model returns the model named id, or false.
func (s *Server) model(id string) (Model, bool) {
	i := slices.IndexFunc(s.models, func(m Model) bool { return m.ID == id })
	if i < 0 {
		return Model{}, false
	}
	return s.models[i], true
}

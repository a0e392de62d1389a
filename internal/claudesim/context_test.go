package claudesim_test

import (
	"context"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// These tests drive context management through the SDK's beta API, so the
// simulator's wire shapes stay the ones the SDK decodes (see #14).

var (
	betaCompact = []anthropic.AnthropicBeta{anthropic.AnthropicBetaCompact2026_01_12}
	betaEditing = []anthropic.AnthropicBeta{anthropic.AnthropicBetaContextManagement2025_06_27}
)

func compactEdit(trigger int64, pause bool) anthropic.BetaContextManagementConfigParam {
	e := &anthropic.BetaCompact20260112EditParam{
		Trigger:      anthropic.BetaInputTokensTriggerParam{Value: trigger},
		Instructions: anthropic.String("Keep the names."),
	}
	if pause {
		e.PauseAfterCompaction = anthropic.Bool(true)
	}
	return anthropic.BetaContextManagementConfigParam{Edits: []anthropic.BetaContextManagementConfigEditUnionParam{{OfCompact20260112: e}}}
}

func betaUser(s string) anthropic.BetaMessageParam {
	return anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock(s))
}

func TestContextWindow(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{ContextWindow: 2000})
	ctx := context.Background()

	// Over the window: the documented 400.
	_, err := client.Messages.New(ctx, anthropic.MessageNewParams{
		Model: "claude-sonnet-5-5", MaxTokens: 100,
		Messages: userText(strings.Repeat("abcd", 2100)),
	})
	status, msg := apiStatus(t, err)
	if status != 400 || !strings.Contains(msg, "prompt is too long: 2100 tokens > 2000 maximum") {
		t.Fatalf("over the window: %d %q", status, msg)
	}

	// Fits, but the reply would not: it stops where the window ends.
	m, err := client.Messages.New(ctx, anthropic.MessageNewParams{
		Model: "claude-sonnet-5-5", MaxTokens: 1500,
		Messages: userText(strings.Repeat("abcd", 1000)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.StopReason != anthropic.StopReasonModelContextWindowExceeded {
		t.Fatalf("stop_reason = %q, want model_context_window_exceeded", m.StopReason)
	}
	if got := m.Usage.InputTokens + m.Usage.OutputTokens; got > 2000 {
		t.Errorf("input+output = %d tokens, over the 2000 window", got)
	}
}

func TestCompaction(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{ContextWindow: 20_000, MinCompactTrigger: 1000})
	ctx := context.Background()
	long := strings.Repeat("word ", 1000) // 1,250 tokens
	params := anthropic.BetaMessageNewParams{
		Model: "claude-sonnet-5-5", MaxTokens: 4000,
		Messages:          []anthropic.BetaMessageParam{betaUser(long), anthropic.BetaMessageParam{Role: "assistant", Content: []anthropic.BetaContentBlockParamUnion{anthropic.NewBetaTextBlock("ok")}}, betaUser(long + "again")},
		ContextManagement: compactEdit(2000, false),
		Betas:             betaCompact,
	}

	// Under the trigger: no compaction, an empty applied_edits.
	small := params
	small.Messages = []anthropic.BetaMessageParam{betaUser("hello")}
	m, err := client.Beta.Messages.New(ctx, small)
	if err != nil {
		t.Fatal(err)
	}
	if m.Content[0].Type == "compaction" || len(m.Usage.Iterations) != 0 {
		t.Fatalf("compacted under the trigger: %v", m.Content[0].Type)
	}

	m, err = client.Beta.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if m.Content[0].Type != "compaction" || m.StopReason != "end_turn" {
		t.Fatalf("reply starts with %q, stop %q; want a compaction block and end_turn", m.Content[0].Type, m.StopReason)
	}
	c := m.Content[0].AsCompaction()
	if !strings.Contains(c.Content, "Keep the names.") || c.Signature == "" || c.EncryptedContent == "" {
		t.Errorf("compaction block = %+v", c)
	}
	if n := len(m.Usage.Iterations); n != 2 || m.Usage.Iterations[0].Type != "compaction" || m.Usage.Iterations[1].Type != "message" {
		t.Fatalf("usage.iterations = %s", m.Usage.RawJSON())
	}
	if m.Usage.InputTokens >= 2500 {
		t.Errorf("top-level input_tokens = %d: want the message iteration's, after the summary", m.Usage.InputTokens)
	}

	// Streamed, message_delta's usage carries the iterations too.
	stream := client.Beta.Messages.NewStreaming(ctx, params)
	var deltaIterations int
	for stream.Next() {
		if e := stream.Current(); e.Type == "message_delta" {
			deltaIterations = len(e.Usage.Iterations)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if deltaIterations != 2 {
		t.Errorf("streamed message_delta usage has %d iterations, want 2", deltaIterations)
	}

	// Sent back, the block replaces everything before it.
	next := params
	next.Messages = append(append([]anthropic.BetaMessageParam{}, params.Messages...), m.ToParam(), betaUser("what now?"))
	m2, err := client.Beta.Messages.New(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Content[0].Type == "compaction" {
		t.Fatal("compacted again right after a compaction")
	}
	if in := m2.Usage.InputTokens + m2.Usage.CacheReadInputTokens + m2.Usage.CacheCreationInputTokens; in > 1500 {
		t.Errorf("input after compaction = %d tokens: the blocks before the compaction block were counted", in)
	}
	if text := m2.Content[len(m2.Content)-1].Text; !strings.Contains(text, "(messages: 2)") {
		t.Errorf("reply %q: want the model to see 2 messages (the compaction's and the new one)", text)
	}

	// Changed on the way back: rejected.
	tampered := m.Content[0].AsCompaction().ToParam()
	tampered.Content = anthropic.String(strings.Replace(c.Content, "Summary", "Sumary", 1))
	bad := next
	bad.Messages = append(append([]anthropic.BetaMessageParam{}, params.Messages...),
		anthropic.BetaMessageParam{Role: "assistant", Content: []anthropic.BetaContentBlockParamUnion{{OfCompaction: &tampered}}}, betaUser("what now?"))
	_, err = client.Beta.Messages.New(ctx, bad)
	if status, msg := apiStatus(t, err); status != 400 || !strings.Contains(msg, "Invalid `signature` in `compaction` block") {
		t.Errorf("tampered block: %d %q", status, msg)
	}

	// pause_after_compaction: the block alone, stop_reason compaction.
	paused := params
	paused.ContextManagement = compactEdit(2000, true)
	m3, err := client.Beta.Messages.New(ctx, paused)
	if err != nil {
		t.Fatal(err)
	}
	if len(m3.Content) != 1 || m3.Content[0].Type != "compaction" || m3.StopReason != "compaction" {
		t.Errorf("paused compaction: %d blocks, stop %q", len(m3.Content), m3.StopReason)
	}
}

func TestCompactionStreams(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{MinCompactTrigger: 100})
	stream := client.Beta.Messages.NewStreaming(context.Background(), anthropic.BetaMessageNewParams{
		Model: "claude-sonnet-5-5", MaxTokens: 1000,
		Messages:          []anthropic.BetaMessageParam{betaUser(strings.Repeat("word ", 200))},
		ContextManagement: compactEdit(100, false),
		Betas:             betaCompact,
	})
	var m anthropic.BetaMessage
	for stream.Next() {
		if err := m.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if m.Content[0].Type != "compaction" {
		t.Fatalf("streamed reply starts with %q", m.Content[0].Type)
	}
	if c := m.Content[0].AsCompaction(); !strings.HasPrefix(c.Content, "Summary") || c.Signature == "" {
		t.Errorf("streamed compaction block = %+v", c)
	}
}

func TestBetaFieldsNeedTheirHeader(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{})
	ctx := context.Background()
	clear := anthropic.BetaContextManagementConfigParam{Edits: []anthropic.BetaContextManagementConfigEditUnionParam{
		{OfClearToolUses20250919: &anthropic.BetaClearToolUses20250919EditParam{}},
	}}
	for _, tc := range []struct {
		name  string
		cm    anthropic.BetaContextManagementConfigParam
		betas []anthropic.AnthropicBeta
		want  string
	}{
		{"compact without its header", compactEdit(60_000, false), betaEditing, "requires the beta header `anthropic-beta: compact-2026-01-12`"},
		{"clearing without its header", clear, betaCompact, "requires the beta header `anthropic-beta: context-management-2025-06-27`"},
		{"trigger under the minimum", compactEdit(1000, false), betaCompact, "greater than or equal to 50000"},
		{"context_management without a header", compactEdit(60_000, false), nil, "requires the beta header `anthropic-beta: context-management-2025-06-27`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.Beta.Messages.New(ctx, anthropic.BetaMessageNewParams{
				Model: "claude-sonnet-5-5", MaxTokens: 100,
				Messages:          []anthropic.BetaMessageParam{betaUser("hi")},
				ContextManagement: tc.cm,
				Betas:             tc.betas,
			})
			if status, msg := apiStatus(t, err); status != 400 || !strings.Contains(msg, tc.want) {
				t.Errorf("got %d %q, want 400 with %q", status, msg, tc.want)
			}
		})
	}
}

var betaWeather = anthropic.BetaToolUnionParam{OfTool: &anthropic.BetaToolParam{
	Name:        "get_weather",
	InputSchema: anthropic.BetaToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}},
}}

func TestClearToolUses(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{})
	ctx := context.Background()
	params := anthropic.BetaMessageNewParams{
		Model: "claude-sonnet-4-5", MaxTokens: 1000,
		Tools: []anthropic.BetaToolUnionParam{betaWeather},
	}
	// Five tool uses, each with a 500-token result.
	for i := range 5 {
		params.Messages = append(params.Messages, betaUser("[[tool get_weather]]"))
		m, err := client.Beta.Messages.New(ctx, params)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		var id string
		for _, b := range m.Content {
			if b.Type == "tool_use" {
				id = b.ID
			}
		}
		params.Messages = append(params.Messages, m.ToParam(),
			anthropic.NewBetaUserMessage(anthropic.NewBetaToolResultBlock(id, strings.Repeat("sunny ", 333), false)))
		m, err = client.Beta.Messages.New(ctx, params)
		if err != nil {
			t.Fatalf("result %d: %v", i, err)
		}
		params.Messages = append(params.Messages, m.ToParam())
	}
	params.Messages = append(params.Messages, betaUser("thanks"))
	full, err := client.Beta.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}

	params.Betas = betaEditing
	params.ContextManagement = anthropic.BetaContextManagementConfigParam{Edits: []anthropic.BetaContextManagementConfigEditUnionParam{
		{OfClearToolUses20250919: &anthropic.BetaClearToolUses20250919EditParam{
			Trigger: anthropic.BetaClearToolUses20250919EditTriggerUnionParam{OfInputTokens: &anthropic.BetaInputTokensTriggerParam{Value: 1000}},
			Keep:    anthropic.BetaToolUsesKeepParam{Value: 2},
		}},
	}}
	m, err := client.Beta.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	edits := m.ContextManagement.AppliedEdits
	if len(edits) != 1 || edits[0].Type != "clear_tool_uses_20250919" || edits[0].ClearedToolUses != 3 {
		t.Fatalf("applied_edits = %s, want 3 tool uses cleared", m.ContextManagement.RawJSON())
	}
	if before, after := full.Usage.InputTokens, m.Usage.InputTokens; after != before-edits[0].ClearedInputTokens || after >= before {
		t.Errorf("input tokens %d → %d, cleared %d", before, after, edits[0].ClearedInputTokens)
	}

	// count_tokens counts the edited prompt and reports the original.
	count, err := client.Beta.Messages.CountTokens(ctx, anthropic.BetaMessageCountTokensParams{
		Model: params.Model, Messages: params.Messages, Tools: []anthropic.BetaMessageCountTokensParamsToolUnion{{OfTool: betaWeather.OfTool}},
		ContextManagement: params.ContextManagement, Betas: params.Betas,
	})
	if err != nil {
		t.Fatal(err)
	}
	if count.InputTokens != m.Usage.InputTokens || count.ContextManagement.OriginalInputTokens != full.Usage.InputTokens {
		t.Errorf("count_tokens: %d (original %d), want %d (original %d)", count.InputTokens, count.ContextManagement.OriginalInputTokens, m.Usage.InputTokens, full.Usage.InputTokens)
	}

	// clear_at_least above what can be cleared: nothing is.
	params.ContextManagement.Edits[0].OfClearToolUses20250919.ClearAtLeast = anthropic.BetaInputTokensClearAtLeastParam{Value: 100_000}
	m, err = client.Beta.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.ContextManagement.AppliedEdits); n != 0 || m.Usage.InputTokens != full.Usage.InputTokens {
		t.Errorf("clear_at_least unmet: %d edits, %d input tokens", n, m.Usage.InputTokens)
	}
}

func TestClearThinking(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{})
	ctx := context.Background()
	params := anthropic.BetaMessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1000}
	for i := range 3 {
		params.Messages = append(params.Messages, betaUser("turn"))
		m, err := client.Beta.Messages.New(ctx, params)
		if err != nil {
			t.Fatalf("turn %d: %v", i, err)
		}
		params.Messages = append(params.Messages, m.ToParam())
	}
	params.Messages = append(params.Messages, betaUser("last"))
	params.Betas = betaEditing
	params.ContextManagement = anthropic.BetaContextManagementConfigParam{Edits: []anthropic.BetaContextManagementConfigEditUnionParam{
		{OfClearThinking20251015: &anthropic.BetaClearThinking20251015EditParam{
			Keep: anthropic.BetaClearThinking20251015EditKeepUnionParam{OfThinkingTurns: &anthropic.BetaThinkingTurnsParam{Value: 1}},
		}},
	}}
	m, err := client.Beta.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	edits := m.ContextManagement.AppliedEdits
	if len(edits) != 1 || edits[0].ClearedThinkingTurns != 2 || edits[0].ClearedInputTokens <= 0 {
		t.Fatalf("applied_edits = %s, want 2 thinking turns cleared", m.ContextManagement.RawJSON())
	}
}

// A reply compacted while it calls a tool: the tool loop goes on with the
// compaction block first in the assistant turn, before its thinking.
func TestCompactionInToolLoop(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{MinCompactTrigger: 100})
	ctx := context.Background()
	params := anthropic.BetaMessageNewParams{
		Model: "claude-sonnet-5-5", MaxTokens: 4000,
		Tools:             []anthropic.BetaToolUnionParam{betaWeather},
		Messages:          []anthropic.BetaMessageParam{betaUser(strings.Repeat("word ", 200) + "[[tool get_weather]]")},
		ContextManagement: compactEdit(100, false),
		Betas:             betaCompact,
	}
	m, err := client.Beta.Messages.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	types := []string{}
	var id string
	for _, b := range m.Content {
		types = append(types, b.Type)
		if b.Type == "tool_use" {
			id = b.ID
		}
	}
	if strings.Join(types, ",") != "compaction,thinking,text,tool_use" {
		t.Fatalf("reply blocks %v", types)
	}
	params.Messages = append(params.Messages, m.ToParam(),
		anthropic.NewBetaUserMessage(anthropic.NewBetaToolResultBlock(id, "sunny", false)))
	m, err = client.Beta.Messages.New(ctx, params)
	if err != nil {
		t.Fatalf("tool result after a compacted tool call: %v", err)
	}
	if text := m.Content[len(m.Content)-1].Text; text != "tool results: get_weather=sunny" {
		t.Errorf("reply %q", text)
	}
}

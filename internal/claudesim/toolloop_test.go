package claudesim_test

import (
	"testing"

	"github.com/anthropics/anthropic-sdk-go"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// TestDirectiveInToolResult: a tool result naming the next call gets that
// call, so a tool loop runs as many steps as its tool asks; a plain result
// ends it.
func TestDirectiveInToolResult(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{})
	params := anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, Tools: []anthropic.ToolUnionParam{timeTool},
		Messages: userText("[[tool get_time]]")}
	for step, result := range []string{"[[tool get_time]] again", "[[tool get_time]]", "noon"} {
		msg, err := client.Messages.New(t.Context(), params)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		last := msg.Content[len(msg.Content)-1]
		if msg.StopReason != anthropic.StopReasonToolUse || last.Type != "tool_use" || last.Name != "get_time" {
			t.Fatalf("step %d: %s %v, want a get_time call", step, msg.StopReason, blockTypes(msg))
		}
		params.Messages = append(params.Messages, msg.ToParam(),
			anthropic.NewUserMessage(anthropic.NewToolResultBlock(last.ID, result, false)))
	}
	msg, err := client.Messages.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonEndTurn || msg.Content[len(msg.Content)-1].Text != "tool results: get_time=noon" {
		t.Errorf("end of the loop: %s %+v", msg.StopReason, msg.Content)
	}
}

package lambdagent

import (
	"fmt"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/mcptools"
)

// progressSink shows an ask_agent turn to an MCP client that asked for
// progress notifications (see #15): one per event, the answer's text as
// it is written. Thinking is not shown: whether users see it is the
// operator's choice, made for the HTTP API's streams.
type progressSink mcptools.ProgressFunc

var _ agent.Sink = progressSink(nil)

func (p progressSink) TurnStart(_ string, turn int64) { p(fmt.Sprintf("turn %d started", turn)) }
func (p progressSink) TextDelta(text string)          { p(text) }
func (p progressSink) Thinking(string)                {}
func (p progressSink) ToolUse(c agent.ToolCall)       { p("calling tool " + c.Name) }
func (p progressSink) ToolResult(_ string, isError bool) {
	if isError {
		p("tool call failed")
		return
	}
	p("tool call done")
}

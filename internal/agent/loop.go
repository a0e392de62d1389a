package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/session"
)

// ToolCall is one tool_use block of an assistant reply.
type ToolCall struct {
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// Tools runs the tools Claude may call. Implementations are safe for
// concurrent use.
type Tools interface {
	// Definitions returns the Messages API "tools" array as raw JSON, or
	// nil when there are no tools.
	Definitions() json.RawMessage
	// Run executes calls (in parallel where it can) and returns one
	// tool_result content block per call, in call order. A failing tool
	// yields an is_error result, never a Go error.
	Run(ctx context.Context, calls []ToolCall) []json.RawMessage
}

// loop makes model calls until Claude answers without asking for tools,
// running the tools in between. It returns the messages to commit.
func (a *Agent) loop(ctx context.Context, req Request, st *session.State) (Result, []json.RawMessage, map[string]int64, error) {
	res := Result{SessionID: req.SessionID}
	history, pending, err := checkHistory(st.Messages)
	if err != nil {
		return res, nil, nil, fmt.Errorf("session %s: %w", req.SessionID, err)
	}
	// The new user message; a dangling tool_use left in the history gets
	// its tool_results first, in the same message, as the API requires.
	user, err := userMessage(req.Message, pending)
	if err != nil {
		return res, nil, nil, err
	}
	msgs := []json.RawMessage{user}
	var defs json.RawMessage
	if a.tools != nil {
		defs = a.tools.Definitions()
	}
	var usage claude.Usage
	for call := 1; ; call++ {
		last := call == a.cfg.MaxModelCalls
		body := a.requestBody(history, msgs, defs, last && len(defs) > 0)
		reply, err := a.model.Create(ctx, body)
		if err != nil {
			return res, nil, nil, err
		}
		usage = usage.Add(reply.Usage)
		res.ModelCalls = call
		res.RequestID = reply.RequestID
		res.StopReason = reply.StopReason
		msgs = append(msgs, assistantMessage(reply.Content))
		calls, text, err := parseContent(reply.Content)
		if err != nil {
			return res, nil, nil, fmt.Errorf("reply %s: %w", reply.ID, err)
		}
		res.Response = text
		if reply.StopReason != "tool_use" || len(calls) == 0 {
			break
		}
		if a.tools == nil {
			return res, nil, nil, fmt.Errorf("reply %s asks for tool %s but no tools are configured", reply.ID, calls[0].Name)
		}
		results := a.tools.Run(ctx, calls)
		m, err := toolResultMessage(results)
		if err != nil {
			return res, nil, nil, err
		}
		msgs = append(msgs, m)
		if last {
			// Unreachable with tools disabled on the last call, unless the
			// model ignores tool_choice none: stop rather than loop.
			res.StopReason = "max_model_calls"
			return res, nil, nil, fmt.Errorf("reply %s asked for tools on the last allowed model call", reply.ID)
		}
	}
	res.Usage = usage
	counters := map[string]int64{
		"input_tokens":                usage.InputTokens,
		"output_tokens":               usage.OutputTokens,
		"cache_creation_input_tokens": usage.CacheCreationInputTokens,
		"cache_read_input_tokens":     usage.CacheReadInputTokens,
		"model_calls":                 int64(res.ModelCalls),
	}
	return res, msgs, counters, nil
}

// buildPrefix renders the constant head of every request body.
//
// Prompt caching (see #6): the request asks for automatic caching with a
// top-level cache_control, so the API puts the breakpoint on the last
// cacheable block and each turn reads the whole conversation so far from
// the cache and writes only what is new. The system prompt, the same for
// every session, carries a breakpoint of its own so that a new session
// starts from a cached prefix. The stored history never carries
// cache_control: breakpoints are a property of one request, and the API
// allows four.
func (a *Agent) buildPrefix() []byte {
	var cc []byte
	switch a.cfg.PromptCache {
	case "5m":
		cc = []byte(`{"type":"ephemeral"}`)
	case "1h":
		cc = []byte(`{"type":"ephemeral","ttl":"1h"}`)
	}
	var b bytes.Buffer
	b.WriteString(`{"model":`)
	b.Write(mustJSON(a.cfg.Model))
	b.WriteString(`,"max_tokens":`)
	b.WriteString(strconv.Itoa(a.cfg.MaxTokens))
	if cc != nil {
		b.WriteString(`,"cache_control":`)
		b.Write(cc)
	}
	if a.cfg.System != "" {
		b.WriteString(`,"system":[{"type":"text","text":`)
		b.Write(mustJSON(a.cfg.System))
		if cc != nil {
			b.WriteString(`,"cache_control":`)
			b.Write(cc)
		}
		b.WriteString(`}]`)
	}
	return b.Bytes()
}

// requestBody concatenates the request: constant head, tools, then the
// stored history and this turn's messages as they are.
func (a *Agent) requestBody(history, turn []json.RawMessage, tools json.RawMessage, noTools bool) []byte {
	n := len(a.prefix) + len(tools) + 64
	for _, m := range history {
		n += len(m) + 1
	}
	for _, m := range turn {
		n += len(m) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, a.prefix...)
	if len(tools) > 0 {
		b = append(b, `,"tools":`...)
		b = append(b, tools...)
		if noTools {
			b = append(b, `,"tool_choice":{"type":"none"}`...)
		}
	}
	b = append(b, `,"messages":[`...)
	first := true
	for _, list := range [][]json.RawMessage{history, turn} {
		for _, m := range list {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, m...)
		}
	}
	return append(b, "]}"...)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings and plain structs reach here
	}
	return b
}

type textBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type message struct {
	Role    string `json:"role"`
	Content any    `json:"content"`
}

// userMessage renders the turn's user message, with tool_results for a
// dangling tool_use first.
func userMessage(text string, pending []json.RawMessage) (json.RawMessage, error) {
	content := make([]any, 0, len(pending)+1)
	for _, p := range pending {
		content = append(content, p)
	}
	content = append(content, textBlock{Type: "text", Text: text})
	b, err := json.Marshal(message{Role: "user", Content: content})
	if err != nil {
		return nil, fmt.Errorf("encode user message: %w", err)
	}
	return b, nil
}

func assistantMessage(content json.RawMessage) json.RawMessage {
	b := make([]byte, 0, len(content)+32)
	b = append(b, `{"role":"assistant","content":`...)
	b = append(b, content...)
	return append(b, '}')
}

func toolResultMessage(results []json.RawMessage) (json.RawMessage, error) {
	b, err := json.Marshal(message{Role: "user", Content: results})
	if err != nil {
		return nil, fmt.Errorf("encode tool results: %w", err)
	}
	return b, nil
}

// parseContent extracts the tool calls and the text of a reply's content.
func parseContent(content json.RawMessage) ([]ToolCall, string, error) {
	var blocks []struct {
		Type  string          `json:"type"`
		Text  string          `json:"text"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(content, &blocks); err != nil {
		return nil, "", fmt.Errorf("decode content: %w", err)
	}
	var calls []ToolCall
	var text []byte
	for _, b := range blocks {
		switch b.Type {
		case "text":
			if len(text) > 0 {
				text = append(text, '\n')
			}
			text = append(text, b.Text...)
		case "tool_use":
			calls = append(calls, ToolCall{ID: b.ID, Name: b.Name, Input: b.Input})
		}
	}
	return calls, string(text), nil
}

package claudesim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// An outBlock is one content block of a reply, in its wire shape.
type outBlock struct {
	Type      string          `json:"type"`
	Text      *string         `json:"text,omitempty"`
	Thinking  *string         `json:"thinking,omitempty"`
	Signature *string         `json:"signature,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`

	raw string // a thinking block's full reasoning, billed even when omitted
}

func (b *outBlock) tokens() int {
	switch b.Type {
	case "thinking":
		return tokensFor(len(b.raw))
	case "text":
		return tokensFor(len(*b.Text))
	case "tool_use":
		return tokensFor(len(b.Name) + len(b.Input))
	}
	return 0
}

// A reply is the simulated model's answer to a request.
type reply struct {
	content      []outBlock
	stopReason   string
	stopSequence *string
	outputTokens int
}

// A directive asks the simulator to call a tool: [[tool NAME {json}]].
type directive struct {
	name  string
	input []byte // compact JSON object
}

const directiveOpen = "[[tool "

// parseDirectives finds the tool directives in text. A malformed one is
// left as plain text.
func parseDirectives(text string) []directive {
	var out []directive
	for {
		i := strings.Index(text, directiveOpen)
		if i < 0 {
			return out
		}
		text = text[i+len(directiveOpen):]
		d, rest, ok := parseDirective(text)
		if ok {
			out = append(out, d)
			text = rest
		}
	}
}

// parseDirective parses "NAME {json}]]" or "NAME]]" at the start of s.
func parseDirective(s string) (directive, string, bool) {
	end := strings.IndexFunc(s, func(r rune) bool { return r == ' ' || r == ']' || r == '\n' || r == '\t' })
	if end <= 0 {
		return directive{}, s, false
	}
	d := directive{name: s[:end], input: []byte("{}")}
	rest := strings.TrimLeft(s[end:], " \t\n")
	if strings.HasPrefix(rest, "{") {
		dec := json.NewDecoder(strings.NewReader(rest))
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return directive{}, s, false
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return directive{}, s, false
		}
		d.input = buf.Bytes()
		rest = strings.TrimLeft(rest[dec.InputOffset():], " \t\n")
	}
	if !strings.HasPrefix(rest, "]]") {
		return directive{}, s, false
	}
	return d, rest[2:], true
}

// generate makes the deterministic reply to r. newID makes tool_use ids;
// key signs thinking blocks.
func generate(r *request, key []byte, newID func(prefix string) string) reply {
	last := r.turns[len(r.turns)-1]
	// With prefill (older models only), answer the last user turn.
	user := last
	for i := len(r.turns) - 1; i >= 0 && user.role != "user"; i-- {
		user = r.turns[i]
	}
	var texts []string
	var results []*block
	for _, b := range user.blocks {
		switch b.typ {
		case "text":
			texts = append(texts, b.text)
		case "tool_result":
			results = append(results, b)
		}
	}
	userText := strings.Join(texts, "\n")

	calls := toolCalls(r, userText)
	var thinking, text string
	switch {
	case len(calls) > 0:
		names := make([]string, len(calls))
		for i, c := range calls {
			names[i] = c.name
		}
		thinking = fmt.Sprintf("The user asked me to call %s. I will make the call%s now.", strings.Join(names, ", "), plural(len(calls)))
		text = "calling: " + strings.Join(names, ", ")
	case len(results) > 0:
		thinking = fmt.Sprintf("I have %d tool result%s to report.", len(results), plural(len(results)))
		text = summarise(r, results)
	default:
		thinking = fmt.Sprintf("The conversation has %d messages; I will echo the last user message.", len(r.messages))
		text = fmt.Sprintf("echo: %s (messages: %d)", userText, len(r.messages))
	}

	var content []outBlock
	// Between-tools thinking skips up-front thinking, keeping only the
	// note written before tool calls.
	if r.thinking != thinkNone && (r.thinking != thinkBetweenTools || len(calls) > 0) {
		content = append(content, thinkingBlock(key, thinking, r.display))
	}
	forced := r.toolChoice.Type == "any" || r.toolChoice.Type == "tool"
	if !forced || len(calls) == 0 {
		content = append(content, outBlock{Type: "text", Text: &text})
	}
	for _, c := range calls {
		content = append(content, outBlock{Type: "tool_use", ID: newID("toolu_01"), Name: c.name, Input: c.input})
	}
	stop := "end_turn"
	if len(calls) > 0 {
		stop = "tool_use"
	}
	rep := reply{content: content, stopReason: stop}
	rep.applyStopSequences(r.stopSequences)
	rep.applyMaxTokens(r.maxTokens, key, r.display)
	for i := range rep.content {
		rep.outputTokens += rep.content[i].tokens()
	}
	return rep
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// toolCalls returns the calls the reply makes: the directives in the last
// user turn naming tools the request declares, or, when tool_choice forces
// a call and there are none, a call with empty input.
func toolCalls(r *request, userText string) []directive {
	if r.toolChoice.Type == "none" || len(r.tools) == 0 {
		return nil
	}
	var calls []directive
	for _, d := range parseDirectives(userText) {
		if slices.ContainsFunc(r.tools, func(t *tool) bool { return t.name == d.name }) {
			if r.toolChoice.Type == "tool" && d.name != r.toolChoice.Name {
				continue
			}
			calls = append(calls, d)
		}
	}
	if len(calls) == 0 {
		switch r.toolChoice.Type {
		case "any":
			calls = []directive{{name: r.tools[0].name, input: []byte("{}")}}
		case "tool":
			calls = []directive{{name: r.toolChoice.Name, input: []byte("{}")}}
		}
	}
	if r.toolChoice.DisableParallelToolUse && len(calls) > 1 {
		calls = calls[:1]
	}
	return calls
}

// summarise reports tool results as "tool results: NAME=CONTENT; …".
func summarise(r *request, results []*block) string {
	names := map[string]string{}
	if n := len(r.turns); n >= 2 {
		for _, b := range r.turns[n-2].blocks {
			if b.typ == "tool_use" {
				names[b.id] = b.name
			}
		}
	}
	parts := make([]string, len(results))
	for i, b := range results {
		content := b.text
		if b.isError {
			content = "(error) " + content
		}
		parts[i] = names[b.toolUseID] + "=" + content
	}
	return "tool results: " + strings.Join(parts, "; ")
}

func thinkingBlock(key []byte, raw, display string) outBlock {
	shown := raw
	if display == "omitted" {
		shown = ""
	}
	sig := sign(key, raw, shown)
	return outBlock{Type: "thinking", Thinking: &shown, Signature: &sig, raw: raw}
}

// applyStopSequences cuts the first text block that contains a stop
// sequence at its earliest one, and drops the blocks after it.
func (rep *reply) applyStopSequences(seqs []string) {
	if len(seqs) == 0 {
		return
	}
	for i, b := range rep.content {
		if b.Type != "text" {
			continue
		}
		at, which := -1, ""
		for _, s := range seqs {
			if s == "" {
				continue
			}
			if j := strings.Index(*b.Text, s); j >= 0 && (at < 0 || j < at) {
				at, which = j, s
			}
		}
		if at < 0 {
			continue
		}
		cut := (*b.Text)[:at]
		rep.content[i].Text = &cut
		rep.content = rep.content[:i+1]
		if cut == "" {
			rep.content = rep.content[:i]
		}
		rep.stopReason = "stop_sequence"
		rep.stopSequence = &which
		return
	}
}

// applyMaxTokens cuts the reply to maxTokens output tokens, as a model that
// hits the limit stops mid-block. A tool call that does not fit whole is
// dropped.
func (rep *reply) applyMaxTokens(maxTokens int, key []byte, display string) {
	budget := maxTokens
	for i := range rep.content {
		b := &rep.content[i]
		n := b.tokens()
		if n <= budget {
			budget -= n
			continue
		}
		rep.stopReason = "max_tokens"
		rep.stopSequence = nil
		keep := i
		switch b.Type {
		case "thinking":
			if cut := truncate(b.raw, budget*4); cut != "" {
				*b = thinkingBlock(key, cut, display)
				keep = i + 1
			}
		case "text":
			if cut := truncate(*b.Text, budget*4); cut != "" {
				b.Text = &cut
				keep = i + 1
			}
		}
		rep.content = rep.content[:keep]
		return
	}
}

// truncate cuts s to at most n bytes at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

package claudesim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
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
	// Content and EncryptedContent are a compaction block's.
	Content          *string `json:"content,omitempty"`
	EncryptedContent *string `json:"encrypted_content,omitempty"`

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
	case "compaction":
		return tokensFor(len(*b.Content))
	}
	return 0
}

// A reply is the simulated model's answer to a request.
type reply struct {
	content      []outBlock
	stopReason   string
	stopSequence *string
	stopDetails  *stopDetails
	outputTokens int
}

// stopDetails is the documented stop_details object of a refusal.
type stopDetails struct {
	Type        string  `json:"type"`
	Category    *string `json:"category"`
	Explanation *string `json:"explanation"`
}

// Markers in the user's text that ask for a stop reason on demand (see
// the package doc).
const (
	markRefusal  = "[[refusal]]"
	markPause    = "[[pause_turn]]"
	markEmpty    = "[[empty]]"
	markToolCut  = "[[max_tokens_in_tool"
	refusalNote  = "The simulator refuses any conversation holding " + markRefusal + "."
	pausedText   = "pausing: this turn takes a while"
	resumedText  = "resumed: "
	truncatedMin = 1 << 30 // [[max_tokens_in_tool]] without N: never fits
)

// continuesPause reports whether the request continues a paused turn: it
// ends with an assistant turn and the user turn before it asked for a
// pause. The API takes such a request although it ends with the
// assistant.
func (r *request) continuesPause() bool {
	n := len(r.turns)
	if n < 2 || r.turns[n-1].role != "assistant" {
		return false
	}
	return strings.Contains(turnText(r.turns[n-2]), markPause)
}

// turnText joins the text blocks of t with "\n".
func turnText(t turn) string {
	var texts []string
	for _, b := range t.blocks {
		if b.typ == "text" {
			texts = append(texts, b.text)
		}
	}
	return strings.Join(texts, "\n")
}

// refused reports whether any user turn holds the refusal marker: as the
// docs say of the real API, a conversation keeps being refused until the
// refused message leaves its context.
func (r *request) refused() bool {
	for _, t := range r.turns {
		if t.role == "user" && strings.Contains(turnText(t), markRefusal) {
			return true
		}
	}
	return false
}

// toolCutNeed parses [[max_tokens_in_tool]] or [[max_tokens_in_tool N]]
// in text: the output tokens the tool call needs, a reply with less cut
// inside it. Without N it never fits.
func toolCutNeed(text string) (int, bool) {
	i := strings.Index(text, markToolCut)
	if i < 0 {
		return 0, false
	}
	rest := strings.TrimLeft(text[i+len(markToolCut):], " ")
	end := strings.Index(rest, "]]")
	if end < 0 {
		return 0, false
	}
	arg := strings.TrimSpace(rest[:end])
	if arg == "" {
		return truncatedMin, true
	}
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// onDemand makes the replies the markers ask for, or returns false.
func onDemand(r *request, key []byte, newID func(string) string, userText string) (reply, bool) {
	last := r.turns[len(r.turns)-1]
	switch {
	case r.refused():
		note := refusalNote
		return reply{content: []outBlock{}, stopReason: "refusal", stopDetails: &stopDetails{Type: "refusal", Explanation: &note}}, true
	case last.role == "assistant" && r.continuesPause():
		text := resumedText + fmt.Sprintf("echo: %s (messages: %d)", userText, len(r.messages))
		rep := reply{content: []outBlock{{Type: "text", Text: &text}}, stopReason: "end_turn"}
		rep.applyMaxTokens(r.maxTokens, key, r.display, r.replyPrefix)
		return rep, true
	case last.role != "user":
		return reply{}, false
	case strings.Contains(userText, markPause):
		var content []outBlock
		if r.thinking != thinkNone {
			content = append(content, thinkingBlock(key, "This will take more than one step; I will pause here.", r.display, r.replyPrefix))
		}
		text := pausedText
		content = append(content, outBlock{Type: "text", Text: &text})
		return reply{content: content, stopReason: "pause_turn"}, true
	case strings.Contains(userText, markEmpty):
		return reply{content: []outBlock{}, stopReason: "end_turn"}, true
	}
	need, ok := toolCutNeed(userText)
	if !ok || len(r.tools) == 0 || r.toolChoice.Type == "none" {
		return reply{}, false
	}
	calls := toolCalls(r, userText)
	if len(calls) == 0 {
		calls = []directive{{name: r.tools[0].name, input: []byte("{}")}}
	}
	c := calls[0]
	var content []outBlock
	if r.thinking != thinkNone {
		content = append(content, thinkingBlock(key, "The user asked me to call "+c.name+" with a large input.", r.display, r.replyPrefix))
	}
	text := "calling: " + c.name
	content = append(content, outBlock{Type: "text", Text: &text})
	rep := reply{content: content, stopReason: "tool_use"}
	if r.maxTokens < need {
		// Cut inside the call: its input never finished, so it comes back
		// empty, and the reply used all of max_tokens.
		content = append(content, outBlock{Type: "tool_use", ID: newID("toolu_01"), Name: c.name, Input: json.RawMessage("{}")})
		return reply{content: content, stopReason: "max_tokens", outputTokens: r.maxTokens}, true
	}
	rep.content = append(rep.content, outBlock{Type: "tool_use", ID: newID("toolu_01"), Name: c.name, Input: c.input})
	return rep, true
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

	if rep, ok := onDemand(r, key, newID, userText); ok {
		if rep.outputTokens == 0 {
			for i := range rep.content {
				rep.outputTokens += rep.content[i].tokens()
			}
		}
		return rep
	}

	calls := toolCalls(r, userText)
	if len(calls) == 0 && len(results) > 0 {
		// A tool result may ask for the next call, as a model reading it
		// would follow it: tool loops of many steps (see the package doc).
		texts := make([]string, len(results))
		for i, b := range results {
			texts[i] = b.text
		}
		calls = toolCalls(r, strings.Join(texts, "\n"))
	}
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
		content = append(content, thinkingBlock(key, thinking, r.display, r.replyPrefix))
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
	rep.applyMaxTokens(r.maxTokens, key, r.display, r.replyPrefix)
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

// thinkingBlock makes a signed thinking block bound to prefix, the
// binding MAC of everything before it.
func thinkingBlock(key []byte, raw, display string, prefix []byte) outBlock {
	shown := raw
	if display == "omitted" {
		shown = ""
	}
	sig := sign(key, raw, shown, prefix)
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
func (rep *reply) applyMaxTokens(maxTokens int, key []byte, display string, prefix []byte) {
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
				*b = thinkingBlock(key, cut, display, prefix)
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

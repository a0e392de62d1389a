package agent

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Caps on what a turn takes in (see #13). A session's history is re-sent
// on every model call, so what goes into it stays there until its TTL: one
// huge message or tool result would make every later turn of the session
// slow and costly, or fail it. So a message over Config.MaxMessageBytes is
// refused, a tool result over Config.MaxToolResultBytes is cut before it is
// saved or sent, and a model call that would send a history over
// Config.MaxSessionBytes is not made.

// checkMessage refuses a message over Config.MaxMessageBytes.
func (a *Agent) checkMessage(msg string) error {
	if len(msg) > a.cfg.MaxMessageBytes {
		return fmt.Errorf("%w: the message is %d bytes, over the limit of %d bytes", ErrMessageTooLarge, len(msg), a.cfg.MaxMessageBytes)
	}
	return nil
}

// checkSession refuses the turn's next model call when the session's
// history, the stored one (all of it, not only what Begin read) and the
// turn's messages, is over
// Config.MaxSessionBytes. Before the turn's first model call nothing was
// saved, so the session is unchanged.
func (a *Agent) checkSession(t *turn) error {
	n := t.before // the history before the part Begin read counts too
	for _, m := range t.history {
		n += int64(len(m))
	}
	for _, m := range t.msgs {
		n += int64(len(m))
	}
	if n <= int64(a.cfg.MaxSessionBytes) {
		return nil
	}
	what := "the turn was not run and nothing was saved"
	if t.calls > 0 || t.saved > 0 {
		what = "the turn stopped before its next model call"
	}
	return fmt.Errorf("%w: with this turn the session would hold %d bytes, over its limit of %d bytes; %s. "+
		"Start a new session, or delete this one", ErrSessionFull, n, a.cfg.MaxSessionBytes, what)
}

// capToolResult returns the tool_result block r of call id, cut to at most
// limit bytes when it is larger. A cut result keeps its tool_use_id and
// is_error; its content is the text of r's text blocks, cut at a UTF-8
// boundary, followed by a note telling Claude the result was cut and at
// how many bytes. Images and other non-text blocks of a cut result are
// dropped (half an image is no image), and the note counts them. A block
// that does not decode becomes an is_error result saying so.
func capToolResult(id string, r json.RawMessage, limit int) json.RawMessage {
	if len(r) <= limit {
		return r
	}
	var in struct {
		Content json.RawMessage `json:"content"`
		IsError bool            `json:"is_error"`
	}
	if err := json.Unmarshal(r, &in); err != nil {
		return toolError(id, fmt.Sprintf("The tool result was %d bytes, over the limit of %d bytes, and could not be read to cut it, so it was dropped.", len(r), limit))
	}
	text, dropped := resultText(in.Content)
	note := fmt.Sprintf("[lambdagent: this tool result was %d bytes, over the limit of %d bytes, so it was cut at %d bytes", len(r), limit, limit)
	if dropped > 0 {
		note += fmt.Sprintf("; %d non-text block(s) (images, documents) were dropped", dropped)
	}
	note += ". The rest is lost: if you need it, ask the tool for less at a time (a narrower query, a page, a range).]"
	// The longest prefix of the text that fits, by bisection: escaping
	// makes a byte of text cost one to six bytes of JSON, so no one
	// guess fits. Each byte costs at least one, so no more than limit
	// bytes can fit.
	lo, hi := 0, min(len(text), limit)
	for lo < hi {
		mid := cutUTF8(text, (lo+hi+1)/2)
		if mid <= lo {
			mid = lo + 1 // within a rune: try its end below
			for mid < hi && !utf8.RuneStart(text[mid]) {
				mid++
			}
		}
		if len(encodeResult(id, text[:mid], note, in.IsError)) <= limit {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return encodeResult(id, text[:cutUTF8(text, lo)], note, in.IsError)
}

// resultText returns the text of a tool_result's content (a string, or
// blocks whose text blocks it joins with newlines) and how many other
// blocks it holds.
func resultText(content json.RawMessage) (string, int) {
	var s string
	if json.Unmarshal(content, &s) == nil {
		return s, 0
	}
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(content, &blocks) != nil {
		return "", 0
	}
	var b []byte
	dropped := 0
	for _, bl := range blocks {
		if bl.Type != "text" {
			dropped++
			continue
		}
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, bl.Text...)
	}
	return string(b), dropped
}

// cutUTF8 returns the largest n' ≤ n at which s may be cut without
// splitting a rune.
func cutUTF8(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

// encodeResult renders a cut tool_result: the kept text, then the note.
// It escapes as json.Marshal does, since the tool_result message that
// holds the block is encoded by json.Marshal (toolResultMessage), which
// would escape "<" again: the size measured here is the size stored.
func encodeResult(id, text, note string, isError bool) json.RawMessage {
	content := make([]textBlock, 0, 2)
	if text != "" {
		content = append(content, textBlock{Type: "text", Text: text})
	}
	content = append(content, textBlock{Type: "text", Text: note})
	b, _ := json.Marshal(struct {
		Type      string      `json:"type"`
		ToolUseID string      `json:"tool_use_id"`
		Content   []textBlock `json:"content"`
		IsError   bool        `json:"is_error,omitempty"`
	}{"tool_result", id, content, isError}) // strings only: cannot fail
	return b
}

package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/lambdagent/lambdagent/internal/session"
)

// History strategies (see #14). Every turn used to send the whole
// history, so a session that outgrew the context window failed every
// turn from then on. A strategy decides what of the stored history a
// request sends; the store always keeps all of it.
//
//   - full sends everything (the default).
//   - compact asks the API to compact (compact_20260112, beta
//     compact-2026-01-12): past the trigger, a reply starts with a
//     compaction block summarising the conversation, stored as returned.
//     Later requests send the history from the last compaction block on,
//     the API reading nothing before it; a short user placeholder goes
//     first, so the transcript still starts with the user and every
//     tool_result keeps its tool_use.
//   - clear_tool_uses asks the API to clear old tool results
//     (clear_tool_uses_20250919, beta context-management-2025-06-27):
//     the whole history is sent, edited server side.
//   - window sends the last HistoryWindowTurns turns, for models or
//     accounts without those features. It cuts only where a turn starts
//     (a user message that answers no tool call), and moves the cut in
//     steps of half the window, so that between two cuts every request
//     extends the last one's prefix and reads it from the prompt cache.
//     Thinking blocks of the history it sends are dropped: they are bound
//     to the prefix they were made after (preserved thinking), which the
//     cut changed, and the docs' remedy is to remove them. The current
//     turn's own thinking is sent as is.
//
// Whatever the strategy, a request that the API finds too long (400
// "prompt is too long", or stop_reason model_context_window_exceeded) is
// sent once more with half the turns, cut the same way, before the turn
// fails with 413 context_window_exceeded.
//
// What a request sends bounds what a turn reads, too: the final commit of
// a compact or window turn stores the session's cut (session.Commit.Cut,
// see cutFor), where the history that later requests send starts, and
// their Begin reads from it on, so a turn's cost stays flat however long
// the session grows. The window is placed on absolute turn numbers
// (State.FirstStarts), so a turn reading from the cut sends what one
// reading everything would, byte for byte, and the prompt cache fares as
// before.
//
// A session keeps the strategy it started with: it is stored with the
// session's pin (see pin.go). A turn may name one (Request.History) only
// when the session starts, or to name the one it has.

// A History is a history strategy.
type History string

// The history strategies.
const (
	HistoryFull          History = "full"
	HistoryCompact       History = "compact"
	HistoryClearToolUses History = "clear_tool_uses"
	HistoryWindow        History = "window"
)

// DefaultHistoryWindowTurns is Config.HistoryWindowTurns when zero.
const DefaultHistoryWindowTurns = 20

// Beta headers of the strategies.
const (
	betaCompact           = "compact-2026-01-12"
	betaContextManagement = "context-management-2025-06-27"
)

// compactedPlaceholder is the user message sent before the compaction
// block: the API drops it with everything else before the block.
var compactedPlaceholder = json.RawMessage(`{"role":"user","content":"(earlier conversation compacted)"}`)

// ParseHistory returns the strategy named s; "" means full.
func ParseHistory(s string) (History, error) {
	switch h := History(s); h {
	case "":
		return HistoryFull, nil
	case HistoryFull, HistoryCompact, HistoryClearToolUses, HistoryWindow:
		return h, nil
	}
	return "", fmt.Errorf("%w: unknown history strategy %q (want full, compact, clear_tool_uses or window)", ErrBadRequest, s)
}

// historyFor settles the session's strategy: the pinned one, else the
// request's, else the deployment's. A new session pins it.
func (a *Agent) historyFor(req Request, st *session.State, c *conv) error {
	if c.history == "" {
		c.history = a.cfg.History
	}
	if req.History == "" {
		return nil
	}
	h, err := ParseHistory(req.History)
	if err != nil {
		return err
	}
	if h == c.history {
		return nil
	}
	if len(st.Pinned) > 0 || st.Version > 0 {
		return fmt.Errorf("%w: session %s uses history strategy %s; a session keeps the strategy it started with", ErrBadRequest, req.SessionID, c.history)
	}
	c.store, c.history = pinHistory(c.store, h), h
	return nil
}

// pinHistory returns the pin b with the strategy h, or b itself when h is
// empty or already b's.
func pinHistory(b []byte, h History) []byte {
	if h == "" || len(b) == 0 {
		return b
	}
	var p pin
	if json.Unmarshal(b, &p) != nil || p.History == h {
		return b
	}
	p.History = h
	out, err := json.Marshal(p)
	if err != nil {
		return b
	}
	return out
}

// historyRequest builds a model call's body as c's strategy has it, and
// the beta headers it needs. keep, when positive, cuts the history to at
// most that many turns on top of the strategy (the retry of a request
// that was too long).
func (a *Agent) historyRequest(c conv, t *turn, maxTokens int, msgs []json.RawMessage, noTools bool, keep int) ([]byte, []string) {
	history, betas := t.history, a.betas
	var extra []byte
	switch c.history {
	case HistoryWindow:
		history = windowed(history, msgs, a.cfg.HistoryWindowTurns, true, t.firstStarts)
	case HistoryCompact:
		history, msgs = fromCompaction(history, msgs)
		extra = a.compactEdits()
		betas = append(betas[:len(betas):len(betas)], betaCompact)
	case HistoryClearToolUses:
		extra = a.clearEdits()
		betas = append(betas[:len(betas):len(betas)], betaContextManagement)
	}
	if keep > 0 {
		// keep counts the turns of what is sent, whatever was read.
		history = windowed(history, msgs, keep, false, 0)
	}
	body := a.requestBody(c, maxTokens, history, msgs, noTools)
	if extra != nil {
		// requestBody ends with the messages array and "}".
		body = append(append(body[:len(body)-1], extra...), '}')
	}
	return body, betas
}

func (a *Agent) compactEdits() []byte {
	b := []byte(`,"context_management":{"edits":[{"type":"compact_20260112"`)
	if n := a.cfg.HistoryTriggerTokens; n > 0 {
		b = append(b, `,"trigger":{"type":"input_tokens","value":`...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, '}')
	}
	if s := a.cfg.CompactInstructions; s != "" {
		b = append(b, `,"instructions":`...)
		b = append(b, mustJSON(s)...)
	}
	return append(b, `}]}`...)
}

func (a *Agent) clearEdits() []byte {
	b := []byte(`,"context_management":{"edits":[{"type":"clear_tool_uses_20250919"`)
	if n := a.cfg.HistoryTriggerTokens; n > 0 {
		b = append(b, `,"trigger":{"type":"input_tokens","value":`...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, '}')
	}
	return append(b, `}]}`...)
}

// shorten reports whether a failed model call is to be made again with
// half the turns: once a turn, when the request was too long (400
// "prompt is too long", or stop_reason model_context_window_exceeded).
// It sets t.keep for the rest of the turn, whose thinking is then bound
// to the shorter prefix.
func (a *Agent) shorten(err error, stopReason string, c conv, t *turn, msgs []json.RawMessage) bool {
	if t.keep > 0 || contextWindowError(err, stopReason, t) == nil {
		return false
	}
	t.keep = keptTurns(c, t, msgs, a.cfg.HistoryWindowTurns)
	return true
}

// storable returns the turn's messages as they are stored. Those of a
// shortened turn lose their thinking: it is bound to the shorter prefix,
// which no later request sends, and a later request sending it would be
// refused (the block "is bound to a different conversation"). Kept in
// memory, the turn's own later calls still send it.
func storable(t *turn, msgs []json.RawMessage) []json.RawMessage {
	if t.keep == 0 {
		return msgs
	}
	out := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		out[i] = dropThinking(m)
	}
	return out
}

// keptTurns counts the turns a retry keeps: half of those sent.
func keptTurns(c conv, t *turn, msgs []json.RawMessage, windowTurns int) int {
	history := t.history
	switch c.history {
	case HistoryWindow:
		history = windowed(history, msgs, windowTurns, true, t.firstStarts)
	case HistoryCompact:
		history, msgs = fromCompaction(history, msgs)
	}
	n := len(turnStarts(history))
	if len(msgs) > 0 && startsTurn(msgs[0]) {
		n++
	}
	return max(1, n/2)
}

var compactionType = []byte(`"type":"compaction"`)

// fromCompaction returns the history and turn messages from the last
// assistant message holding a compaction block on, after the placeholder
// user message; without one, they are returned as they are.
func fromCompaction(history, msgs []json.RawMessage) ([]json.RawMessage, []json.RawMessage) {
	for i := len(msgs) - 1; i >= 0; i-- {
		if isCompaction(msgs[i]) {
			return []json.RawMessage{compactedPlaceholder}, msgs[i:]
		}
	}
	for i := len(history) - 1; i >= 0; i-- {
		if isCompaction(history[i]) {
			out := make([]json.RawMessage, 0, len(history)-i+1)
			out = append(out, compactedPlaceholder)
			return append(out, history[i:]...), msgs
		}
	}
	return history, msgs
}

func isCompaction(m json.RawMessage) bool {
	return bytes.HasPrefix(m, assistantPrefix) && bytes.Contains(m, compactionType)
}

var toolResultType = []byte(`"type":"tool_result"`)

// startsTurn reports whether m is a user message that answers no tool
// call: history may be cut before it.
func startsTurn(m json.RawMessage) bool {
	return bytes.HasPrefix(m, userPrefix) && !bytes.Contains(m, toolResultType)
}

// turnStarts returns the indices of the messages of history that start
// a turn.
func turnStarts(history []json.RawMessage) []int {
	var out []int
	for i, m := range history {
		if startsTurn(m) {
			out = append(out, i)
		}
	}
	return out
}

// windowed returns the last turns of history, so that with the turn
// being made (msgs) at most n turns are sent, cut where a turn starts,
// thinking blocks dropped. With steps, the cut moves n/2 turns at a time
// (the prompt cache then survives between cuts); without, it keeps as
// many turns as fit. before is the number of turn starts before
// history[0] (State.FirstStarts when the history was read from a cut):
// the cut is placed on absolute turn numbers, so a history read from a
// cut is cut where the whole one would have been.
func windowed(history, msgs []json.RawMessage, n int, steps bool, before int64) []json.RawMessage {
	from, _, ok := windowFrom(history, msgs, n, steps, before)
	if !ok {
		return history
	}
	kept := history[from:]
	// The last message keeps its thinking when the turn answers its
	// tool calls: the API wants the thinking that made them.
	last := -1
	if len(kept) > 0 && len(msgs) > 0 && bytes.HasPrefix(msgs[0], userPrefix) && bytes.Contains(msgs[0], toolResultType) {
		last = len(kept) - 1
	}
	out := make([]json.RawMessage, len(kept))
	for i, m := range kept {
		if i == last {
			out[i] = m
			continue
		}
		out[i] = dropThinking(m)
	}
	return out
}

// windowFrom returns where in history the window of windowed starts and
// the absolute number of turn starts before it, or false when the window
// holds the whole history as it is. A window that would start before
// history[0] (possible only if the window was made larger after a cut
// was stored) starts at history[0]; one that keeps no turn of history
// starts at its end.
func windowFrom(history, msgs []json.RawMessage, n int, steps bool, before int64) (from int, over int64, ok bool) {
	starts := turnStarts(history)
	total := before + int64(len(starts))
	if len(msgs) > 0 && startsTurn(msgs[0]) {
		total++
	}
	if total <= int64(n) || len(starts) == 0 {
		return 0, 0, false
	}
	over = total - int64(n) // turns to cut, at least
	if steps {
		step := int64(max(1, n/2))
		over = (over + step - 1) / step * step
	}
	switch i := over - before; {
	case i < 0:
		return 0, before, true
	case i >= int64(len(starts)):
		return len(history), over, true
	default:
		return starts[i], over, true
	}
}

// cutFor returns the cut the turn's final commit stores (see
// [session.Commit.Cut]): where the history that later turns send starts,
// so that their Begin reads no more than that. For window, where the
// turn's window starts: the window only moves forward, so later turns
// never send anything before it. For compact, the user message before
// the last compaction block: later requests send the history from that
// block on, and the history read still starts with the user. Nil for the
// strategies that send everything, and when the cut would not move.
func cutFor(c conv, t *turn, windowTurns int) *session.Cut {
	var at int // index into t.history followed by t.msgs
	switch c.history {
	case HistoryWindow:
		from, over, ok := windowFrom(t.history, t.msgs, windowTurns, true, t.firstStarts)
		if !ok || from == 0 || from >= len(t.history) {
			return nil
		}
		return &session.Cut{Index: t.first + int64(from), Starts: over}
	case HistoryCompact:
		at = -1
		for i := len(t.history) + len(t.msgs) - 1; i > 0 && at < 0; i-- {
			if isCompaction(t.message(i)) && bytes.HasPrefix(t.message(i-1), userPrefix) {
				at = i - 1
			}
		}
		if at <= 0 {
			return nil
		}
	default:
		return nil
	}
	starts := t.firstStarts
	for i := range at {
		if startsTurn(t.message(i)) {
			starts++
		}
	}
	return &session.Cut{Index: t.first + int64(at), Starts: starts}
}

var thinkingType = []byte(`"thinking"`)

// dropThinking returns an assistant message without its thinking blocks,
// or m itself when it has none. A window session drops them from every
// message it sends on every turn, so the common form, the one
// assistantMessage writes, is split without decoding (fastDropThinking);
// anything else is decoded.
func dropThinking(m json.RawMessage) json.RawMessage {
	if !bytes.HasPrefix(m, assistantPrefix) || !bytes.Contains(m, thinkingType) {
		return m
	}
	if out, ok := fastDropThinking(m); ok {
		return out
	}
	return decodedDropThinking(m)
}

// decodedDropThinking is dropThinking by decoding m.
func decodedDropThinking(m json.RawMessage) json.RawMessage {
	var msg struct {
		Role    string            `json:"role"`
		Content []json.RawMessage `json:"content"`
	}
	if json.Unmarshal(m, &msg) != nil {
		return m
	}
	kept := msg.Content[:0]
	for _, b := range msg.Content {
		var cb contentBlock
		_ = json.Unmarshal(b, &cb)
		if cb.Type == "thinking" || cb.Type == "redacted_thinking" {
			continue
		}
		kept = append(kept, b)
	}
	if len(kept) == len(msg.Content) && len(kept) > 0 {
		return m
	}
	if len(kept) == 0 {
		kept = append(kept, mustJSON(textBlock{Type: "text", Text: emptyText}))
	}
	content, _ := json.Marshal(kept)
	return assistantMessage(content)
}

var (
	assistantContentPrefix = []byte(`{"role":"assistant","content":[`)
	thinkingBlockPrefix    = []byte(`{"type":"thinking"`)
	redactedBlockPrefix    = []byte(`{"type":"redacted_thinking"`)
	typedBlockPrefix       = []byte(`{"type":"`)
)

// fastDropThinking is dropThinking for a message of the form
// assistantMessage writes, {"role":"assistant","content":[…]}, whose
// blocks each start with their type, as the API sends them: it splits the
// content array with splitArray, and renders the kept blocks as
// json.Marshal would (compacted, HTML-escaped), so its result is byte for
// byte the decoding path's and a session's requests do not change with
// it. It reports false for any other form, or JSON it cannot split.
func fastDropThinking(m json.RawMessage) (json.RawMessage, bool) {
	if !bytes.HasPrefix(m, assistantContentPrefix) || !bytes.HasSuffix(m, []byte("]}")) {
		return nil, false
	}
	blocks, ok := splitArray(m[len(assistantContentPrefix)-1 : len(m)-1])
	if !ok {
		return nil, false
	}
	var out, tmp bytes.Buffer
	out.Grow(len(m))
	out.Write(m[:len(assistantContentPrefix)])
	kept := 0
	for _, b := range blocks {
		switch {
		case bytes.HasPrefix(b, thinkingBlockPrefix), bytes.HasPrefix(b, redactedBlockPrefix):
			continue
		case !bytes.HasPrefix(b, typedBlockPrefix):
			return nil, false
		}
		if kept > 0 {
			out.WriteByte(',')
		}
		kept++
		tmp.Reset()
		if json.Compact(&tmp, b) != nil {
			return nil, false
		}
		json.HTMLEscape(&out, tmp.Bytes())
	}
	switch {
	case kept == len(blocks) && kept > 0:
		return m, true
	case kept == 0:
		out.Write(mustJSON(textBlock{Type: "text", Text: emptyText}))
	}
	out.WriteString("]}")
	return out.Bytes(), true
}

// splitArray returns the elements of the JSON array a, each as it is in
// a without the whitespace around it. It finds their ends by depth and
// strings only, and checks nothing else: the caller compacts each element
// it keeps, which fails on one that is not JSON. It reports false when a
// is not an array or its brackets, quotes and commas do not add up.
func splitArray(a []byte) ([][]byte, bool) {
	a = bytes.TrimSpace(a)
	if len(a) < 2 || a[0] != '[' || a[len(a)-1] != ']' {
		return nil, false
	}
	var out [][]byte
	depth, start, inString := 0, 1, false
	for i := 1; i < len(a)-1; i++ {
		if inString {
			switch a[i] {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch a[i] {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth < 0 {
				return nil, false
			}
		case ',':
			if depth == 0 {
				e := bytes.TrimSpace(a[start:i])
				if len(e) == 0 {
					return nil, false
				}
				out = append(out, e)
				start = i + 1
			}
		}
	}
	if inString || depth != 0 {
		return nil, false
	}
	e := bytes.TrimSpace(a[start : len(a)-1])
	switch {
	case len(e) > 0:
		out = append(out, e)
	case len(out) > 0:
		return nil, false // a trailing comma
	}
	return out, true
}

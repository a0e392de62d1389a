package claudesim

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Context management, as documented on the "Context windows",
// "Compaction" and "Context editing" pages (see #14):
//
//   - The context window: a prompt over the model's window gets 400
//     "prompt is too long: N tokens > M maximum"; a prompt that fits but
//     whose reply would not stops where the window ends, with stop_reason
//     "model_context_window_exceeded".
//   - Compaction (beta compact-2026-01-12): context_management.edits
//     holding {"type":"compact_20260112","trigger":{"type":"input_tokens",
//     "value":N},"instructions":…,"pause_after_compaction":…}. A prompt
//     over the trigger is summarised into a compaction block that starts
//     the reply; the reply goes on from the summary (or, with
//     pause_after_compaction, stops there with stop_reason "compaction").
//     Sent back, the block makes the API drop every block before it.
//   - Context editing (beta context-management-2025-06-27):
//     clear_thinking_20251015 and clear_tool_uses_20250919, applied to
//     the prompt before the model sees it, each applied edit reported in
//     the reply's context_management.applied_edits.

// Beta headers of context management.
const (
	betaCompact           = "compact-2026-01-12"
	betaContextManagement = "context-management-2025-06-27"
)

// Documented defaults of the edits.
const (
	// DefaultCompactTrigger is compact_20260112's trigger when the edit
	// names none; MinCompactTrigger the smallest the API takes.
	DefaultCompactTrigger = 150_000
	MinCompactTrigger     = 50_000
	defaultClearTrigger   = 100_000
	defaultKeepToolUses   = 3
	defaultKeepThinking   = 1
	// clearedToolResult replaces the content of a cleared tool result.
	clearedToolResult = "[tool result cleared to save context]"
	clearedToolInput  = "{}"
)

type wireContextManagement struct {
	Edits []json.RawMessage `json:"edits"`
}

type wireCount struct {
	Type  string `json:"type"`
	Value *int   `json:"value"`
}

type wireEdit struct {
	Type                 string          `json:"type"`
	Trigger              *wireCount      `json:"trigger"`
	Keep                 json.RawMessage `json:"keep"`
	ClearAtLeast         *wireCount      `json:"clear_at_least"`
	ExcludeTools         []string        `json:"exclude_tools"`
	ClearToolInputs      json.RawMessage `json:"clear_tool_inputs"`
	Instructions         *string         `json:"instructions"`
	PauseAfterCompaction bool            `json:"pause_after_compaction"`
}

// An edit is one parsed element of context_management.edits.
type edit struct {
	typ          string
	triggerType  string // "input_tokens" or "tool_uses"
	trigger      int
	keep         int // tool uses, or thinking turns; -1 keeps all
	clearAtLeast int
	exclude      []string
	clearInputs  bool     // clear_tool_inputs true
	inputsOf     []string // clear_tool_inputs as a list of tool names
	instructions string
	pause        bool
}

// An appliedEdit is one entry of the reply's
// context_management.applied_edits.
type appliedEdit struct {
	Type                 string `json:"type"`
	ClearedInputTokens   int    `json:"cleared_input_tokens"`
	ClearedToolUses      *int   `json:"cleared_tool_uses,omitempty"`
	ClearedThinkingTurns *int   `json:"cleared_thinking_turns,omitempty"`
}

// contextManagementJSON is the reply's context_management object.
type contextManagementJSON struct {
	AppliedEdits []appliedEdit `json:"applied_edits"`
}

// iterationUsage is one entry of usage.iterations: the compaction, then
// the message.
type iterationUsage struct {
	Type                     string        `json:"type"`
	InputTokens              int           `json:"input_tokens"`
	CacheCreationInputTokens int           `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int           `json:"cache_read_input_tokens"`
	CacheCreation            CacheCreation `json:"cache_creation"`
	OutputTokens             int           `json:"output_tokens"`
}

func parseCount(path string, c *wireCount, types ...string) (string, int, *apiError) {
	if !slices.Contains(types, c.Type) {
		return "", 0, invalid("%s.type: Input should be '%s'", path, strings.Join(types, "' or '"))
	}
	if c.Value == nil {
		return "", 0, invalid("%s.value: Field required", path)
	}
	if *c.Value < 0 {
		return "", 0, invalid("%s.value: Input should be greater than or equal to 0", path)
	}
	return c.Type, *c.Value, nil
}

// parseContextManagement reads context_management, whose edits each need
// their beta header, as the API requires.
func (r *request) parseContextManagement(raw json.RawMessage, betas []string) *apiError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if !hasBeta(betas, betaContextManagement) && !hasBeta(betas, betaCompact) {
		return invalid("context_management: Extra inputs are not permitted. This field requires the beta header `anthropic-beta: %s` (or `%s` for compaction).", betaContextManagement, betaCompact)
	}
	var cm wireContextManagement
	if err := json.Unmarshal(raw, &cm); err != nil {
		return invalid("context_management: Input should be a valid dictionary")
	}
	r.contextManagement = true
	seen := map[string]bool{}
	for i, rawEdit := range cm.Edits {
		path := fmt.Sprintf("context_management.edits.%d", i)
		var w wireEdit
		if err := json.Unmarshal(rawEdit, &w); err != nil {
			return invalid("%s: Input should be a valid dictionary", path)
		}
		e := edit{typ: w.Type}
		switch w.Type {
		case "compact_20260112":
			if !hasBeta(betas, betaCompact) {
				return invalid("%s: compact_20260112 requires the beta header `anthropic-beta: %s`.", path, betaCompact)
			}
			e.triggerType, e.trigger = "input_tokens", DefaultCompactTrigger
			if w.Trigger != nil {
				var err *apiError
				if e.triggerType, e.trigger, err = parseCount(path+".trigger", w.Trigger, "input_tokens"); err != nil {
					return err
				}
			}
			if e.trigger < r.minCompact {
				return invalid("%s.trigger.value: Input should be greater than or equal to %d", path, r.minCompact)
			}
			if w.Instructions != nil {
				e.instructions = *w.Instructions
			}
			e.pause = w.PauseAfterCompaction
		case "clear_tool_uses_20250919", "clear_thinking_20251015":
			if !hasBeta(betas, betaContextManagement) {
				return invalid("%s: %s requires the beta header `anthropic-beta: %s`.", path, w.Type, betaContextManagement)
			}
			if err := e.parseClear(path, &w); err != nil {
				return err
			}
			if w.Type == "clear_thinking_20251015" && len(r.edits) > 0 {
				return invalid("%s: clear_thinking_20251015 must be the first edit in context_management.edits", path)
			}
		default:
			return invalid("%s: Input tag '%s' found using 'type' does not match any of the expected tags: 'clear_tool_uses_20250919', 'clear_thinking_20251015', 'compact_20260112'", path, w.Type)
		}
		if seen[w.Type] {
			return invalid("%s: duplicate edit type %s", path, w.Type)
		}
		seen[w.Type] = true
		r.edits = append(r.edits, e)
	}
	return nil
}

func (e *edit) parseClear(path string, w *wireEdit) *apiError {
	var err *apiError
	if e.typ == "clear_thinking_20251015" {
		e.keep = defaultKeepThinking
		keep := bytes.TrimSpace(w.Keep)
		switch {
		case len(keep) == 0 || string(keep) == "null":
		case string(keep) == `"all"`:
			e.keep = -1
		default:
			var c wireCount
			if json.Unmarshal(keep, &c) != nil {
				return invalid(`%s.keep: Input should be "all" or {"type":"thinking_turns","value":N}`, path)
			}
			if _, e.keep, err = parseCount(path+".keep", &c, "thinking_turns"); err != nil {
				return err
			}
		}
		return nil
	}
	e.triggerType, e.trigger, e.keep = "input_tokens", defaultClearTrigger, defaultKeepToolUses
	if w.Trigger != nil {
		if e.triggerType, e.trigger, err = parseCount(path+".trigger", w.Trigger, "input_tokens", "tool_uses"); err != nil {
			return err
		}
	}
	if keep := bytes.TrimSpace(w.Keep); len(keep) > 0 && string(keep) != "null" {
		var c wireCount
		if json.Unmarshal(keep, &c) != nil {
			return invalid("%s.keep: Input should be a valid dictionary", path)
		}
		if _, e.keep, err = parseCount(path+".keep", &c, "tool_uses"); err != nil {
			return err
		}
	}
	if w.ClearAtLeast != nil {
		if _, e.clearAtLeast, err = parseCount(path+".clear_at_least", w.ClearAtLeast, "input_tokens"); err != nil {
			return err
		}
	}
	e.exclude = w.ExcludeTools
	if in := bytes.TrimSpace(w.ClearToolInputs); len(in) > 0 && string(in) != "null" {
		if json.Unmarshal(in, &e.clearInputs) != nil && json.Unmarshal(in, &e.inputsOf) != nil {
			return invalid("%s.clear_tool_inputs: Input should be a valid boolean or list of tool names", path)
		}
	}
	return nil
}

// compactionSig signs a compaction block's summary and opaque content, so
// that a block changed on the way back is rejected.
func compactionSig(key []byte, content, encrypted string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("compaction\x00"))
	h.Write([]byte(content))
	h.Write([]byte{0})
	h.Write([]byte(encrypted))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// parseCompaction decodes a compaction block sent back: its content is
// the summary, or null for a failed compaction (a no-op).
func parseCompaction(path, role string, wb *wireBlock, b *block) *apiError {
	if role != "assistant" {
		return invalid("%s: compaction blocks may only appear in assistant messages", path)
	}
	content := bytes.TrimSpace(wb.Content)
	switch {
	case len(content) == 0 || string(content) == "null":
		b.failed = true
	default:
		if err := json.Unmarshal(content, &b.text); err != nil {
			return invalid("%s.compaction.content: Input should be a valid string", path)
		}
		if b.text == "" {
			return invalid("%s.compaction.content: String should have at least 1 character", path)
		}
	}
	if wb.EncryptedContent != nil {
		b.encrypted = *wb.EncryptedContent
	}
	if wb.Signature != nil {
		b.signature = *wb.Signature
	}
	b.raw = []byte(b.text + "\x00" + b.encrypted + "\x00" + b.signature)
	b.tokens = tokensFor(len(b.text))
	return nil
}

// checkCompactions verifies the compaction blocks sent back (they need
// their beta header and their signature) and finds the last one that
// holds a summary: everything before it is dropped.
func (r *request) checkCompactions(key []byte, betas []string) *apiError {
	r.compactMsg, r.compactBlk = -1, -1
	for i, m := range r.messages {
		for j, b := range m.blocks {
			if b.typ != "compaction" {
				continue
			}
			if !hasBeta(betas, betaCompact) {
				return invalid("messages.%d.content.%d: compaction blocks require the beta header `anthropic-beta: %s`.", i, j, betaCompact)
			}
			if b.failed {
				continue
			}
			if !hmac.Equal([]byte(b.signature), []byte(compactionSig(key, b.text, b.encrypted))) {
				return invalid("messages.%d.content.%d: Invalid `signature` in `compaction` block", i, j)
			}
			r.compactMsg, r.compactBlk = i, j
		}
	}
	return nil
}

// dropBeforeCompaction keeps, of the messages, only what follows the
// last compaction block (which stays, first), as the API does: the
// summary replaces everything before it. msgBase keeps error paths in
// the sender's numbering.
func (r *request) dropBeforeCompaction() {
	if r.compactMsg < 0 {
		return
	}
	m := r.messages[r.compactMsg]
	kept := make([]message, 0, len(r.messages)-r.compactMsg)
	kept = append(kept, message{role: m.role, blocks: m.blocks[r.compactBlk:]})
	kept = append(kept, r.messages[r.compactMsg+1:]...)
	r.messages = kept
	r.msgBase = r.compactMsg
	r.turns = mergeTurns(r.messages)
}

// applyEdits applies the context-editing edits, in order, to the prompt
// the model sees, and records what each cleared.
func (r *request) applyEdits() {
	for _, e := range r.edits {
		switch e.typ {
		case "clear_thinking_20251015":
			r.clearThinking(e)
		case "clear_tool_uses_20250919":
			r.clearToolUses(e)
		}
	}
}

// clearThinking removes the thinking of all but the last e.keep assistant
// turns that have some.
func (r *request) clearThinking(e edit) {
	if e.keep < 0 {
		return
	}
	var turns []int // assistant turns with thinking, oldest first
	for ti, t := range r.turns {
		if t.role == "assistant" && slices.ContainsFunc(t.blocks, func(b *block) bool { return b.typ == "thinking" || b.typ == "redacted_thinking" }) {
			turns = append(turns, ti)
		}
	}
	if len(turns) <= e.keep {
		return
	}
	cleared, tokens := 0, 0
	for _, ti := range turns[:len(turns)-e.keep] {
		for _, b := range r.turns[ti].blocks {
			if (b.typ == "thinking" || b.typ == "redacted_thinking") && !b.cleared {
				tokens += b.tokens
				b.tokens, b.cleared = 0, true
			}
		}
		cleared++
	}
	r.applied = append(r.applied, appliedEdit{Type: e.typ, ClearedInputTokens: tokens, ClearedThinkingTurns: &cleared})
}

// clearToolUses replaces the results (and, if asked, the inputs) of the
// oldest tool uses with a placeholder, keeping the last e.keep, once the
// prompt reaches the trigger, and only if that clears at least
// e.clearAtLeast tokens.
func (r *request) clearToolUses(e edit) {
	type use struct{ call, result *block }
	var uses []use
	byID := map[string]*block{}
	for _, t := range r.turns {
		for _, b := range t.blocks {
			switch b.typ {
			case "tool_use":
				byID[b.id] = b
			case "tool_result":
				if c, ok := byID[b.toolUseID]; ok {
					uses = append(uses, use{c, b})
				}
			}
		}
	}
	switch {
	case e.triggerType == "tool_uses" && len(uses) < e.trigger:
		return
	case e.triggerType == "input_tokens" && r.inputTokens() < e.trigger:
		return
	case len(uses) <= e.keep:
		return
	}
	type change struct {
		b      *block
		text   string
		input  []byte
		tokens int
	}
	var changes []change
	cleared, saved := 0, 0
	for _, u := range uses[:len(uses)-e.keep] {
		if slices.Contains(e.exclude, u.call.name) || u.result.cleared {
			continue
		}
		n := tokensFor(len(clearedToolResult))
		saved += u.result.tokens - n
		changes = append(changes, change{b: u.result, text: clearedToolResult, tokens: n})
		if e.clearInputs || slices.Contains(e.inputsOf, u.call.name) {
			n := tokensFor(len(u.call.name) + len(clearedToolInput))
			saved += u.call.tokens - n
			changes = append(changes, change{b: u.call, input: []byte(clearedToolInput), tokens: n})
		}
		cleared++
	}
	if cleared == 0 || saved < e.clearAtLeast {
		return
	}
	for _, c := range changes {
		if c.input != nil {
			c.b.input = c.input
		} else {
			c.b.text = c.text
		}
		c.b.tokens, c.b.cleared = c.tokens, true
	}
	r.applied = append(r.applied, appliedEdit{Type: e.typ, ClearedInputTokens: saved, ClearedToolUses: &cleared})
}

// compactEdit returns the compact_20260112 edit, if the request has one.
func (r *request) compactEdit() (edit, bool) {
	i := slices.IndexFunc(r.edits, func(e edit) bool { return e.typ == "compact_20260112" })
	if i < 0 {
		return edit{}, false
	}
	return r.edits[i], true
}

// summary is the simulated compaction of the prompt: what it held and the
// last thing the user said, bounded, so the compacted context is small.
func (r *request) summary(instructions string) string {
	var last string
	for i := len(r.turns) - 1; i >= 0 && last == ""; i-- {
		if r.turns[i].role == "user" {
			last = turnText(r.turns[i])
		}
	}
	s := fmt.Sprintf("Summary of the conversation so far (%d messages, %d tokens). The user last said: %q.", len(r.messages), r.inputTokens(), truncate(last, 200))
	if instructions != "" {
		s += " Summarised following the instructions: " + truncate(instructions, 200)
	}
	return s
}

// compactionBlock makes the compaction block that starts a compacted
// reply, and returns the binding prefix of what follows it: the head and
// the block, everything else being dropped.
func (r *request) compactionBlock(key []byte, e edit) (outBlock, []byte) {
	content := r.summary(e.instructions)
	encrypted := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("csim-compaction:%d", r.inputTokens())))
	sig := compactionSig(key, content, encrypted)
	ob := outBlock{Type: "compaction", Content: &content, EncryptedContent: &encrypted, Signature: &sig}
	b := newBinder(key)
	b.head(r.system, r.tools)
	b.block("assistant", &block{typ: "compaction", raw: []byte(content + "\x00" + encrypted + "\x00" + sig)})
	return ob, b.sum()
}

// headTokens is the prompt's tools and system in tokens.
func (r *request) headTokens() int {
	n := 0
	for _, t := range r.tools {
		n += t.tokens
	}
	for _, b := range r.system {
		n += b.tokens
	}
	return n
}

// compactedUsage makes the usage of a compacted reply, and the reply
// itself: the compaction block first. usage is what the compaction
// iteration read (the whole prompt, from the cache where it could); the
// message iteration reads the head and the summary. The top-level counts
// are the message iteration's, as documented; the sum of the iterations
// is what was billed (a compaction entry's tokens are not in the
// top-level counts). With pause_after_compaction the reply is the block
// alone, stop_reason "compaction", and the top-level counts are zero.
func (s *Server) compactedUsage(r *request, usage Usage, rep reply, block outBlock, e edit) (Usage, reply) {
	comp := iterationUsage{
		Type:                     "compaction",
		InputTokens:              usage.InputTokens,
		CacheCreationInputTokens: usage.CacheCreationInputTokens,
		CacheReadInputTokens:     usage.CacheReadInputTokens,
		CacheCreation:            usage.CacheCreation,
		OutputTokens:             block.tokens(),
	}
	if e.pause {
		// No message iteration ran, and a compaction's tokens are not in
		// the top-level counts.
		out := Usage{ServiceTier: usage.ServiceTier, Iterations: []iterationUsage{comp}}
		return out, reply{content: []outBlock{block}, stopReason: "compaction", outputTokens: 0}
	}
	msg := iterationUsage{Type: "message", InputTokens: r.headTokens() + block.tokens(), OutputTokens: rep.outputTokens}
	out := Usage{
		InputTokens:  msg.InputTokens,
		OutputTokens: msg.OutputTokens,
		ServiceTier:  usage.ServiceTier,
		Iterations:   []iterationUsage{comp, msg},
	}
	rep.content = append([]outBlock{block}, rep.content...)
	return out, rep
}

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/lambdagent/lambdagent/internal/session"
)

// Append-only conversations (see #14). On the models with preserved
// thinking, a thinking block sent back is checked against its prefix: the
// request's system prompt, its tools and every message before it. A
// session whose system prompt or tool list changed between two turns (a
// deploy, an MCP server that came up late or changed its tools) would get
// a 400 on every later turn. So a session pins the system prompt and tools
// it started with (session.Commit.Pinned, stored once) and sends exactly
// those bytes for its whole life; a change reaches it as a role "system"
// message appended before the user's message, and a call to a tool that is
// gone gets an is_error result. New sessions pin what is current.

// A pin is the stored form of what a session pinned.
type pin struct {
	System string          `json:"system,omitempty"`
	Tools  json.RawMessage `json:"tools,omitempty"`
	// History is the session's history strategy (see strategy.go);
	// absent in pins made before strategies, which follow the
	// deployment's.
	History History `json:"history,omitempty"`
}

// A conv is what a session's requests send before the messages.
type conv struct {
	system string
	tools  json.RawMessage // the tools array, nil for none
	// store is the pin to commit: set while the session has none.
	store []byte
	// notice is the system message announcing what changed since the
	// session pinned its prefix; empty when nothing did.
	notice string
	// live names the tools that can be called now, when they differ from
	// the pinned ones; nil means every pinned tool can.
	live map[string]bool
	// history is the session's history strategy; "" until historyFor.
	history History
}

// current is the deployment's current system prompt and tools, pinned
// form, kept while the tool definitions stay the same bytes.
type current struct {
	defs json.RawMessage
	pin  []byte
	conv conv
}

// currentPin returns the current prefix: cfg.System and the tools'
// definitions now, as a new session pins them.
func (a *Agent) currentPin() *current {
	var defs json.RawMessage
	if a.tools != nil {
		defs = a.tools.Definitions()
	}
	if c := a.cur.Load(); c != nil && bytes.Equal(c.defs, defs) {
		return c
	}
	p := pin{System: a.cfg.System, History: a.cfg.History}
	if len(bytes.TrimSpace(defs)) > 0 && !bytes.Equal(bytes.TrimSpace(defs), []byte("null")) {
		p.Tools = defs
	}
	b, err := json.Marshal(p)
	if err != nil {
		// Definitions returned invalid JSON: send the tools as they are,
		// pin nothing, and let the API say what is wrong with them.
		c := &current{defs: defs, conv: conv{system: a.cfg.System, tools: p.Tools}}
		return c
	}
	c := &current{defs: defs, pin: b}
	c.conv, _ = decodePin(b) // b was just encoded
	a.cur.Store(c)
	return c
}

func decodePin(b []byte) (conv, error) {
	var p pin
	if err := json.Unmarshal(b, &p); err != nil {
		return conv{}, err
	}
	return conv{system: p.System, tools: p.Tools, history: p.History}, nil
}

// convFor returns what the session's requests send: its pinned prefix,
// or the current one for a session that has none yet (which it then
// pins), with a notice of what changed since it pinned.
func (a *Agent) convFor(st *session.State) (conv, error) {
	cur := a.currentPin()
	if len(st.Pinned) == 0 {
		c := cur.conv
		c.store = cur.pin
		return c, nil
	}
	if bytes.Equal(st.Pinned, cur.pin) {
		return cur.conv, nil
	}
	c, err := decodePin(st.Pinned)
	if err != nil {
		return conv{}, fmt.Errorf("%w: pinned system prompt and tools: %v", ErrBrokenHistory, err)
	}
	c.notice = changeNotice(c, cur.conv)
	pinnedNames, liveNames := toolNames(c.tools), toolNames(cur.conv.tools)
	if !slices.Equal(pinnedNames, liveNames) {
		c.live = make(map[string]bool, len(liveNames))
		for _, n := range liveNames {
			c.live[n] = true
		}
	}
	return c, nil
}

// changeNotice says what changed from the pinned prefix to the current
// one, or "" if nothing the model should hear of.
func changeNotice(pinned, now conv) string {
	var parts []string
	if pinned.system != now.system {
		if now.system == "" {
			parts = append(parts, "The system prompt was removed.")
		} else {
			parts = append(parts, "The system prompt changed to: "+now.system)
		}
	}
	was, is := toolNames(pinned.tools), toolNames(now.tools)
	var added, removed []string
	for _, n := range is {
		if !slices.Contains(was, n) {
			added = append(added, n)
		}
	}
	for _, n := range was {
		if !slices.Contains(is, n) {
			removed = append(removed, n)
		}
	}
	if len(added) > 0 {
		parts = append(parts, "Tools added since this conversation started (they can be used in new conversations, not in this one): "+strings.Join(added, ", ")+".")
	}
	if len(removed) > 0 {
		parts = append(parts, "Tools removed: "+strings.Join(removed, ", ")+"; the removed tools can no longer be called.")
	}
	return strings.Join(parts, "\n")
}

// toolNames returns the names in a tools array, sorted.
func toolNames(tools json.RawMessage) []string {
	if len(tools) == 0 {
		return nil
	}
	var defs []struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(tools, &defs) != nil {
		return nil
	}
	names := make([]string, 0, len(defs))
	for _, d := range defs {
		names = append(names, d.Name)
	}
	slices.Sort(names)
	return names
}

var systemPrefix = []byte(`{"role":"system"`)

// systemMessage renders a role "system" message, as the API takes them
// in messages.
func systemMessage(text string) json.RawMessage {
	b, _ := json.Marshal(message{Role: "system", Content: text}) // strings only
	return b
}

// announced reports whether the last system message in history is msg:
// a notice is appended once, not every turn the difference lasts.
func announced(history []json.RawMessage, msg json.RawMessage) bool {
	for i := len(history) - 1; i >= 0; i-- {
		if bytes.HasPrefix(history[i], systemPrefix) {
			return bytes.Equal(history[i], msg)
		}
	}
	return false
}

// noLongerAvailable is the result of a call to a pinned tool the
// deployment no longer has.
const noLongerAvailable = "tool no longer available"

// answerCalls answers calls: with an is_error result for a call to a
// tool that is gone (c.live), the others through runTools, in order.
func (a *Agent) answerCalls(ctx context.Context, t *turn, c conv, calls []ToolCall, saved map[string]json.RawMessage) []json.RawMessage {
	if c.live == nil {
		return a.runTools(ctx, t, calls, saved)
	}
	var run []ToolCall
	for _, call := range calls {
		if c.live[call.Name] {
			run = append(run, call)
		}
	}
	if len(run) == len(calls) {
		return a.runTools(ctx, t, calls, saved)
	}
	var ran []json.RawMessage
	if len(run) > 0 {
		ran = a.runTools(ctx, t, run, saved)
	}
	out := make([]json.RawMessage, len(calls))
	for i, call := range calls {
		if c.live[call.Name] {
			out[i], ran = ran[0], ran[1:]
		} else {
			out[i] = toolError(call.ID, noLongerAvailable)
		}
	}
	return out
}

// pinFor returns the pin a turn's final commit carries: the current one
// while the session has none (the store keeps the first it gets).
func (a *Agent) pinFor(st *session.State, req Request) []byte {
	if len(st.Pinned) > 0 {
		return nil
	}
	return pinHistory(a.currentPin().pin, History(req.History))
}

package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
)

var (
	userPrefix      = []byte(`{"role":"user"`)
	assistantPrefix = []byte(`{"role":"assistant"`)
)

// role returns a stored message's role. Messages this package wrote start
// with the role, so the common case is a prefix compare, not a decode.
func role(m json.RawMessage) (string, error) {
	switch {
	case bytes.HasPrefix(m, userPrefix):
		return "user", nil
	case bytes.HasPrefix(m, assistantPrefix):
		return "assistant", nil
	case bytes.HasPrefix(m, systemPrefix):
		return "system", nil
	}
	var v struct {
		Role string `json:"role"`
	}
	if err := json.Unmarshal(m, &v); err != nil {
		return "", fmt.Errorf("decode message: %w", err)
	}
	return v.Role, nil
}

// checkHistory makes sure a stored transcript can be sent to Claude: roles
// alternate starting with the user, and it ends with an assistant message.
// System messages (notices of a changed prompt or tool list, see convFor)
// sit between turns and are not part of the alternation.
// A trailing assistant tool_use without its tool_result (a turn that died
// after its checkpoint, an older version or a hand edit) is returned in
// open: the next user message must answer those calls first (see
// Agent.loop). Anything else is ErrBrokenHistory with the position of
// the fault: it is never sent as is.
func checkHistory(msgs []json.RawMessage) (history []json.RawMessage, open []ToolCall, err error) {
	want := "user"
	for i, m := range msgs {
		r, err := role(m)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: message %d: %v", ErrBrokenHistory, i, err)
		}
		if r == "system" && i > 0 {
			continue
		}
		if r != want {
			return nil, nil, fmt.Errorf("%w: message %d has role %q, want %q", ErrBrokenHistory, i, r, want)
		}
		if want == "user" {
			want = "assistant"
		} else {
			want = "user"
		}
	}
	if len(msgs) == 0 {
		return msgs, nil, nil
	}
	if want == "assistant" {
		return nil, nil, fmt.Errorf("%w: last message %d is a user message with no answer", ErrBrokenHistory, len(msgs)-1)
	}
	last := msgs[len(msgs)-1]
	for i := len(msgs) - 1; i > 0 && bytes.HasPrefix(last, systemPrefix); i-- {
		last = msgs[i-1]
	}
	if !bytes.Contains(last, []byte(`"tool_use"`)) {
		return msgs, nil, nil
	}
	calls, _, err := parseContent(contentOf(last))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: last message: %v", ErrBrokenHistory, err)
	}
	return msgs, calls, nil
}

// interrupted is the result of a call whose turn died before the call
// returned (or before its result was saved).
const interrupted = "This tool call was interrupted before it returned a result; it may or may not have run."

// closeCalls answers the calls of a turn that died: with the result saved
// for a call when there is one (the tool ran), else with an is_error
// result saying it was interrupted. Nothing is run again.
func closeCalls(open []ToolCall, saved map[string]json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(open))
	for i, c := range open {
		if r, ok := savedResult(saved, c.ID); ok {
			out[i] = r
		} else {
			out[i] = toolError(c.ID, interrupted)
		}
	}
	return out
}

// savedResult returns the saved result of a call if there is a usable one:
// a JSON object, as Tools.Run returns them.
func savedResult(saved map[string]json.RawMessage, id string) (json.RawMessage, bool) {
	r, ok := saved[id]
	if !ok || len(r) == 0 || r[0] != '{' || !json.Valid(r) {
		return nil, false
	}
	return r, true
}

func contentOf(m json.RawMessage) json.RawMessage {
	var v struct {
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(m, &v)
	return v.Content
}

// toolError renders an is_error tool_result block.
func toolError(id, msg string) json.RawMessage {
	b, _ := json.Marshal(struct {
		Type      string      `json:"type"`
		ToolUseID string      `json:"tool_use_id"`
		Content   []textBlock `json:"content"`
		IsError   bool        `json:"is_error"`
	}{"tool_result", id, []textBlock{{"text", msg}}, true})
	return b
}

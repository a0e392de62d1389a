package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/claude"
)

// Stop reasons (see #14 and the docs' "Handling stop reasons"). The loop
// handles each as the docs say:
//
//   - refusal: the exchange is not stored, since a conversation that
//     keeps the refused message keeps being refused; the answer (200)
//     says it was refused and carries stop_details. Messages a tool loop
//     already checkpointed stay, closed by refusedText.
//   - pause_turn: the paused content is sent back as the last message and
//     the model continues; the pieces are stored as one assistant
//     message. Each continuation is a model call under MaxModelCalls.
//   - max_tokens with a tool_use cut short as the last block: the call is
//     made once more with twice the max_tokens (up to maxTokensCap); cut
//     again, the dangling tool_use is dropped from what is stored (it
//     never ran, and must not be called "may or may not have run") and
//     the answer says the reply was cut.
//   - end_turn with empty content: the API rejects an empty assistant
//     message in the history, and this package keeps user and assistant
//     alternating, so emptyText is stored in its place; the answer's
//     response is empty.
//   - model_context_window_exceeded, and the 400 "prompt is too long":
//     the call is made once more with half the turns (see strategy.go);
//     too long again, a 413 context_window_exceeded error naming the
//     session's size, with nothing of the turn stored.
const (
	refusedText = "(refused)"
	emptyText   = "(no answer)"
	// refusedAnswer is the answer's response to a refusal.
	refusedAnswer = "Claude declined to answer this message. It was not added to the conversation; rephrase it or start a new session."
	// cutAnswer follows the text of a reply cut inside a tool call.
	cutAnswer = "(The reply was cut off by the max_tokens limit while writing a tool call; the call was not made.)"
	// maxTokensCap bounds the larger max_tokens of a retried cut reply:
	// the smallest max output of the current models.
	maxTokensCap = 64000
)

type contentBlock struct {
	Type string `json:"type"`
}

func blockTypes(content json.RawMessage) []string {
	var blocks []contentBlock
	if json.Unmarshal(content, &blocks) != nil {
		return nil
	}
	types := make([]string, len(blocks))
	for i, b := range blocks {
		types[i] = b.Type
	}
	return types
}

// cutInToolUse reports whether a max_tokens reply ends inside a tool_use.
func cutInToolUse(r *claude.Reply) bool {
	if r.StopReason != "max_tokens" {
		return false
	}
	ts := blockTypes(r.Content)
	return len(ts) > 0 && ts[len(ts)-1] == "tool_use"
}

// dropToolUses removes the tool_use blocks of content (a cut reply's
// dangling call), adding a text block if nothing but thinking is left, so
// that the stored message is one the API takes.
func dropToolUses(content json.RawMessage) json.RawMessage {
	var blocks []json.RawMessage
	if json.Unmarshal(content, &blocks) != nil {
		return content
	}
	kept := blocks[:0]
	answered := false
	for _, b := range blocks {
		var cb contentBlock
		_ = json.Unmarshal(b, &cb)
		switch cb.Type {
		case "tool_use":
			continue
		case "text":
			answered = true
		}
		kept = append(kept, b)
	}
	if !answered {
		kept = append(kept, mustJSON(textBlock{Type: "text", Text: "(cut off)"}))
	}
	out, _ := json.Marshal(kept)
	return out
}

// emptyContent reports whether a reply's content is an empty array.
func emptyContent(content json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(content), []byte("[]"))
}

// textContent is a content array of one text block.
func textContent(text string) json.RawMessage {
	return mustJSON([]textBlock{{Type: "text", Text: text}})
}

// concatContent joins two content arrays: a paused reply and its
// continuation, stored as one assistant message.
func concatContent(a, b json.RawMessage) json.RawMessage {
	a, b = bytes.TrimSpace(a), bytes.TrimSpace(b)
	switch {
	case emptyContent(a):
		return b
	case emptyContent(b):
		return a
	}
	out := make([]byte, 0, len(a)+len(b))
	out = append(out, a[:len(a)-1]...)
	out = append(out, ',')
	return append(out, b[1:]...)
}

// contextWindowError makes the failure of a request that no longer fits
// the context window a 413 naming the session's size. It returns nil for
// any other error.
func contextWindowError(err error, stopReason string, t *turn) error {
	if stopReason == "" {
		se, ok := errors.AsType[*claude.StatusError](err)
		if !ok || se.Code != 400 || !strings.Contains(se.Message, "prompt is too long") {
			return nil
		}
	}
	n, size := 0, 0
	for _, list := range [][]json.RawMessage{t.history, t.msgs} {
		for _, m := range list {
			n++
			size += len(m)
		}
	}
	if err == nil {
		err = errors.New("agent: reply stopped with " + stopReason)
	}
	return &apierr.Error{
		Kind: apierr.ContextWindowExceeded,
		Message: fmt.Sprintf("session %s no longer fits the model's context window (%d messages, %d bytes with this turn's); nothing of this turn was saved: start a new session",
			t.id, n, size),
		Err: err,
	}
}

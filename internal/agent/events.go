package agent

import (
	"context"
	"encoding/json"
	"strings"
	"sync"

	"github.com/lambdagent/lambdagent/internal/claude"
)

// A Sink sees a turn as it runs, so that a transport can stream it (see
// #15): the model's text and thinking as they arrive, and each tool call
// as it starts and ends. The end of the turn is Run's return (its Answer
// or error); the Sink is not told.
//
// The turn calls a Sink from several goroutines (tool calls run in
// parallel), so an implementation is safe for concurrent use; it should
// return quickly, since the turn waits for it.
type Sink interface {
	// TurnStart says the turn holds its session and is turn number turn.
	// A replayed answer (an idempotent repeat) starts no turn.
	TurnStart(sessionID string, turn int64)
	// TextDelta is the next piece of the answer's text. The pieces sent
	// after the last ToolResult (all of them, for a turn without tools)
	// join to Result.Response byte for byte; those before a ToolUse are
	// what Claude wrote before calling tools, which the answer does not
	// keep.
	TextDelta(text string)
	// Thinking is the next piece of Claude's thinking (empty unless the
	// request asks for it to be shown).
	Thinking(text string)
	// ToolUse says a tool call starts.
	ToolUse(call ToolCall)
	// ToolResult says the call id ended, as an error or not.
	ToolResult(id string, isError bool)
}

// turnEvents is a turn's Sink with the state that keeps the text deltas
// equal to the answer: the separator between text blocks and the text
// sent since the last tool call. Its methods do nothing on a nil
// receiver, the turn of a request without a Sink.
type turnEvents struct {
	sink Sink

	mu sync.Mutex
	// guarded by mu:
	text     strings.Builder // the text sent since the last tool call
	inText   bool            // a text block of the current content was sent
	call     int             // the model call of the last text delta
	index    int             // its content block
	lastCall int             // model calls made so far
}

type eventsKey struct{}

func withEvents(ctx context.Context, s Sink) context.Context {
	if s == nil {
		return ctx
	}
	return context.WithValue(ctx, eventsKey{}, &turnEvents{sink: s})
}

func eventsFrom(ctx context.Context) *turnEvents {
	e, _ := ctx.Value(eventsKey{}).(*turnEvents)
	return e
}

func (e *turnEvents) start(sessionID string, turn int64) {
	if e != nil {
		e.sink.TurnStart(sessionID, turn)
	}
}

// onDelta returns the delta callback of one model call (nil: a plain
// call). Text blocks of one reply, or of a paused reply and its
// continuation, are joined with "\n", as the answer joins them.
func (e *turnEvents) onDelta() func(claude.Delta) {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	e.lastCall++
	call := e.lastCall
	e.mu.Unlock()
	return func(d claude.Delta) {
		if d.Type == "thinking" {
			e.sink.Thinking(d.Text)
			return
		}
		if d.Type != "text" || d.Text == "" {
			return
		}
		e.mu.Lock()
		sep := e.inText && (call != e.call || d.Index != e.index)
		e.inText, e.call, e.index = true, call, d.Index
		if sep {
			e.text.WriteByte('\n')
		}
		e.text.WriteString(d.Text)
		e.mu.Unlock()
		if sep {
			e.sink.TextDelta("\n")
		}
		e.sink.TextDelta(d.Text)
	}
}

func (e *turnEvents) toolUse(c ToolCall) {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.text.Reset()
	e.inText = false
	e.mu.Unlock()
	e.sink.ToolUse(c)
}

func (e *turnEvents) toolResult(id string, result json.RawMessage) {
	if e == nil {
		return
	}
	var r struct {
		IsError bool `json:"is_error"`
	}
	_ = json.Unmarshal(result, &r)
	e.sink.ToolResult(id, r.IsError)
}

// finish sends what the answer has beyond the text streamed: the note of
// a reply cut in a tool call, the answer to a refusal or an empty reply.
// If the streamed text is not a prefix of the answer (a reply retried
// after it streamed), nothing can mend it: the answer in turn_end wins.
func (e *turnEvents) finish(response string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	sent := e.text.String()
	e.mu.Unlock()
	if rest, ok := strings.CutPrefix(response, sent); ok && rest != "" {
		e.sink.TextDelta(rest)
	}
}

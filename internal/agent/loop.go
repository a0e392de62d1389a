package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/session"
)

// ToolCall is one tool_use block of an assistant reply.
type ToolCall struct {
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// Tools runs the tools Claude may call, one call at a time: the turn owns
// the fan-out. It runs the calls of one reply in parallel, at most
// Config.MaxParallelTools at once, keeps their results in call order and
// saves each result as soon as its call returns (see #8), so that a tool
// runtime needs no batching of its own. Implementations are safe for
// concurrent use.
type Tools interface {
	// Definitions returns the Messages API "tools" array as raw JSON, or
	// nil when there are no tools.
	Definitions() json.RawMessage
	// Call runs one tool call and returns its tool_result content block.
	// A failing tool yields an is_error block, never a Go error.
	// Cancelling ctx cancels the call.
	Call(ctx context.Context, call ToolCall) json.RawMessage
}

// A turn is the state of one turn's loop.
type turn struct {
	// id is the session's store id ([Request.StoreID]); token the lease.
	id, token string
	// mark is the pending mark of the turn's checkpoints: the request's
	// hash and where the turn starts in the history (see parseMark).
	mark    string
	history []json.RawMessage // the messages before the turn, from first on
	msgs    []json.RawMessage // the turn's messages
	// first is the absolute index of history[0], firstStarts the turn
	// starts before it (State.First and FirstStarts: Begin read the
	// history from the session's cut), and before the bytes of the
	// messages before it.
	first, firstStarts, before int64
	// pinned is the system prompt and tools to pin with the turn's
	// commits, while the session has none (see convFor).
	pinned  []byte
	saved   int   // msgs[:saved] are committed
	version int64 // the session's version after msgs[:saved]
	// Model calls and usage not committed yet.
	calls int
	usage claude.Usage
	// keep, once a request of the turn was too long, is how many turns
	// its later requests send (see strategy.go).
	keep int
	// time is where the turn's time went, for its Record.
	time timings
}

// counters returns the sums not committed yet and forgets them.
func (t *turn) counters() map[string]int64 {
	c := map[string]int64{
		"input_tokens":                t.usage.InputTokens,
		"output_tokens":               t.usage.OutputTokens,
		"cache_creation_input_tokens": t.usage.CacheCreationInputTokens,
		"cache_read_input_tokens":     t.usage.CacheReadInputTokens,
		"model_calls":                 int64(t.calls),
		// Counters are integers: cost is kept in micro-dollars.
		"cost_micro_usd": int64(math.Round(t.usage.CostUSD * 1e6)),
	}
	t.calls, t.usage = 0, claude.Usage{}
	return c
}

// loop makes model calls until Claude answers without asking for tools,
// running the tools in between. It returns the turn's messages not yet
// committed, the version to commit them at and the counters not yet
// committed.
//
// A tool call is not run twice for one request (see #8). Before running
// the tools of a reply the loop commits the turn so far as a checkpoint
// that marks the session pending with the request's hash, and it saves
// each result as its call returns ([session.ToolResultStore]). A retry of
// the request that finds its own mark resumes the turn: its user message
// is in the history already, the saved results are reused, only the calls
// without one are run, and the loop goes on from there. Another request
// that finds the mark closes the dead turn's calls with their saved
// results, or with is_error results for the calls that never returned,
// runs none of them, and then adds its own message. A turn without tools
// never checkpoints: Begin and Commit are all it costs.
//
// The answer of a resumed turn counts in ModelCalls the calls of every
// attempt (the limit is per turn), but in Usage only this attempt's: the
// usage of earlier calls went into the session's counters with the
// checkpoints, and that of a call whose commit never happened is lost.
//
// It fills out with where the turn's time went and where its messages
// start, for the turn's Record.
func (a *Agent) loop(ctx context.Context, req Request, st *session.State, token string, out *turnStats) (Result, []json.RawMessage, map[string]int64, int64, error) {
	res := Result{SessionID: req.SessionID}
	fail := func(err error) (Result, []json.RawMessage, map[string]int64, int64, error) {
		return res, nil, nil, 0, err
	}
	hash := requestHash(req)
	st, err := a.wholeIfResumed(ctx, req.StoreID(), st, hash)
	if err != nil {
		return fail(err)
	}
	history, open, err := checkHistory(st.Messages)
	if err != nil {
		return fail(fmt.Errorf("session %s: %w", req.SessionID, err))
	}
	c, err := a.convFor(st)
	if err != nil {
		return fail(fmt.Errorf("session %s: %w", req.SessionID, err))
	}
	if err := a.historyFor(req, st, &c); err != nil {
		return fail(err)
	}
	t := &turn{id: req.StoreID(), token: token, version: st.Version, pinned: c.store, first: st.First, firstStarts: st.FirstStarts}
	if st.First > 0 {
		t.before = st.HistoryBytes
		for _, m := range st.Messages {
			t.before -= int64(len(m))
		}
		t.before = max(t.before, 0)
	}
	var calls []ToolCall // the calls to answer before the next model call
	var saved map[string]json.RawMessage
	if start, ok := resumable(st, hash, open); ok {
		// This request's own turn, retried after it died: continue it.
		t.mark = st.Pending
		t.history = history[:start]
		t.msgs = slices.Clone(history[start:]) // appended to below
		t.saved = len(t.msgs)
		for _, m := range t.msgs {
			if r, _ := role(m); r == "assistant" {
				res.ModelCalls++
			}
		}
		calls, saved = open, st.ToolResults
	} else {
		// The new user message; a dangling tool_use left in the history
		// gets its tool_results first, in the same message, as the API
		// requires.
		user, err := userMessage(req.Message, closeCalls(open, st.ToolResults))
		if err != nil {
			return fail(err)
		}
		t.mark = newMark(hash, st.First+int64(len(history)))
		t.history = history
		t.msgs = []json.RawMessage{user}
		if c.notice != "" {
			// What changed since the session pinned its prefix, once: before
			// the user's message, or after it when that message answers
			// dangling calls (their results must follow the calls). A
			// notice before the session's cut is not in history: it is
			// announced once more, which is right, since no request sends
			// the old one any more.
			if n := systemMessage(c.notice); !announced(history, n) {
				if len(open) > 0 {
					t.msgs = append(t.msgs, n)
				} else {
					t.msgs = []json.RawMessage{n, user}
				}
			}
		}
	}
	var usage claude.Usage // of this attempt, for the answer
	for {
		if len(calls) > 0 {
			started := time.Now()
			results := a.answerCalls(ctx, t, c, calls, saved)
			t.time.tools += time.Since(started)
			m, err := toolResultMessage(results)
			if err != nil {
				return fail(err)
			}
			t.msgs = append(t.msgs, m)
			saved = nil
		}
		if err := a.checkSession(t); err != nil {
			return fail(err)
		}
		res.ModelCalls++
		last := res.ModelCalls >= a.cfg.MaxModelCalls
		noTools := last && len(c.tools) > 0
		reply, content, err := a.call(ctx, t, c, noTools, &res, &usage)
		if err != nil {
			return fail(err)
		}
		res.RequestID = reply.RequestID
		res.StopReason = reply.StopReason
		if reply.StopReason == "refusal" {
			// Not stored: a conversation that keeps the refused message
			// keeps being refused. What a tool loop checkpointed stays,
			// closed by a placeholder.
			res.Response, res.StopDetails = refusedAnswer, reply.StopDetails
			if t.saved == 0 {
				t.msgs = nil
			} else {
				t.msgs = append(t.msgs, assistantMessage(textContent(refusedText)))
			}
			break
		}
		if emptyContent(content) {
			t.msgs = append(t.msgs, assistantMessage(textContent(emptyText)))
			res.Response = ""
			break
		}
		cut := cutInToolUse(reply)
		if cut {
			content = dropToolUses(content)
		}
		t.msgs = append(t.msgs, assistantMessage(content))
		calls, res.Response, err = parseContent(content)
		if err != nil {
			return fail(fmt.Errorf("reply %s: %w", reply.ID, err))
		}
		if cut {
			res.Response = strings.TrimSpace(res.Response + "\n\n" + cutAnswer)
		}
		if noTools {
			// Tools were off for this call: the limit, not Claude, ended
			// the tool loop. Say so in the answer.
			res.Limit = "max_model_calls"
		}
		if reply.StopReason != "tool_use" || len(calls) == 0 {
			break
		}
		if a.tools == nil {
			return fail(fmt.Errorf("reply %s asks for tool %s but no tools are configured", reply.ID, calls[0].Name))
		}
		if last {
			// Unreachable with tools disabled on the last call, unless the
			// model ignores tool_choice none: stop rather than loop.
			res.StopReason = "max_model_calls"
			return fail(fmt.Errorf("reply %s asked for tools on the last allowed model call", reply.ID))
		}
		if err := a.checkpoint(ctx, t); err != nil {
			return fail(err)
		}
	}
	res.Usage = usage
	out.time.model, out.time.tools, out.time.store = t.time.model, t.time.tools, out.time.store+t.time.store
	out.from = t.first + int64(len(t.history))
	out.cut = cutFor(c, t, a.cfg.HistoryWindowTurns)
	return res, storable(t, t.msgs[t.saved:]), t.counters(), t.version, nil
}

// call makes one model call of the turn and returns its reply and the
// content to keep: a paused reply (pause_turn) is continued, within
// MaxModelCalls, and its pieces joined; a reply cut inside a tool call is
// made once more with a larger max_tokens. Every call's usage counts.
func (a *Agent) call(ctx context.Context, t *turn, c conv, noTools bool, res *Result, usage *claude.Usage) (*claude.Reply, json.RawMessage, error) {
	maxTokens := a.cfg.MaxTokens
	retried := false
	var paused json.RawMessage // the content so far of a paused reply
	for {
		msgs := t.msgs
		if paused != nil {
			msgs = append(slices.Clip(t.msgs), assistantMessage(paused))
		}
		body, betas := a.historyRequest(c, t, maxTokens, msgs, noTools, t.keep)
		onDelta := eventsFrom(ctx).onDelta()
		if onDelta != nil {
			// Asked for here, so the client sends this buffer rather
			// than a copy of it with the field added.
			body = append(body[:len(body)-1], `,"stream":true}`...)
		}
		started := time.Now()
		reply, err := a.model.Create(ctx, claude.Request{
			Model:     a.cfg.Model,
			MaxTokens: maxTokens,
			Body:      body,
			Betas:     betas,
			OnDelta:   onDelta,
			Streaming: onDelta != nil,
			Release:   releaser(body),
		})
		t.time.model += time.Since(started)
		if err != nil {
			if a.shorten(err, "", c, t, msgs) {
				continue
			}
			if cw := contextWindowError(err, "", t); cw != nil {
				return nil, nil, cw
			}
			return nil, nil, err
		}
		*usage = usage.Add(reply.Usage)
		t.usage = t.usage.Add(reply.Usage)
		t.calls++
		if reply.StopReason == "model_context_window_exceeded" {
			if a.shorten(nil, reply.StopReason, c, t, msgs) {
				continue
			}
			return nil, nil, contextWindowError(nil, reply.StopReason, t)
		}
		if reply.StopReason == "refusal" {
			return reply, reply.Content, nil
		}
		if !retried && cutInToolUse(reply) && min(2*maxTokens, maxTokensCap) > maxTokens {
			// Cut inside a tool call: try once with more room. The cut
			// reply is dropped, its usage kept.
			retried, maxTokens = true, min(2*maxTokens, maxTokensCap)
			continue
		}
		content := reply.Content
		if paused != nil {
			content = concatContent(paused, content)
		}
		if reply.StopReason == "pause_turn" && res.ModelCalls < a.cfg.MaxModelCalls {
			res.ModelCalls++
			paused = content
			continue
		}
		return reply, content, nil
	}
}

// resumable reports whether st holds this request's own unfinished turn,
// and where in st.Messages that turn starts (the mark's start is
// absolute).
func resumable(st *session.State, hash string, open []ToolCall) (int, bool) {
	if st.Pending == "" || len(open) == 0 {
		return 0, false
	}
	h, start, ok := parseMark(st.Pending)
	start -= st.First
	if !ok || h != hash || start < 0 || start >= int64(len(st.Messages)) {
		return 0, false
	}
	return int(start), true
}

// wholeIfResumed returns st, or, when st holds this request's own
// unfinished turn starting before the history Begin read (State.First),
// st with the whole history, read with Load: the turn resumes from its
// start. Cuts are stored by final commits only, so a turn open after one
// starts after it; this is for a cut stored some other way.
func (a *Agent) wholeIfResumed(ctx context.Context, id string, st *session.State, hash string) (*session.State, error) {
	h, start, ok := parseMark(st.Pending)
	if st.First == 0 || !ok || h != hash || start >= st.First {
		return st, nil
	}
	whole, err := a.store.Load(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("read the whole history of session %s to resume its turn: %w", id, err)
	}
	if whole.Version != st.Version {
		return nil, fmt.Errorf("read the whole history of session %s to resume its turn: %w", id, session.ErrConflict)
	}
	out := *st
	out.Messages, out.First, out.FirstStarts = whole.Messages, 0, 0
	return &out, nil
}

// message returns message i of the turn's history followed by its
// messages.
func (t *turn) message(i int) json.RawMessage {
	if i < len(t.history) {
		return t.history[i]
	}
	return t.msgs[i-len(t.history)]
}

// newMark renders a turn's pending mark: the request hash (hex, no '@')
// and the turn's first message index.
func newMark(hash string, start int64) string {
	return hash + "@" + strconv.FormatInt(start, 10)
}

func parseMark(mark string) (hash string, start int64, ok bool) {
	i := strings.LastIndexByte(mark, '@')
	if i < 0 {
		return "", 0, false
	}
	start, err := strconv.ParseInt(mark[i+1:], 10, 64)
	return mark[:i], start, err == nil
}

// checkpoint commits the turn so far, keeping the lease and marking the
// session pending, before the tools of the last reply run: from here a
// crash leaves the turn for a retry to resume.
func (a *Agent) checkpoint(ctx context.Context, t *turn) error {
	msgs := storable(t, t.msgs[t.saved:])
	started := time.Now()
	defer func() { t.time.store += time.Since(started) }()
	v, err := a.store.Commit(ctx, session.Commit{
		ID:         t.id,
		LeaseToken: t.token,
		Version:    t.version,
		Messages:   msgs,
		Counters:   t.counters(),
		Pending:    t.mark,
		Pinned:     t.pinned,
	})
	if err != nil && a.landed(ctx, t.id, t.version, msgs) {
		v, err = t.version+int64(len(msgs)), nil
	}
	if err != nil {
		return fmt.Errorf("checkpoint session %s before running tools: %w", t.id, err)
	}
	t.version, t.saved = v, len(t.msgs)
	return nil
}

// runTools answers calls in order: with the result saved by an earlier
// attempt of the turn when there is one, else by running the call and
// saving its result as soon as it returns, while the slower calls of the
// reply still run. The calls run in parallel, at most
// Config.MaxParallelTools at once.
func (a *Agent) runTools(ctx context.Context, t *turn, calls []ToolCall, saved map[string]json.RawMessage) []json.RawMessage {
	out := make([]json.RawMessage, len(calls))
	var g errgroup.Group
	g.SetLimit(a.cfg.MaxParallelTools)
	ev := eventsFrom(ctx)
	for i, c := range calls {
		ev.toolUse(c)
		if r, ok := savedResult(saved, c.ID); ok {
			out[i] = r
			ev.toolResult(c.ID, r)
			continue
		}
		g.Go(func() error {
			defer func() { ev.toolResult(c.ID, out[i]) }()
			r := a.tools.Call(ctx, c)
			if len(r) == 0 {
				// Not saved: the call may not have run, and a retry may
				// run it.
				out[i] = toolError(c.ID, "The tool runner returned no result for this call.")
				return nil
			}
			r = capToolResult(c.ID, r, a.cfg.MaxToolResultBytes)
			out[i] = r
			// A failed save only loses the protection against running
			// the call again after a crash; the result is in out either
			// way, and a lost lease fails the turn through keepLease.
			_ = a.store.SaveToolResult(ctx, t.id, t.token, c.ID, r)
			return nil
		})
	}
	_ = g.Wait() // the calls return no error: a failing tool is an is_error block
	return out
}

// buildPrefix renders the constant head of every request body, and sets
// a.cc.
//
// Prompt caching (see #6): the request asks for automatic caching with a
// top-level cache_control, so the API puts the breakpoint on the last
// cacheable block and each turn reads the whole conversation so far from
// the cache and writes only what is new. The system prompt carries a
// breakpoint of its own so that a new session starts from a cached prefix
// (all sessions pinned to one prompt share it). The stored history never
// carries cache_control: breakpoints are a property of one request, and
// the API allows four.
func (a *Agent) buildPrefix() []byte {
	switch a.cfg.PromptCache {
	case "5m":
		a.cc = []byte(`{"type":"ephemeral"}`)
	case "1h":
		a.cc = []byte(`{"type":"ephemeral","ttl":"1h"}`)
	}
	var b bytes.Buffer
	b.WriteString(`{"model":`)
	b.Write(mustJSON(a.cfg.Model))
	if a.cc != nil {
		b.WriteString(`,"cache_control":`)
		b.Write(a.cc)
	}
	if a.cfg.DropBoundThinking {
		b.WriteString(`,"thinking":{"type":"adaptive","block_binding":{"prefix_mismatch_behavior":"drop_block"}}`)
	}
	return b.Bytes()
}

// requestBody concatenates the request: constant head, max_tokens, the
// session's pinned system prompt and tools, then the stored history and
// this turn's messages as they are.
func (a *Agent) requestBody(c conv, maxTokens int, history, turn []json.RawMessage, noTools bool) []byte {
	var system []byte
	if c.system != "" {
		system = mustJSON(c.system)
	}
	// The stored history as the store read it, one buffer, is one copy
	// whatever its depth (see #14); else it is joined here.
	joined, whole := session.Joined(history)
	n := len(a.prefix) + len(system) + 2*len(a.cc) + len(c.tools) + len(joined) + 128
	if !whole {
		for _, m := range history {
			n += len(m) + 1
		}
	}
	for _, m := range turn {
		n += len(m) + 1
	}
	b := getBody(n)
	b = append(b, a.prefix...)
	b = append(b, `,"max_tokens":`...)
	b = strconv.AppendInt(b, int64(maxTokens), 10)
	if system != nil {
		b = append(b, `,"system":[{"type":"text","text":`...)
		b = append(b, system...)
		if a.cc != nil {
			b = append(b, `,"cache_control":`...)
			b = append(b, a.cc...)
		}
		b = append(b, `}]`...)
	}
	if len(c.tools) > 0 {
		b = append(b, `,"tools":`...)
		b = append(b, c.tools...)
		if noTools {
			b = append(b, `,"tool_choice":{"type":"none"}`...)
		}
	}
	b = append(b, `,"messages":[`...)
	first := true
	if whole && len(joined) > 0 {
		b = append(b, joined...)
		first = false
		history = nil
	}
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

// bodies keeps request buffers for reuse: a deep session's request is
// as large as its history (660 KB at 1000 turns), and allocating one a
// turn kept the garbage collector busy for half of a turn's CPU (#14).
// A buffer comes back through claude.Request.Release, once the HTTP
// transport is done with it.
var bodies sync.Pool

// maxPooledBody bounds the buffers kept: a rare huge request is not held
// on to.
const maxPooledBody = 8 << 20

// getBody returns an empty buffer with room for n bytes.
func getBody(n int) []byte {
	if p, ok := bodies.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

// releaser returns the func that gives body's buffer back to bodies,
// once (a Model that calls it twice does not put it back twice).
func releaser(body []byte) func() {
	if cap(body) > maxPooledBody {
		return nil
	}
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			b := body[:0]
			bodies.Put(&b)
		}
	}
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

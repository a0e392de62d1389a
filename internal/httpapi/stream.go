package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// LastEventIDParam is the query parameter a client that cannot set the
// Last-Event-ID header (a browser's first EventSource) resumes with.
const LastEventIDParam = "last_event_id"

// frameWriteTimeout bounds the writing of each event to a client: a
// stream outlives the server's WriteTimeout, a stalled client does not.
const frameWriteTimeout = 30 * time.Second

// wantsStream reports whether a turn request asks for server-sent events:
// Accept: text/event-stream, or "stream": true in the body.
func wantsStream(r *http.Request, bodyStream bool) bool {
	if bodyStream {
		return true
	}
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == "text/event-stream" {
				return true
			}
		}
	}
	return false
}

// streamID names the stream of a turn. A request with an Idempotency-Key
// gets an id derived from its tenant, session and key, so that its retry
// after an interruption continues the same stream; one without gets a
// random id. The id passes session.ValidID.
func streamID(tenant, sessionID, key string) string {
	if key == "" {
		return "st_" + strings.ToLower(rand.Text())
	}
	h := sha256.New()
	for _, s := range []string{tenant, sessionID, key} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "st_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// queue hands the turn's events to the HTTP response without ever making
// the turn wait for the client: it grows instead, for one turn at most.
type queue struct {
	mu sync.Mutex
	// guarded by mu:
	evs     []stream.Event
	changed chan struct{} // closed and replaced on each push
}

func newQueue() *queue { return &queue{changed: make(chan struct{})} }

func (q *queue) push(ev stream.Event) {
	q.mu.Lock()
	q.evs = append(q.evs, ev)
	close(q.changed)
	q.changed = make(chan struct{})
	q.mu.Unlock()
}

// take returns the events queued since the last take, or, when there are
// none, a channel closed by the next push.
func (q *queue) take() ([]stream.Event, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	evs := q.evs
	q.evs = nil
	return evs, q.changed
}

// sink is the turn's [agent.Sink]: each event is numbered and queued for
// the log by the stream's Writer, and handed to the local client.
type sink struct {
	started     atomic.Bool // TurnStart was called
	w           *stream.Writer
	q           *queue
	streamID    string
	showThought bool
}

func (s *sink) emit(name string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return // only strings and plain structs reach here
	}
	s.emitRaw(name, b)
}

func (s *sink) emitRaw(name string, data []byte) { s.q.push(s.w.Emit(name, data)) }

// TurnStart is stored before the client sees it: from then on the
// stream id it carries can be resumed anywhere. A failed write is logged
// by the writer and retried with the next batch.

func (s *sink) TurnStart(sessionID string, turn int64) {
	s.started.Store(true)
	b, _ := json.Marshal(struct {
		SessionID string `json:"session_id"`
		Turn      int64  `json:"turn"`
		StreamID  string `json:"stream_id"`
	}{sessionID, turn, s.streamID})
	ev := s.w.Emit(stream.TurnStart, b)
	_ = s.w.Sync()
	s.q.push(ev)
}

type textData struct {
	Text string `json:"text"`
}

func (s *sink) TextDelta(text string) { s.emit(stream.TextDelta, textData{text}) }

func (s *sink) Thinking(text string) {
	if s.showThought && text != "" {
		s.emit(stream.Thinking, textData{text})
	}
}

func (s *sink) ToolUse(c agent.ToolCall) { s.emit(stream.ToolUse, c) }

func (s *sink) ToolResult(id string, isError bool) {
	s.emit(stream.ToolResult, struct {
		ID      string `json:"id"`
		IsError bool   `json:"is_error"`
	}{id, isError})
}

// streamTurn runs a turn as server-sent events (see #15). The turn runs
// on its own goroutine, detached from the request: a client that hangs up
// stops reading, not the turn, whose events go on to the log for a
// resume. An error before the turn starts (a bad request, a busy session)
// is a plain JSON error with its status; after, it is an "error" event.
func (h *handler) streamTurn(w http.ResponseWriter, r *http.Request, req agent.Request) {
	sid := streamID(req.Tenant, req.SessionID, req.IdempotencyKey)
	logID := session.Scope(req.Tenant, sid)
	if req.IdempotencyKey != "" {
		// A repeat while the first request's turn still runs (its client
		// hung up and sent it again): follow that turn's stream rather
		// than start a second writer on it.
		if _, live, err := h.streams.State(r.Context(), logID); err == nil && live {
			h.follow(w, r, logID, 0)
			return
		}
	}
	sw, err := stream.Open(r.Context(), h.streams, logID, stream.Config{Logger: h.log})
	if err != nil {
		h.writeError(w, r, errors.Join(session.ErrUnavailable, err))
		return
	}
	s := &sink{w: sw, q: newQueue(), streamID: sid, showThought: h.showThinking}
	req.Sink = s
	failed := make(chan error, 1) // the turn's error when it failed before turn_start
	closed := make(chan struct{}) // the last events are in the log
	// The request's values and deadline (a Lambda invocation's end),
	// not its cancellation: the turn outlives a client that hangs up.
	tctx, cancel := context.WithoutCancel(r.Context()), context.CancelFunc(func() {})
	if d, ok := r.Context().Deadline(); ok {
		tctx, cancel = context.WithDeadline(tctx, d)
	}
	h.detached.Add(1)
	go func() {
		defer h.detached.Done()
		defer cancel()
		defer close(closed)
		ans, err := h.turns.Run(tctx, req)
		switch {
		case err != nil && !s.started.Load():
			failed <- err
		case err != nil:
			e := apierr.From(err)
			h.log.LogAttrs(tctx, e.LogLevel(), "streamed turn failed", slog.String("path", r.URL.Path),
				slog.Int("status", e.Status), slog.String("type", string(e.Kind)), slog.Any("err", e.Err))
			s.emitRaw(stream.Error, trimNL(apierr.Body(e)))
		case ans.Replayed:
			// An idempotent repeat of a finished turn: its stored answer,
			// as a stream.
			s.TurnStart(req.SessionID, ans.Result.Turn)
			if ans.Result.Response != "" {
				s.TextDelta(ans.Result.Response)
			}
			s.emitRaw(stream.TurnEnd, ans.JSON)
		default:
			s.emitRaw(stream.TurnEnd, ans.JSON)
		}
		_ = sw.Close() // a failure is logged by the writer; the local client has every event
	}()

	var out *sse // nil until the first event: an early failure is a plain error
	for {
		evs, changed := s.q.take()
		if len(evs) == 0 {
			select {
			case <-changed:
				continue
			case err := <-failed:
				h.writeError(w, r, err)
				return
			case <-r.Context().Done():
				return // the turn goes on
			}
		}
		if out == nil {
			out = newSSE(w)
		}
		for _, ev := range evs {
			if err := out.write(ev); err != nil {
				return // the client left; the turn goes on
			}
			if stream.Terminal(ev.Name) {
				_ = out.flush()
				// Answer only once the log has the end too: on Lambda the
				// process may freeze when the handler returns, and a
				// reader elsewhere would take the unfinished stream for
				// an interrupted one.
				<-closed
				return
			}
		}
		if err := out.flush(); err != nil {
			return
		}
	}
}

// getStream serves GET /v1/streams/{stream_id}: the events of a stream
// after Last-Event-ID (header, or the last_event_id query parameter),
// then the live rest, from whichever process runs the turn. The stream is
// the caller's tenant's: another tenant's is not found.
func (h *handler) getStream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("stream_id")
	if err := session.ValidID(id); err != nil {
		h.writeError(w, r, badRequest("invalid stream id: "+strings.TrimPrefix(err.Error(), session.ErrInvalidID.Error()+": ")))
		return
	}
	after, err := lastEventID(r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	h.follow(w, r, session.Scope(tenantOf(r), id), after)
}

// follow sends the events of stream logID after after, then the live
// rest, until the turn ends; 404 when there is no such stream.
func (h *handler) follow(w http.ResponseWriter, r *http.Request, logID string, after int64) {
	_, id := session.Unscope(logID)
	if _, _, err := h.streams.State(r.Context(), logID); err != nil {
		if errors.Is(err, stream.ErrNotFound) {
			err = &apierr.Error{Kind: apierr.NotFound, Message: "no stream " + id + " (never started, expired, or not yours)"}
		} else {
			err = errors.Join(session.ErrUnavailable, err)
		}
		h.writeError(w, r, err)
		return
	}
	sse := newSSE(w)
	if err := sse.flush(); err != nil {
		return
	}
	last := after
	err := stream.Follow(r.Context(), h.streams, logID, after, 0, func(ev stream.Event) error {
		if err := sse.write(ev); err != nil {
			return err
		}
		last = ev.Seq
		return sse.flush()
	})
	if err != nil && r.Context().Err() == nil {
		// Headers are out: say it as an event, numbered after what was sent.
		e := apierr.From(errors.Join(session.ErrUnavailable, err))
		h.log.LogAttrs(r.Context(), e.LogLevel(), "stream follow failed", slog.String("path", r.URL.Path), slog.Any("err", e.Err))
		_ = sse.write(stream.Event{Seq: last, Name: stream.Error, Data: trimNL(apierr.Body(e))})
		_ = sse.flush()
	}
}

// lastEventID reads where a resume starts: 0 (the beginning) when absent.
func lastEventID(r *http.Request) (int64, error) {
	v := r.Header.Get("Last-Event-ID")
	if v == "" {
		v = r.URL.Query().Get(LastEventIDParam)
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("Last-Event-ID must be the id of an event of this stream (a non-negative integer)")
	}
	return n, nil
}

// sse writes server-sent events.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func newSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx and friends: do not buffer
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, rc: http.NewResponseController(w)}
}

// write sends one event: its id, name and data (one data line per line
// of it, as SSE requires).
func (s *sse) write(ev stream.Event) error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(frameWriteTimeout)) // not every writer has deadlines
	b := stream.AppendSSE(make([]byte, 0, len(ev.Data)+48), ev)
	_, err := s.w.Write(b)
	return err
}

func (s *sse) flush() error {
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

func trimNL(b []byte) []byte { return []byte(strings.TrimRight(string(b), "\n")) }

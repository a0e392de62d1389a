package chatui

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// streamState is what a streamed answer printed so far, for a resume.
type streamState struct {
	id      string // the stream's id, from turn_start
	last    int64  // the last event's id
	midLine bool   // text printed since the last newline
	ended   bool   // a terminal event came
	answer  *answer
	errBody []byte // the error event's data
}

// sendStream runs one turn as a stream (see #15), printing the text as
// it comes; a dropped connection is resumed from the last event, on
// GET /v1/streams/{id}. It returns false, with the response and its
// body, when the server answered without a stream (an error before the
// turn started, or a server that does not stream): the caller handles
// that as a plain answer.
func (c *Chat) sendStream(ctx context.Context, w *errWriter, body []byte, key string, start time.Time) (*http.Response, []byte, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.turnURL, bytes.NewReader(body))
	if err != nil {
		return nil, nil, false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Idempotency-Key", key)
	resp, b, sse, err := c.open(req)
	if err != nil || !sse {
		return resp, b, false, err
	}
	st := &streamState{}
	err = c.readStream(resp.Body, w, st)
	resp.Body.Close()
	for tries := 0; !st.ended && st.id != "" && tries < 5 && ctx.Err() == nil; tries++ {
		// The connection dropped mid-answer: pick up where it stopped.
		time.Sleep(time.Duration(tries) * 300 * time.Millisecond)
		u := c.streamsURL + url.PathEscape(st.id)
		req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if rerr != nil {
			return nil, nil, true, rerr
		}
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("Last-Event-ID", strconv.FormatInt(st.last, 10))
		resp, _, sse, rerr := c.open(req)
		if rerr != nil || !sse {
			err = errors.Join(err, rerr)
			continue
		}
		err = c.readStream(resp.Body, w, st)
		resp.Body.Close()
	}
	if st.midLine {
		w.printf("\n")
	}
	switch {
	case st.answer != nil:
		st.answer.latency = time.Since(start)
		c.turns++
		c.total = c.total.add(st.answer.Usage)
		c.last = st.answer
		c.printFigures(w, st.answer)
	case st.errBody != nil:
		w.printf("error: %s\n", httpError(apierr.StatusOfBody(st.errBody), st.errBody))
	case err != nil:
		w.printf("error: %s\n", transportError(c.turnURL, err))
	default:
		w.printf("error: the stream ended before the answer\n")
	}
	return nil, nil, true, nil
}

// open sends req; sse reports a stream, whose body the caller reads and
// closes. Otherwise the body is read and closed here.
func (c *Chat) open(req *http.Request) (*http.Response, []byte, bool, error) {
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, false, err
	}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp, nil, true, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		c.authErr = ErrNoKey
		if c.apiKey != "" {
			c.authErr = ErrKeyRefused
		}
		return nil, nil, false, c.authErr
	}
	return resp, b, false, err
}

// readStream prints the events of r until a terminal one or the end.
func (c *Chat) readStream(r io.Reader, w *errWriter, st *streamState) error {
	return stream.ReadSSE(r, func(ev stream.Event) error {
		st.last = ev.Seq
		switch ev.Name {
		case stream.TurnStart:
			var s struct {
				StreamID string `json:"stream_id"`
			}
			_ = json.Unmarshal(ev.Data, &s)
			st.id = s.StreamID
			if st.midLine {
				w.printf("\n") // a retry of an interrupted turn starts over
			}
			w.printf("claude> ")
			st.midLine = true
		case stream.TextDelta:
			var d struct {
				Text string `json:"text"`
			}
			_ = json.Unmarshal(ev.Data, &d)
			w.printf("%s", strings.ReplaceAll(d.Text, "\n", "\n        "))
			st.midLine = true
		case stream.ToolUse:
			var t struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(ev.Data, &t)
			w.printf("\n\033[2m        (tool %s)\033[0m\n        ", t.Name)
		case stream.TurnEnd:
			var a answer
			if err := json.Unmarshal(ev.Data, &a); err != nil {
				return fmt.Errorf("turn_end is not JSON: %w", err)
			}
			st.answer, st.ended = &a, true
			return io.EOF
		case stream.Error:
			st.errBody, st.ended = ev.Data, true
			return io.EOF
		}
		return nil
	})
}

package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// KindStreamText: a streamed turn's text deltas (after its last
// turn_start and its last tool_result) do not join to its answer's
// response (see #15).
const KindStreamText = "stream_text"

// streamReply is a streamed exchange's outcome: the reply as a plain
// call would have had it (the turn_end data as body, or the error event's
// body with its status), the time to the first text delta, and the text
// of the deltas.
type streamReply struct {
	reply
	ttft time.Duration // zero: no text delta came
	text string
}

// postStream sends a turn asking for server-sent events and reads them
// to the end.
func postStream(ctx context.Context, c *http.Client, u string, body []byte, key, apiKey string, timeout time.Duration) streamReply {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return streamReply{reply: reply{err: err}}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return streamReply{reply: reply{err: err}}
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		// An error before the turn started: a plain JSON answer.
		return streamReply{reply: readReply(resp)}
	}
	var out streamReply
	var text strings.Builder
	err = stream.ReadSSE(resp.Body, func(ev stream.Event) error {
		switch ev.Name {
		case stream.TurnStart, stream.ToolResult:
			text.Reset()
		case stream.TextDelta:
			if out.ttft == 0 {
				out.ttft = time.Since(start)
			}
			var d struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				return fmt.Errorf("text_delta %d: %w", ev.Seq, err)
			}
			text.WriteString(d.Text)
		case stream.TurnEnd:
			out.status, out.body = http.StatusOK, ev.Data
		case stream.Error:
			out.status, out.body = apierr.StatusOfBody(ev.Data), ev.Data
		}
		return nil
	})
	out.text = text.String()
	if err == nil && out.status == 0 {
		err = fmt.Errorf("stream ended without turn_end or error")
	}
	if err != nil {
		return streamReply{reply: reply{err: err}}
	}
	return out
}

// recordStream keeps a streamed turn's time to first token and checks
// its text against its answer.
func (r *runner) recordStream(res *sessionResult, mk marker, a turnAnswer, sr streamReply) {
	if sr.ttft > 0 {
		res.ttft = append(res.ttft, sr.ttft)
	}
	if !r.cfg.NoHistoryCheck && sr.text != a.Response {
		res.violations = append(res.violations, Violation{Session: res.state.id, Turn: mk.turn, Kind: KindStreamText, Source: "stream",
			Detail: fmt.Sprintf("text deltas %q, response %q", sr.text, a.Response)})
	}
}

package claude

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/anthropics/anthropic-sdk-go/packages/ssestream"
)

// A Delta is a piece of a reply as Claude streams it (see #15): text or
// thinking of the content block at Index.
type Delta struct {
	// Type is "text" or "thinking".
	Type string
	// Index is the content block's index in the reply.
	Index int
	// Text is the piece of text or thinking.
	Text string
}

// midStream marks an error after deltas were handed out: sending the
// request again would hand them out twice, so it is not retried here
// (the turn fails and a retry of the turn starts its stream again).
type midStream struct{ error }

func (e midStream) Unwrap() error   { return e.error }
func (e midStream) Retryable() bool { return false }

// createStream is Create for a request with OnDelta: it asks for a
// streamed reply through the SDK, calls onDelta with each text and
// thinking delta as it arrives, and accumulates the same Reply the JSON
// reply would decode to. A transient failure before the first delta is
// retried like Create's; after it, it is returned.
func (c *Client) createStream(ctx context.Context, req Request) (*Reply, error) {
	body, err := withStream(req.Body)
	if err != nil {
		return nil, err
	}
	var reply *Reply
	attempts := 0
	err = c.retry.Do(ctx, func(ctx context.Context) error {
		attempts++
		r, delivered, err := c.stream(ctx, body, req.Betas, req.OnDelta)
		reply = r
		if err != nil && delivered {
			return midStream{err}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	reply.Attempts = attempts
	c.price(reply, req.Model)
	return reply, nil
}

// withStream adds "stream":true to a JSON object body.
func withStream(body []byte) ([]byte, error) {
	b := bytes.TrimRight(body, " \t\r\n")
	if len(b) < 2 || b[len(b)-1] != '}' {
		return nil, errors.New("claude: request body is not a JSON object")
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:len(b)-1]...)
	if len(bytes.TrimSpace(b[1:len(b)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"stream":true}`...)
	return out, nil
}

func (c *Client) stream(ctx context.Context, body []byte, betas []string, onDelta func(Delta)) (*Reply, bool, error) {
	var resp *http.Response
	opts := []option.RequestOption{
		option.WithRequestBody("application/json", body),
		option.WithResponseInto(&resp),
	}
	for _, b := range betas {
		opts = append(opts, option.WithHeaderAdd("anthropic-beta", b))
	}
	err := c.sdk.Post(ctx, "v1/messages", nil, &resp, opts...)
	if err != nil {
		return nil, false, classify(ctx, err)
	}
	s := ssestream.NewStream[anthropic.MessageStreamEventUnion](ssestream.NewDecoder(resp), nil)
	defer s.Close()
	var msg anthropic.Message
	delivered := false
	for s.Next() {
		ev := s.Current()
		if err := msg.Accumulate(ev); err != nil {
			return nil, delivered, fmt.Errorf("claude: accumulate streamed reply: %w", err)
		}
		if ev.Type != "content_block_delta" {
			continue
		}
		switch ev.Delta.Type {
		case "text_delta":
			delivered = true
			onDelta(Delta{Type: "text", Index: int(ev.Index), Text: ev.Delta.Text})
		case "thinking_delta":
			delivered = true
			onDelta(Delta{Type: "thinking", Index: int(ev.Index), Text: ev.Delta.Thinking})
		}
	}
	if err := s.Err(); err != nil {
		return nil, delivered, streamError(ctx, err)
	}
	var r Reply
	if err := json.Unmarshal([]byte(msg.RawJSON()), &r); err != nil {
		return nil, delivered, fmt.Errorf("claude: decode streamed reply: %w", err)
	}
	if len(r.Content) == 0 || r.Content[0] != '[' {
		return nil, delivered, fmt.Errorf("claude: streamed reply %s has no content array (cut short?)", r.ID)
	}
	if string(r.StopDetails) == "null" {
		r.StopDetails = nil
	}
	if r.StopReason == "" {
		return nil, delivered, &TransportError{Err: fmt.Errorf("streamed reply %s ended without message_delta", r.ID)}
	}
	if resp != nil {
		r.RequestID = resp.Header.Get("request-id")
		r.Header = resp.Header
	}
	return &r, delivered, nil
}

// streamError classifies an error event inside a 200 stream by its type,
// as if it had come as the status the API gives that type.
func streamError(ctx context.Context, err error) error {
	err = classify(ctx, err)
	var se *StatusError
	if errors.As(err, &se) && se.Code < 400 {
		switch se.Type {
		case "overloaded_error":
			se.Code = 529
		case "rate_limit_error":
			se.Code = 429
		default:
			se.Code = 500
		}
	}
	return err
}

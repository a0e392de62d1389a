package claude

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

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

// readStream reads a streamed reply (a body that asked for "stream": true)
// into the Reply the JSON reply would have been. An error event, which the
// API sends after the 200 when it fails mid-stream (an overloaded_error,
// say), becomes the StatusError of the status that error type goes with,
// so that it is retried as the same error before the stream would have
// been (see #14). A stream cut before message_stop is a TransportError.
// onDelta, when not nil, is called with each text and thinking delta as it
// arrives (see #15); *delivered is set once it has been.
func readStream(ctx context.Context, resp *http.Response, onDelta func(Delta), delivered *bool) (*Reply, error) {
	dec := ssestream.NewDecoder(resp)
	defer dec.Close()
	var (
		r      Reply
		blocks []*streamBlock
		done   bool
	)
	for !done && dec.Next() {
		ev := dec.Event()
		var err error
		switch ev.Type {
		case "message_start":
			err = r.start(ev.Data)
		case "content_block_start":
			var e struct {
				Index        int                        `json:"index"`
				ContentBlock map[string]json.RawMessage `json:"content_block"`
			}
			if err = json.Unmarshal(ev.Data, &e); err == nil {
				if e.Index != len(blocks) {
					err = fmt.Errorf("block %d starts after %d blocks", e.Index, len(blocks))
					break
				}
				blocks = append(blocks, &streamBlock{fields: e.ContentBlock})
			}
		case "content_block_delta":
			var e struct {
				Index int         `json:"index"`
				Delta streamDelta `json:"delta"`
			}
			if err = json.Unmarshal(ev.Data, &e); err == nil {
				if e.Index < 0 || e.Index >= len(blocks) {
					err = fmt.Errorf("delta for block %d of %d", e.Index, len(blocks))
					break
				}
				blocks[e.Index].add(e.Delta)
				if onDelta != nil {
					switch e.Delta.Type {
					case "text_delta":
						*delivered = true
						onDelta(Delta{Type: "text", Index: e.Index, Text: e.Delta.Text})
					case "thinking_delta":
						*delivered = true
						onDelta(Delta{Type: "thinking", Index: e.Index, Text: e.Delta.Thinking})
					}
				}
			}
		case "message_delta":
			err = r.delta(ev.Data)
		case "message_stop":
			done = true
		case "error":
			return nil, streamError(resp, ev.Data)
		}
		if err != nil {
			return nil, fmt.Errorf("claude: decode %s event: %w", ev.Type, err)
		}
	}
	if err := dec.Err(); err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("claude: %w", ctx.Err())
	} else if err != nil {
		return nil, &TransportError{Err: fmt.Errorf("read stream: %w", err)}
	}
	if !done {
		return nil, &TransportError{Err: errors.New("stream ended before message_stop")}
	}
	content := make([]json.RawMessage, len(blocks))
	for i, b := range blocks {
		raw, err := b.finish()
		if err != nil {
			return nil, fmt.Errorf("claude: decode block %d: %w", i, err)
		}
		content[i] = raw
	}
	raw, err := marshal(content)
	if err != nil {
		return nil, fmt.Errorf("claude: encode content: %w", err)
	}
	r.Content = raw
	return &r, nil
}

// start takes the message_start event's message: everything but the
// content, which the block events bring, and the stop reason.
func (r *Reply) start(data []byte) error {
	var e struct {
		Message Reply `json:"message"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	*r = e.Message
	r.Content = nil
	return nil
}

// delta takes a message_delta event: the stop reason and the usage,
// cumulative, of which a zero count keeps message_start's.
func (r *Reply) delta(data []byte) error {
	var e struct {
		Delta struct {
			StopReason  string          `json:"stop_reason"`
			StopDetails json.RawMessage `json:"stop_details"`
		} `json:"delta"`
		Usage Usage `json:"usage"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return err
	}
	r.StopReason, r.StopDetails = e.Delta.StopReason, e.Delta.StopDetails
	u := e.Usage
	for _, f := range []struct{ dst, src *int64 }{
		{&r.Usage.InputTokens, &u.InputTokens},
		{&r.Usage.OutputTokens, &u.OutputTokens},
		{&r.Usage.CacheCreationInputTokens, &u.CacheCreationInputTokens},
		{&r.Usage.CacheReadInputTokens, &u.CacheReadInputTokens},
	} {
		if *f.src != 0 {
			*f.dst = *f.src
		}
	}
	return nil
}

// streamDelta is a content_block_delta's delta, of any of its types.
type streamDelta struct {
	Type        string `json:"type"`
	Text        string `json:"text"`
	Thinking    string `json:"thinking"`
	Signature   string `json:"signature"`
	PartialJSON string `json:"partial_json"`
}

// A streamBlock is one content block being streamed: the fields of its
// content_block_start, and what its deltas added.
type streamBlock struct {
	fields              map[string]json.RawMessage
	text, thinking, sig []byte
	input               []byte
	hasSig              bool
}

func (b *streamBlock) add(d streamDelta) {
	switch d.Type {
	case "text_delta":
		b.text = append(b.text, d.Text...)
	case "thinking_delta":
		b.thinking = append(b.thinking, d.Thinking...)
	case "signature_delta":
		b.sig, b.hasSig = append(b.sig, d.Signature...), true
	case "input_json_delta":
		b.input = append(b.input, d.PartialJSON...)
	}
}

// finish is the block as the JSON reply would have held it.
func (b *streamBlock) finish() (json.RawMessage, error) {
	var typ string
	if err := json.Unmarshal(b.fields["type"], &typ); err != nil {
		return nil, fmt.Errorf("block type: %w", err)
	}
	set := func(k string, v []byte) error {
		raw, err := marshal(string(v))
		b.fields[k] = raw
		return err
	}
	var err error
	switch typ {
	case "text":
		err = set("text", b.text)
	case "thinking":
		if err = set("thinking", b.thinking); err == nil && b.hasSig {
			err = set("signature", b.sig)
		}
	case "tool_use", "server_tool_use":
		if len(b.input) > 0 {
			if !json.Valid(b.input) {
				return nil, fmt.Errorf("tool input %q is not JSON", b.input)
			}
			b.fields["input"] = b.input
		}
	}
	if err != nil {
		return nil, err
	}
	return marshal(b.fields)
}

// marshal encodes v as the API does, with <, > and & literal: the blocks
// go back to the API verbatim, and a streamed reply is stored as the JSON
// one would have been.
func marshal(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// streamError is the StatusError for an error event of a stream that began
// with resp (a 200): its status is the one the error's type goes with.
func streamError(resp *http.Response, data []byte) error {
	var body struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(data, &body); err != nil || body.Error.Type == "" {
		return &TransportError{Err: fmt.Errorf("stream error event %q", data)}
	}
	se := &StatusError{
		Code: statusOf(body.Error.Type), Type: body.Error.Type, Message: body.Error.Message,
		RequestID: body.RequestID, Header: resp.Header, MidStream: true,
	}
	if se.RequestID == "" {
		se.RequestID = resp.Header.Get("request-id")
	}
	return se
}

package claudesim

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Usage is the usage object of a Messages API reply. InputTokens excludes
// the cached tokens, which CacheReadInputTokens and
// CacheCreationInputTokens report.
type Usage struct {
	InputTokens              int           `json:"input_tokens"`
	CacheCreationInputTokens int           `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int           `json:"cache_read_input_tokens"`
	CacheCreation            CacheCreation `json:"cache_creation"`
	OutputTokens             int           `json:"output_tokens"`
	ServiceTier              string        `json:"service_tier"`
	// Iterations splits a compacted reply's usage: the compaction, then
	// the message. The top-level counts are the message's alone.
	Iterations []iterationUsage `json:"iterations,omitempty"`
}

// CacheCreation splits Usage.CacheCreationInputTokens by TTL.
type CacheCreation struct {
	Ephemeral5mInputTokens int `json:"ephemeral_5m_input_tokens"`
	Ephemeral1hInputTokens int `json:"ephemeral_1h_input_tokens"`
}

// messageJSON is the documented Message object.
type messageJSON struct {
	ID           string       `json:"id"`
	Type         string       `json:"type"`
	Role         string       `json:"role"`
	Model        string       `json:"model"`
	Content      []outBlock   `json:"content"`
	StopReason   *string      `json:"stop_reason"`
	StopSequence *string      `json:"stop_sequence"`
	StopDetails  *stopDetails `json:"stop_details"`
	Usage        Usage        `json:"usage"`
	// InputTransformations lists what the API changed in the request
	// before the model saw it (thinking blocks dropped by drop_block).
	InputTransformations []inputTransformation `json:"input_transformations,omitempty"`
	// ContextManagement reports the context edits applied, when the
	// request asked for context management.
	ContextManagement *contextManagementJSON `json:"context_management,omitempty"`
}

// deltaUsage is the cumulative usage a message_delta event carries.
type deltaUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	// Iterations is the reply's usage.iterations (a compacted reply's),
	// as the API's message_delta carries it.
	Iterations []iterationUsage `json:"iterations,omitempty"`
}

// marshal encodes v as the API does: compact, with <, > and & literal.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("claudesim: marshal: " + err.Error()) // all our types encode
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// An sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data []byte
}

// deltaChunk is the most bytes of text one delta event carries.
const deltaChunk = 24

// chunks splits s into pieces of at most n bytes at rune boundaries.
func chunks(s string, n int) []string {
	var out []string
	for len(s) > n {
		k := n
		for k > 0 && !utf8.RuneStart(s[k]) {
			k--
		}
		if k == 0 {
			k = n
		}
		out = append(out, s[:k])
		s = s[k:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

// streamEvents lays out msg as the documented event flow: message_start,
// ping, then for each block content_block_start, its deltas and
// content_block_stop, then message_delta and message_stop.
func streamEvents(msg messageJSON) []sseEvent {
	ev := func(name string, v any) sseEvent { return sseEvent{name: name, data: marshal(v)} }
	type indexOnly struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
	}
	type typeOnly struct {
		Type string `json:"type"`
	}
	start := msg
	start.Content = []outBlock{}
	start.StopReason, start.StopSequence, start.StopDetails = nil, nil, nil
	start.Usage.OutputTokens = min(1, msg.Usage.OutputTokens)
	out := []sseEvent{
		ev("message_start", struct {
			Type    string      `json:"type"`
			Message messageJSON `json:"message"`
		}{"message_start", start}),
		{name: "ping", data: []byte(`{"type": "ping"}`)},
	}
	type blockStart struct {
		Type         string   `json:"type"`
		Index        int      `json:"index"`
		ContentBlock outBlock `json:"content_block"`
	}
	type blockDelta struct {
		Type  string `json:"type"`
		Index int    `json:"index"`
		Delta any    `json:"delta"`
	}
	type textDelta struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	type thinkingDelta struct {
		Type     string `json:"type"`
		Thinking string `json:"thinking"`
	}
	type signatureDelta struct {
		Type      string `json:"type"`
		Signature string `json:"signature"`
	}
	type compactionDelta struct {
		Type             string `json:"type"`
		Content          string `json:"content"`
		EncryptedContent string `json:"encrypted_content"`
	}
	type jsonDelta struct {
		Type        string `json:"type"`
		PartialJSON string `json:"partial_json"`
	}
	empty := ""
	for i, b := range msg.Content {
		head := outBlock{Type: b.Type}
		var deltas []any
		switch b.Type {
		case "text":
			head.Text = &empty
			for _, c := range chunks(*b.Text, deltaChunk) {
				deltas = append(deltas, textDelta{"text_delta", c})
			}
		case "thinking":
			head.Thinking, head.Signature = &empty, &empty
			for _, c := range chunks(*b.Thinking, deltaChunk) {
				deltas = append(deltas, thinkingDelta{"thinking_delta", c})
			}
			deltas = append(deltas, signatureDelta{"signature_delta", *b.Signature})
		case "tool_use":
			head.ID, head.Name, head.Input = b.ID, b.Name, json.RawMessage("{}")
			for _, c := range chunks(string(b.Input), deltaChunk) {
				deltas = append(deltas, jsonDelta{"input_json_delta", c})
			}
		case "compaction":
			// The summary comes whole in one compaction_delta; the
			// signature with the block's start.
			head.Signature = b.Signature
			deltas = append(deltas, compactionDelta{"compaction_delta", *b.Content, *b.EncryptedContent})
		}
		out = append(out, ev("content_block_start", blockStart{"content_block_start", i, head}))
		for _, d := range deltas {
			out = append(out, ev("content_block_delta", blockDelta{"content_block_delta", i, d}))
		}
		out = append(out, ev("content_block_stop", indexOnly{"content_block_stop", i}))
	}
	out = append(out, ev("message_delta", struct {
		Type  string `json:"type"`
		Delta struct {
			StopReason   *string      `json:"stop_reason"`
			StopSequence *string      `json:"stop_sequence"`
			StopDetails  *stopDetails `json:"stop_details"`
		} `json:"delta"`
		Usage             deltaUsage             `json:"usage"`
		ContextManagement *contextManagementJSON `json:"context_management,omitempty"`
	}{
		Type: "message_delta",
		Delta: struct {
			StopReason   *string      `json:"stop_reason"`
			StopSequence *string      `json:"stop_sequence"`
			StopDetails  *stopDetails `json:"stop_details"`
		}{msg.StopReason, msg.StopSequence, msg.StopDetails},
		Usage: deltaUsage{
			InputTokens:              msg.Usage.InputTokens,
			CacheCreationInputTokens: msg.Usage.CacheCreationInputTokens,
			CacheReadInputTokens:     msg.Usage.CacheReadInputTokens,
			OutputTokens:             msg.Usage.OutputTokens,
			Iterations:               msg.Usage.Iterations,
		},
		ContextManagement: msg.ContextManagement,
	}))
	out = append(out, ev("message_stop", typeOnly{"message_stop"}))
	return out
}

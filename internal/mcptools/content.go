package mcptools

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Messages API content blocks that may appear inside a tool_result.
type (
	textBlock struct {
		Type string `json:"type"` // "text"
		Text string `json:"text"`
	}
	imageBlock struct {
		Type   string      `json:"type"` // "image"
		Source imageSource `json:"source"`
	}
	imageSource struct {
		Type      string `json:"type"` // "base64"
		MediaType string `json:"media_type"`
		Data      string `json:"data"`
	}
	toolResultBlock struct {
		Type      string `json:"type"` // "tool_result"
		ToolUseID string `json:"tool_use_id"`
		Content   []any  `json:"content,omitempty"`
		IsError   bool   `json:"is_error"`
	}
)

// imageTypes are the media types the Messages API takes in image blocks.
var imageTypes = map[string]bool{
	"image/jpeg": true,
	"image/png":  true,
	"image/gif":  true,
	"image/webp": true,
}

// resultBlock builds the tool_result block for a call's MCP result.
func resultBlock(toolUseID string, res *mcp.CallToolResult) (json.RawMessage, error) {
	content, err := convertContent(res)
	if err != nil {
		return nil, err
	}
	return marshal(toolResultBlock{
		Type:      "tool_result",
		ToolUseID: toolUseID,
		Content:   content,
		IsError:   res.IsError,
	})
}

// errorBlock builds a tool_result block with is_error set and msg as text.
func errorBlock(toolUseID, msg string) json.RawMessage {
	b, err := marshal(toolResultBlock{
		Type:      "tool_result",
		ToolUseID: toolUseID,
		Content:   []any{textBlock{Type: "text", Text: msg}},
		IsError:   true,
	})
	if err != nil {
		panic(err) // strings always marshal
	}
	return b
}

// convertContent turns MCP content into Messages API blocks: text and images
// as themselves, everything else as text describing it. If there is no text
// at all, structured content is added as JSON text, since Claude reads only
// the blocks.
func convertContent(res *mcp.CallToolResult) ([]any, error) {
	out := make([]any, 0, len(res.Content)+1)
	hasText := false
	text := func(s string) {
		if s == "" {
			return // the Messages API rejects empty text blocks
		}
		out = append(out, textBlock{Type: "text", Text: s})
		hasText = true
	}
	for i, c := range res.Content {
		switch c := c.(type) {
		case *mcp.TextContent:
			text(c.Text)
		case *mcp.ImageContent:
			if imageTypes[c.MIMEType] {
				out = append(out, imageBlock{Type: "image", Source: imageSource{
					Type:      "base64",
					MediaType: c.MIMEType,
					Data:      base64.StdEncoding.EncodeToString(c.Data),
				}})
			} else {
				text(fmt.Sprintf("[image of type %q, %d bytes, not shown: only JPEG, PNG, GIF and WebP can be shown]", c.MIMEType, len(c.Data)))
			}
		case *mcp.AudioContent:
			text(fmt.Sprintf("[audio of type %q, %d bytes, not shown]", c.MIMEType, len(c.Data)))
		case *mcp.ResourceLink:
			text(describeLink(c))
		case *mcp.EmbeddedResource:
			if c.Resource == nil {
				return nil, fmt.Errorf("content[%d]: resource without contents", i)
			}
			r := c.Resource
			switch {
			case r.Text != "":
				text(fmt.Sprintf("[resource %s%s]\n%s", r.URI, mimeSuffix(r.MIMEType), r.Text))
			case imageTypes[r.MIMEType] && len(r.Blob) > 0:
				text(fmt.Sprintf("[resource %s]", r.URI))
				out = append(out, imageBlock{Type: "image", Source: imageSource{
					Type:      "base64",
					MediaType: r.MIMEType,
					Data:      base64.StdEncoding.EncodeToString(r.Blob),
				}})
			default:
				text(fmt.Sprintf("[resource %s%s, %d bytes of binary data, not shown]", r.URI, mimeSuffix(r.MIMEType), len(r.Blob)))
			}
		case nil:
			return nil, fmt.Errorf("content[%d]: null", i)
		default:
			text(fmt.Sprintf("[%T content, not shown]", c))
		}
	}
	if !hasText && res.StructuredContent != nil {
		b, err := marshal(res.StructuredContent)
		if err != nil {
			return nil, fmt.Errorf("structuredContent: %w", err)
		}
		if s := string(b); s != "null" {
			text(s)
		}
	}
	return out, nil
}

func describeLink(l *mcp.ResourceLink) string {
	var b strings.Builder
	b.WriteString("[resource link: ")
	b.WriteString(l.URI)
	if l.Name != "" && l.Name != l.URI {
		fmt.Fprintf(&b, " (%s)", l.Name)
	}
	b.WriteString(mimeSuffix(l.MIMEType))
	if l.Description != "" {
		fmt.Fprintf(&b, ": %s", l.Description)
	}
	b.WriteString("]")
	return b.String()
}

func mimeSuffix(t string) string {
	if t == "" {
		return ""
	}
	return ", " + t
}

// marshal is json.Marshal without HTML escaping: the blocks go to a model,
// not a browser, and "<" reads better than "\u003c".
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

package mcptools

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestResultBlock(t *testing.T) {
	png := []byte{0x89, 'P', 'N', 'G'}
	size := int64(12)
	tests := []struct {
		name string
		res  *mcp.CallToolResult
		want string
	}{
		{
			name: "text",
			res:  &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "a <b> & c"}}},
			want: `{"type":"tool_result","tool_use_id":"tu","content":[{"type":"text","text":"a <b> & c"}],"is_error":false}`,
		},
		{
			name: "tool error",
			res:  &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "no such file"}}},
			want: `{"type":"tool_result","tool_use_id":"tu","content":[{"type":"text","text":"no such file"}],"is_error":true}`,
		},
		{
			name: "image",
			res:  &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{MIMEType: "image/png", Data: png}}},
			want: `{"type":"tool_result","tool_use_id":"tu","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw=="}}],"is_error":false}`,
		},
		{
			name: "image of a type Claude cannot see",
			res:  &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{MIMEType: "image/tiff", Data: png}}},
			want: `{"type":"tool_result","tool_use_id":"tu","content":[{"type":"text","text":"[image of type \"image/tiff\", 4 bytes, not shown: only JPEG, PNG, GIF and WebP can be shown]"}],"is_error":false}`,
		},
		{
			name: "audio, link, resources",
			res: &mcp.CallToolResult{Content: []mcp.Content{
				&mcp.AudioContent{MIMEType: "audio/wav", Data: []byte("RIFF")},
				&mcp.ResourceLink{URI: "file:///a.txt", Name: "a", MIMEType: "text/plain", Description: "notes", Size: &size},
				&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "file:///b.txt", MIMEType: "text/plain", Text: "hello"}},
				&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "file:///c.png", MIMEType: "image/png", Blob: png}},
				&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "file:///d.bin", Blob: []byte{1, 2}}},
			}},
			want: `{"type":"tool_result","tool_use_id":"tu","content":[` +
				`{"type":"text","text":"[audio of type \"audio/wav\", 4 bytes, not shown]"},` +
				`{"type":"text","text":"[resource link: file:///a.txt (a), text/plain: notes]"},` +
				`{"type":"text","text":"[resource file:///b.txt, text/plain]\nhello"},` +
				`{"type":"text","text":"[resource file:///c.png]"},` +
				`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw=="}},` +
				`{"type":"text","text":"[resource file:///d.bin, 2 bytes of binary data, not shown]"}],"is_error":false}`,
		},
		{
			name: "structured content only",
			res:  &mcp.CallToolResult{Content: []mcp.Content{}, StructuredContent: map[string]any{"temp": 21.5}},
			want: `{"type":"tool_result","tool_use_id":"tu","content":[{"type":"text","text":"{\"temp\":21.5}"}],"is_error":false}`,
		},
		{
			name: "structured content beside text",
			res:  &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "21.5°C"}}, StructuredContent: map[string]any{"temp": 21.5}},
			want: `{"type":"tool_result","tool_use_id":"tu","content":[{"type":"text","text":"21.5°C"}],"is_error":false}`,
		},
		{
			name: "empty text dropped, nothing left",
			res:  &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{}}},
			want: `{"type":"tool_result","tool_use_id":"tu","is_error":false}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resultBlock("tu", tc.res)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("invalid JSON: %s", got)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("block (-want +got):\n%s", diff)
			}
		})
	}

	if _, err := resultBlock("tu", &mcp.CallToolResult{Content: []mcp.Content{&mcp.EmbeddedResource{}}}); err == nil {
		t.Error("resource without contents: no error")
	}
}

func TestErrorBlock(t *testing.T) {
	got := string(errorBlock("tu", `Unknown tool "x".`))
	want := `{"type":"tool_result","tool_use_id":"tu","content":[{"type":"text","text":"Unknown tool \"x\"."}],"is_error":true}`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("block (-want +got):\n%s", diff)
	}
}

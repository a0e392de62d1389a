package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCapToolResult: whatever a tool runtime returns, the capped block is
// the result itself when it fits, else a valid tool_result for the call
// within the cap (the cap being at least MinMaxToolResultBytes), whose
// text is valid UTF-8 and ends with the note.
func FuzzCapToolResult(f *testing.F) {
	f.Add([]byte(`{"type":"tool_result","tool_use_id":"t1","content":"`+strings.Repeat("a", 3000)+`"}`), 1024)
	f.Add([]byte(`{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"`+strings.Repeat("<é>", 1000)+`"},{"type":"image","source":{}}],"is_error":true}`), 1500)
	f.Add([]byte(`{"type":"tool_result","tool_use_id":"t1","content":[`+strings.Repeat(`{"type":"text","text":"\ud800 x"},`, 200)+`{}]}`), 2048)
	f.Add([]byte(strings.Repeat("not json ", 300)), 1024)
	f.Fuzz(func(t *testing.T, r []byte, limit int) {
		limit = MinMaxToolResultBytes + abs(limit)%(8<<10)
		out := capToolResult("toolu_1", r, limit)
		if len(r) <= limit {
			if string(out) != string(r) {
				t.Fatalf("a result within the cap was changed")
			}
			return
		}
		if len(out) > limit {
			t.Fatalf("capped block is %d bytes, over %d", len(out), limit)
		}
		var b struct {
			Type      string `json:"type"`
			ToolUseID string `json:"tool_use_id"`
			Content   []struct {
				Type, Text string
			} `json:"content"`
		}
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatalf("capped block %s: %v", out, err)
		}
		if b.Type != "tool_result" || b.ToolUseID != "toolu_1" || len(b.Content) == 0 {
			t.Fatalf("capped block %s is not a tool_result of the call", out)
		}
		for _, c := range b.Content {
			if c.Type != "text" || !utf8.ValidString(c.Text) {
				t.Fatalf("capped block %s has a bad text block", out)
			}
		}
		if note := b.Content[len(b.Content)-1].Text; !strings.Contains(note, "bytes") {
			t.Fatalf("capped block %s has no note", out)
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

package claude_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// A streamed Create returns the Reply the JSON one does, and its text
// deltas, joined per block, are the reply's text blocks (see #15). Tool
// call ids are random, so they are not compared.
func TestCreateStreamed(t *testing.T) {
	srv := httptest.NewServer(claudesim.New(claudesim.Config{}))
	t.Cleanup(srv.Close)
	c, err := claude.New(claude.Config{APIKey: "test-key", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tools := `,"tools":[{"name":"get_weather","description":"w","input_schema":{"type":"object"}}]`
	tests := []struct{ name, body string }{
		{"echo", `{"model":"` + sonnet + `","max_tokens":200,"messages":[{"role":"user","content":"stream <me> & \"more\", ünïcode"}]}`},
		{"tool call", `{"model":"` + sonnet + `","max_tokens":400` + tools + `,"messages":[{"role":"user","content":"[[tool get_weather {\"city\":\"Paris\"}]]"}]}`},
		{"thinking shown", `{"model":"` + sonnet + `","max_tokens":400,"thinking":{"type":"adaptive","display":"summarized"}` + tools + `,"messages":[{"role":"user","content":"[[tool get_weather]]"}]}`},
		{"refusal", `{"model":"` + sonnet + `","max_tokens":200,"messages":[{"role":"user","content":"[[refusal]]"}]}`},
		{"cut by max_tokens", `{"model":"` + sonnet + `","max_tokens":3,"messages":[{"role":"user","content":"a long enough message to be cut"}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, err := c.Create(t.Context(), claude.Request{Model: sonnet, Body: []byte(tc.body)})
			if err != nil {
				t.Fatal(err)
			}
			texts := map[int]*strings.Builder{}
			var kinds []string
			got, err := c.Create(t.Context(), claude.Request{Model: sonnet, Body: []byte(tc.body), OnDelta: func(d claude.Delta) {
				if texts[d.Index] == nil {
					texts[d.Index] = &strings.Builder{}
					kinds = append(kinds, d.Type)
				}
				texts[d.Index].WriteString(d.Text)
			}})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(decode(t, want.Content), decode(t, got.Content)); diff != "" {
				t.Errorf("content (-json +streamed):\n%s", diff)
			}
			if want.StopReason != got.StopReason || want.Usage != got.Usage || want.Model != got.Model || string(want.StopDetails) != string(got.StopDetails) {
				t.Errorf("streamed stop %q usage %+v details %s; json %q %+v %s", got.StopReason, got.Usage, got.StopDetails, want.StopReason, want.Usage, want.StopDetails)
			}
			if got.RequestID == "" || got.Usage.CostUSD == 0 {
				t.Errorf("streamed reply: request id %q, cost %v", got.RequestID, got.Usage.CostUSD)
			}
			var blocks []struct{ Type, Text, Thinking string }
			if err := json.Unmarshal(got.Content, &blocks); err != nil {
				t.Fatal(err)
			}
			for i, b := range blocks {
				var streamed string
				if texts[i] != nil {
					streamed = texts[i].String()
				}
				switch b.Type {
				case "text":
					if streamed != b.Text {
						t.Errorf("block %d: deltas %q, text %q", i, streamed, b.Text)
					}
				case "thinking":
					if streamed != b.Thinking {
						t.Errorf("block %d: deltas %q, thinking %q", i, streamed, b.Thinking)
					}
				}
			}
			t.Logf("delta kinds %v", kinds)
		})
	}
}

func decode(t *testing.T, raw json.RawMessage) any {
	t.Helper()
	var v []map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	for _, b := range v {
		if b["type"] == "tool_use" {
			b["id"] = "toolu_(random)" // new on every call
		}
	}
	return v
}

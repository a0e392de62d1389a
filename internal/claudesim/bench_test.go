package claudesim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// history1000 is a request body with a 1000-message history of about 200
// bytes a message, and the new user message.
func history1000(stream, cache bool) []byte {
	type msg struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	req := map[string]any{"model": "claude-sonnet-5-5", "max_tokens": 1024, "stream": stream}
	if cache {
		req["cache_control"] = map[string]string{"type": "ephemeral"}
	}
	msgs := make([]msg, 1001)
	for i := range msgs {
		role := "user"
		if i%2 == 1 {
			role = "assistant"
		}
		msgs[i] = msg{role, fmt.Sprintf("message %d: %s", i, strings.Repeat("lorem ipsum ", 16))}
	}
	msgs[1000].Content = "the last question"
	req["messages"] = msgs
	b, _ := json.Marshal(req)
	return b
}

// BenchmarkMessages1000 is the simulator's cost to answer a turn with a
// 1000-message history, so that it does not dominate the benchmarks that
// use it.
func BenchmarkMessages1000(b *testing.B) {
	for _, bc := range []struct {
		name          string
		stream, cache bool
	}{{"json", false, false}, {"stream", true, false}, {"cached", false, true}} {
		b.Run(bc.name, func(b *testing.B) {
			sim := claudesim.New(claudesim.Config{MaxRecorded: -1})
			body := history1000(bc.stream, bc.cache)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", "/v1/messages", bytes.NewReader(body))
				req.Header.Set("x-api-key", "sk-bench")
				req.Header.Set("anthropic-version", "2023-06-01")
				rec := httptest.NewRecorder()
				sim.ServeHTTP(rec, req)
				if rec.Code != 200 {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		in   string
		want endpoints
	}{
		{"http://127.0.0.1:8080", endpoints{"http://127.0.0.1:8080/agent", "http://127.0.0.1:8080/v1/sessions/"}},
		{"http://127.0.0.1:8080/", endpoints{"http://127.0.0.1:8080/agent", "http://127.0.0.1:8080/v1/sessions/"}},
		{"http://h/agent", endpoints{"http://h/agent", "http://h/v1/sessions/"}},
		{"https://h/prod/agent?x=1", endpoints{"https://h/prod/agent?x=1", "https://h/prod/v1/sessions/"}},
		{"http://h/chat", endpoints{"http://h/chat", "http://h/v1/sessions/"}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseEndpoint(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(endpoints{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestReplyKind(t *testing.T) {
	tests := []struct {
		name      string
		r         reply
		kind      string
		retryable bool
	}{
		{"json error", reply{status: 409, body: []byte(`{"error":{"type":"session_busy","message":"x"}}`)}, "409 session_busy", true},
		{"plain error", reply{status: 500, body: []byte("oops")}, "500 internal_server_error", false},
		{"bad request", reply{status: 400, body: []byte(`{"error":{"type":"invalid_request"}}`)}, "400 invalid_request", false},
		{"refused", reply{err: syscall.ECONNREFUSED}, "transport: connection_refused", true},
		{"timeout", reply{err: context.DeadlineExceeded}, "transport: timeout", true},
		{"canceled", reply{err: context.Canceled}, "transport: canceled", false},
		{"other", reply{err: errors.New("x")}, "transport: error", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.r.kind(); got != tc.kind {
				t.Errorf("kind = %q, want %q", got, tc.kind)
			}
			if got := tc.r.retryable(); got != tc.retryable {
				t.Errorf("retryable = %v, want %v", got, tc.retryable)
			}
		})
	}
}

// FuzzCheckTranscript feeds arbitrary stored histories to the check: it
// must not panic, and a history it built itself must pass.
func FuzzCheckTranscript(f *testing.F) {
	f.Add(`[{"role":"user","content":"lg:abc:0:1"},{"role":"assistant","content":[{"type":"text","text":"echo: lg:abc:0:1 (messages: 1)"}]}]`, 1)
	f.Add(`[{"role":"user","content":[{"type":"text","text":"lg:abc:0:2"}]},{"role":"user","content":"lg:abc:1:99999999999999999999"}]`, 2)
	f.Add(`[{"role":"user","content":[{"type":"tool_result"}]}, 3, null]`, 0)
	f.Fuzz(func(t *testing.T, history string, acked int) {
		var raw []json.RawMessage
		if json.Unmarshal([]byte(history), &raw) != nil {
			return
		}
		_ = checkTranscript("abc", sessionState{index: 0, id: "s", acked: acked % 64}, raw)
		_, _, _ = parseEcho(history)
	})
}

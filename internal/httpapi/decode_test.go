package httpapi

import (
	"errors"
	"testing"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"session_id":"s1","message":"hello"}`,
		`{"session_id":1}`,
		`{"session_id":"s1","message":"hi"} {}`,
		`[]`, ``, `{`, `null`, `{"message":"\u0000"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req AgentRequest
		err := DecodeJSON(body, &req)
		if err == nil {
			return
		}
		var e *apierr.Error
		if !errors.As(err, &e) || e.StatusCode() != 400 || e.Message == "" {
			t.Fatalf("DecodeJSON(%q) = %v, want a 400 *Error with a message", body, err)
		}
	})
}

package session_test

import (
	"encoding/json"
	"testing"

	"github.com/lambdagent/lambdagent/internal/session"
)

func TestJoined(t *testing.T) {
	msgs := session.JoinMessages([][]byte{[]byte(`{"a":1}`), []byte(`{"b":2}`), []byte(`{"c":3}`)})
	for _, tc := range []struct {
		name string
		in   []json.RawMessage
		want string
		ok   bool
	}{
		{"empty", nil, "", true},
		{"all", msgs, `{"a":1},{"b":2},{"c":3}`, true},
		{"tail", msgs[1:], `{"b":2},{"c":3}`, true},
		{"one", msgs[2:], `{"c":3}`, true},
		{"gap", []json.RawMessage{msgs[0], msgs[2]}, "", false},
		{"reversed", []json.RawMessage{msgs[1], msgs[0]}, "", false},
		{"separate", []json.RawMessage{json.RawMessage(`{"a":1}`), json.RawMessage(`{"b":2}`)}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := session.Joined(tc.in)
			if ok != tc.ok || ok && string(got) != tc.want {
				t.Errorf("Joined = %q, %v; want %q, %v", got, ok, tc.want, tc.ok)
			}
			if ok && cap(got) != len(got) {
				t.Errorf("Joined's capacity %d runs past its length %d: an append would overwrite the buffer", cap(got), len(got))
			}
		})
	}
	// A buffer whose bytes between two views are not a comma is not joined.
	buf := []byte(`{"a":1};{"b":2}`)
	if _, ok := session.Joined([]json.RawMessage{buf[:7], buf[8:]}); ok {
		t.Error("Joined accepted views separated by ';'")
	}
}

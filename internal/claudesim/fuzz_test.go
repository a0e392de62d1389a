package claudesim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzParseRequest sends arbitrary bodies to POST /v1/messages. Whatever
// the body, the Server must not panic, and must answer either a Message
// (JSON or a stream of JSON events) or the documented JSON error body.
// Seeds are in testdata/fuzz/FuzzParseRequest.
func FuzzParseRequest(f *testing.F) {
	sim := New(Config{MaxRecorded: -1})
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/v1/messages", bytes.NewReader(body))
		req.Header.Set("x-api-key", "sk-fuzz")
		req.Header.Set("anthropic-version", "2023-06-01")
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)

		ct := rec.Header().Get("Content-Type")
		switch {
		case rec.Code == 200 && strings.HasPrefix(ct, "text/event-stream"):
			sc := bufio.NewScanner(rec.Body)
			sc.Buffer(nil, 64<<20)
			events := 0
			for sc.Scan() {
				if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
					events++
					if !json.Valid([]byte(data)) {
						t.Fatalf("event data is not JSON: %q", data)
					}
				}
			}
			if events < 4 {
				t.Fatalf("stream of %d events", events)
			}
		case rec.Code == 200:
			var m struct {
				Type    string            `json:"type"`
				Content []json.RawMessage `json:"content"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || m.Type != "message" || m.Content == nil {
				t.Fatalf("200 body %q (%v)", rec.Body, err)
			}
		default:
			var e errorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" || ct != "application/json" {
				t.Fatalf("%d body %q (%v)", rec.Code, rec.Body, err)
			}
			if rec.Code != 400 && rec.Code != 404 {
				t.Fatalf("status %d for %q", rec.Code, body)
			}
		}
	})
}

func TestDirectives(t *testing.T) {
	tests := []struct {
		text string
		want []string // name + " " + input
	}{
		{"no directive", nil},
		{"[[tool a]]", []string{"a {}"}},
		{`x [[tool a {"k": [1, 2]}]] y [[tool b]]`, []string{`a {"k":[1,2]}`, "b {}"}},
		{`[[tool a {"s": "]] and [[tool b]]"}]]`, []string{`a {"s":"]] and [[tool b]]"}`}},
		{`[[tool a {"broken": }]] [[tool b]]`, []string{"b {}"}},
		{`[[tool a {} trailing]]`, nil},
		{`[[tool ]] [[tool a`, nil},
		{"[[tool a\n{\"k\":1}\n]]", []string{`a {"k":1}`}},
	}
	for _, tc := range tests {
		t.Run(tc.text, func(t *testing.T) {
			var got []string
			for _, d := range parseDirectives(tc.text) {
				got = append(got, d.name+" "+string(d.input))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSignature(t *testing.T) {
	key := []byte("k")
	prefix := make([]byte, 32)
	sig := sign(key, "full reasoning", "", prefix)
	for _, tc := range []struct {
		key        []byte
		shown, sig string
		want       bool
	}{
		{key, "", sig, true},
		{key, "full reasoning", sig, false},
		{[]byte("other"), "", sig, false},
		{key, "", sig[:len(sig)-4], false},
		{key, "", "", false},
		{key, "", "!!!", false},
		{key, "", sign(key, "x", "x", prefix), false},
	} {
		if _, _, got := verify(tc.key, tc.shown, tc.sig); got != tc.want {
			t.Errorf("verify(%q, %q, %q) = %v, want %v", tc.key, tc.shown, tc.sig, got, tc.want)
		}
	}
}

package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

// newServer wires the real pieces: simulator over HTTP, Claude client,
// file store, agent and the API handler.
func newServer(t *testing.T, simCfg claudesim.Config) string {
	t.Helper()
	return stacktest.Start(t, stacktest.Options{Sim: simCfg, Retry: retry.Policy{Attempts: 1}, HTTP: httpapi.Config{MaxBodyBytes: 1024}}).URL
}

type reply struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, srv string, method, path, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i]) // "" removes a default, such as Content-Type
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// errType decodes a JSON error body's type, failing if it is not one.
func errType(t *testing.T, r reply) string {
	t.Helper()
	var e struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error.Type == "" || e.Error.Message == "" {
		t.Fatalf("status %d body %q is not a JSON error (%v)", r.status, r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q", ct)
	}
	return e.Error.Type
}

func TestErrors(t *testing.T) {
	srv := newServer(t, claudesim.Config{})
	type errCase struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		typ                      string
	}
	tests := []errCase{
		{"bad json", "POST", "/agent", `{"session_id":`, nil, 400, "invalid_request"},
		{"not an object", "POST", "/agent", `["s1"]`, nil, 400, "invalid_request"},
		{"empty body", "POST", "/agent", ``, nil, 400, "invalid_request"},
		{"trailing data", "POST", "/agent", `{"session_id":"s","message":"m"}x`, nil, 400, "invalid_request"},
		{"wrong type", "POST", "/agent", `{"session_id":5,"message":"m"}`, nil, 400, "invalid_request"},
		{"missing session", "POST", "/agent", `{"message":"m"}`, nil, 400, "invalid_request"},
		{"empty message", "POST", "/agent", `{"session_id":"s","message":""}`, nil, 400, "invalid_request"},
		{"bad session id", "POST", "/agent", `{"session_id":"a b","message":"m"}`, nil, 400, "invalid_request"},
		{"bad id in path", "POST", "/v1/sessions/a%7Bb/turns", `{"message":"m"}`, nil, 400, "invalid_request"},
		{"too large", "POST", "/agent", `{"session_id":"s","message":"` + strings.Repeat("x", 2000) + `"}`, nil, 413, "request_too_large"},
		{"long idempotency key", "POST", "/agent", `{"session_id":"s","message":"m"}`, []string{"Idempotency-Key", strings.Repeat("k", 300)}, 400, "invalid_request"},
		{"wrong method", "GET", "/agent", ``, nil, 405, "method_not_allowed"},
		{"wrong method on session", "PUT", "/v1/sessions/s", ``, nil, 405, "method_not_allowed"},
		{"unknown path", "GET", "/nope", ``, nil, 404, "not_found"},
		{"unknown session", "GET", "/v1/sessions/ghost", ``, nil, 404, "not_found"},
	}
	// A JSON POST must say it is JSON (see #13): a web page can send
	// text/plain or a form cross-origin without asking first. curl -d's
	// form type, or none, passes only without a browser's Origin.
	body := `{"session_id":"s","message":"m"}`
	for _, ct := range []string{"text/plain", "text/plain; charset=utf-8", "multipart/form-data; boundary=b", "application/json; charset=latin1", "application/jsonp"} {
		tests = append(tests,
			errCase{"content type " + ct + " on /agent", "POST", "/agent", body, []string{"Content-Type", ct}, 415, "unsupported_media_type"},
			errCase{"content type " + ct + " on turns", "POST", "/v1/sessions/s/turns", `{"message":"m"}`, []string{"Content-Type", ct}, 415, "unsupported_media_type"})
	}
	for _, ct := range []string{"", "application/x-www-form-urlencoded"} {
		browser := []string{"Content-Type", ct, "Origin", "http://attacker.example"}
		tests = append(tests,
			errCase{"browser content type " + ct + " on /agent", "POST", "/agent", body, browser, 415, "unsupported_media_type"},
			errCase{"browser content type " + ct + " on turns", "POST", "/v1/sessions/s/turns", `{"message":"m"}`, browser, 415, "unsupported_media_type"},
			errCase{"curl -d content type " + ct + " with a body that is not JSON", "POST", "/agent", "session_id=s&message=m", []string{"Content-Type", ct}, 400, "invalid_request"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, srv, tc.method, tc.path, tc.body, tc.hdr...)
			if r.status != tc.status {
				t.Fatalf("status = %d, want %d; body %s", r.status, tc.status, r.body)
			}
			if got := errType(t, r); got != tc.typ {
				t.Errorf("type = %q, want %q", got, tc.typ)
			}
		})
	}
}

func TestUpstreamErrors(t *testing.T) {
	tests := []struct {
		name       string
		sim        claudesim.Config
		status     int
		typ        string
		retryAfter bool
	}{
		{"rate limited", claudesim.Config{Rate429: 1}, 429, "rate_limited", true},
		{"overloaded", claudesim.Config{Rate529: 1}, 503, "upstream_overloaded", true},
		{"server error", claudesim.Config{Rate500: 1}, 502, "upstream_error", false},
		{"bad key", claudesim.Config{APIKey: "other"}, 502, "upstream_error", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newServer(t, tc.sim)
			r := do(t, srv, "POST", "/agent", `{"session_id":"s","message":"m"}`)
			if r.status != tc.status || errType(t, r) != tc.typ {
				t.Fatalf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.typ)
			}
			if tc.retryAfter && r.header.Get("Retry-After") == "" {
				t.Error("no Retry-After header")
			}
			if !strings.Contains(r.body, `"request_id":"req_`) {
				t.Errorf("body %s lacks the upstream request id", r.body)
			}
			// Nothing was saved.
			if g := do(t, srv, "GET", "/v1/sessions/s", ""); g.status != 404 {
				t.Errorf("after a failed turn GET = %d %s, want 404", g.status, g.body)
			}
		})
	}
}

func TestSessionLifecycle(t *testing.T) {
	srv := newServer(t, claudesim.Config{})
	r := do(t, srv, "POST", "/agent", `{"session_id":"s1","message":"hello","extra":"ignored"}`)
	if r.status != 200 {
		t.Fatalf("POST /agent = %d %s", r.status, r.body)
	}
	var ans struct {
		Response  string `json:"response"`
		SessionID string `json:"session_id"`
		Turn      int    `json:"turn"`
	}
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil || ans.SessionID != "s1" || ans.Turn != 1 || !strings.Contains(ans.Response, "hello") {
		t.Fatalf("answer %s (%v)", r.body, err)
	}
	r = do(t, srv, "POST", "/v1/sessions/s1/turns", `{"message":"second"}`, "Idempotency-Key", "k2")
	if r.status != 200 || !strings.Contains(r.body, `"turn":2`) {
		t.Fatalf("turn 2 = %d %s", r.status, r.body)
	}
	again := do(t, srv, "POST", "/v1/sessions/s1/turns", `{"message":"second"}`, "Idempotency-Key", "k2")
	if again.body != r.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("repeat = %q (replayed %q), want %q", again.body, again.header.Get("Idempotent-Replayed"), r.body)
	}
	if m := do(t, srv, "POST", "/v1/sessions/s1/turns", `{"message":"other"}`, "Idempotency-Key", "k2"); m.status != 422 {
		t.Errorf("reused key = %d %s, want 422", m.status, m.body)
	}
	g := do(t, srv, "GET", "/v1/sessions/s1", "")
	var view httpapi.SessionView
	if err := json.Unmarshal([]byte(g.body), &view); err != nil || g.status != 200 || view.Turns != 2 || len(view.Messages) != 4 {
		t.Fatalf("GET = %d %s (%v)", g.status, g.body, err)
	}
	if d := do(t, srv, "DELETE", "/v1/sessions/s1", ""); d.status != 204 {
		t.Fatalf("DELETE = %d %s", d.status, d.body)
	}
	if g := do(t, srv, "GET", "/v1/sessions/s1", ""); g.status != 404 {
		t.Fatalf("GET after DELETE = %d", g.status)
	}
	if h := do(t, srv, "GET", "/healthz", ""); h.status != 200 {
		t.Fatalf("healthz = %d", h.status)
	}
}

// TestCurlDefaults sends a turn the way the README's quick start did
// before it named a type (curl -d: application/x-www-form-urlencoded), and
// with no Content-Type at all: a command-line client's JSON body is a
// turn (see apierr.RequireJSON).
func TestCurlDefaults(t *testing.T) {
	srv := newServer(t, claudesim.Config{})
	for i, ct := range []string{"application/x-www-form-urlencoded", ""} {
		id := fmt.Sprintf("curl%d", i)
		r := do(t, srv, "POST", "/agent", `{"session_id":"`+id+`","message":"hello"}`, "Content-Type", ct)
		if r.status != 200 || !strings.Contains(r.body, "echo: hello") {
			t.Errorf("Content-Type %q: %d %s, want the turn's answer", ct, r.status, r.body)
		}
	}
}

// "history" in a turn's body chooses a new session's history strategy;
// an unknown one, or another than the session's, is a 400 (see #14).
func TestHistoryField(t *testing.T) {
	srv := newServer(t, claudesim.Config{})
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/agent", `{"session_id":"h","message":"hi","history":"window"}`, 200},
		{"POST", "/v1/sessions/h/turns", `{"message":"again","history":"window"}`, 200},
		{"POST", "/v1/sessions/h/turns", `{"message":"again"}`, 200},
		{"POST", "/v1/sessions/h/turns", `{"message":"again","history":"compact"}`, 400},
		{"POST", "/agent", `{"session_id":"n","message":"hi","history":"summarise"}`, 400},
	} {
		r := do(t, srv, tc.method, tc.path, tc.body)
		if r.status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.path, tc.body, r.status, r.body, tc.status)
		}
		if tc.status == 400 && errType(t, r) != "invalid_request" {
			t.Errorf("%s %s: error type %q", tc.path, tc.body, errType(t, r))
		}
	}
}

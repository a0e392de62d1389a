package ratelimit_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

const bearer = "Bearer secret"

func TestAdminRequests(t *testing.T) {
	addr := redistest.Start(t)
	_, url := startSim(t, claudesim.Config{})
	in := newInstance(t, addr, url, instanceConfig{})
	tests := []struct {
		name, method, path, body, auth string
		status                         int
		typ                            string
	}{
		{"no token", "POST", "/v1/admin/stop", `{"tenant":"acme"}`, "", 401, "unauthorized"},
		{"wrong token", "GET", "/v1/usage?tenant=acme", ``, "Bearer nope", 401, "unauthorized"},
		{"not bearer", "GET", "/v1/usage?tenant=acme", ``, "secret", 401, "unauthorized"},
		{"empty target", "POST", "/v1/admin/stop", `{}`, bearer, 400, "invalid_request"},
		{"bad tenant", "POST", "/v1/admin/stop", `{"tenant":"a/b"}`, bearer, 400, "invalid_request"},
		{"long tenant", "POST", "/v1/admin/stop", `{"tenant":"` + strings.Repeat("t", 65) + `"}`, bearer, 400, "invalid_request"},
		{"bad tenant of a session", "POST", "/v1/admin/stop", `{"tenant":"a:b","session_id":"s"}`, bearer, 400, "invalid_request"},
		{"usage bad tenant", "GET", "/v1/usage?tenant=%7Bx%7D&session_id=s", ``, bearer, 400, "invalid_request"},
		{"unknown field", "POST", "/v1/admin/stop", `{"user":"a"}`, bearer, 400, "invalid_request"},
		{"bad json", "POST", "/v1/admin/resume", `{"tenant":`, bearer, 400, "invalid_request"},
		{"trailing data", "POST", "/v1/admin/resume", `{"tenant":"a"} {}`, bearer, 400, "invalid_request"},
		{"bad session id", "POST", "/v1/admin/stop", `{"session_id":"a b"}`, bearer, 400, "invalid_request"},
		{"wrong method", "GET", "/v1/admin/stop", ``, bearer, 405, "method_not_allowed"},
		{"usage wrong method", "POST", "/v1/usage?tenant=a", ``, bearer, 405, "method_not_allowed"},
		{"usage without target", "GET", "/v1/usage", ``, bearer, 400, "invalid_request"},
		{"usage bad day", "GET", "/v1/usage?tenant=a&day=yesterday", ``, bearer, 400, "invalid_request"},
		{"unknown admin path", "GET", "/v1/admin/nope", ``, bearer, 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := send(t, tc.method, in.url+tc.path, tc.body, "Authorization", tc.auth)
			if r.status != tc.status || r.errType() != tc.typ {
				t.Errorf("got %d %v, want %d %s", r.status, r.body, tc.status, tc.typ)
			}
		})
	}
	// The kill switch takes JSON only (see #13): text/plain from anyone,
	// a form from a browser.
	for _, h := range [][]string{
		{"Content-Type", "text/plain"},
		{"Content-Type", "application/x-www-form-urlencoded", "Origin", "http://attacker.example"},
	} {
		ct := h[1]
		r := send(t, "POST", in.url+"/v1/admin/stop", `{"tenant":"acme"}`, append([]string{"Authorization", bearer}, h...)...)
		if r.status != 415 || r.errType() != "unsupported_media_type" {
			t.Errorf("Content-Type %s: got %d %v, want 415 unsupported_media_type", ct, r.status, r.body)
		}
	}
}

// TestAdminDisabled checks that without a token the admin endpoints do
// not exist.
func TestAdminDisabled(t *testing.T) {
	addr := redistest.Start(t)
	srv := httptest.NewServer(newLimiter(t, addr, ratelimit.Config{}).Admin("", quiet))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/v1/admin/stop", "/v1/usage?tenant=a"} {
		for _, auth := range []string{"", "Bearer ", bearer} {
			r := send(t, "POST", srv.URL+path, `{"tenant":"a"}`, "Authorization", auth)
			if r.status != http.StatusNotFound || r.errType() != "not_found" {
				t.Errorf("POST %s with %q: %d %v, want 404", path, auth, r.status, r.body)
			}
		}
	}
}

// TestAdminKillSwitch stops and resumes a session and a tenant over HTTP
// on one instance, and checks the effect on another.
func TestAdminKillSwitch(t *testing.T) {
	addr := redistest.Start(t)
	_, url := startSim(t, claudesim.Config{})
	cfg := ratelimit.Config{TenantBudget: ratelimit.Budget{USDPerDay: 5}}
	ops := newInstance(t, addr, url, instanceConfig{limits: cfg})
	in := newInstance(t, addr, url, instanceConfig{limits: cfg})
	turn := func(session, tenant string) httpReply {
		return post(t, in.url, "/agent", `{"session_id":"`+session+`","message":"hi"}`, "X-Tenant", tenant)
	}
	if r := turn("s1", "acme"); r.status != 200 {
		t.Fatalf("turn: %d %v", r.status, r.body)
	}

	r := post(t, ops.url, "/v1/admin/stop", `{"tenant":"acme","session_id":"s1"}`, "Authorization", bearer)
	if diff := cmp.Diff(map[string]any{"scope": "session", "id": "s1", "tenant": "acme", "stopped": true}, r.body); r.status != 200 || diff != "" {
		t.Fatalf("stop: %d (-want +got):\n%s", r.status, diff)
	}
	if r := turn("s1", "acme"); r.status != 403 || r.errType() != "stopped" {
		t.Errorf("stopped session: %d %v, want 403 stopped", r.status, r.body)
	}
	if r := turn("s2", "acme"); r.status != 200 {
		t.Errorf("other session: %d %v", r.status, r.body)
	}
	// Another tenant's (and the default tenant's) s1 is another session.
	if r := turn("s1", "other"); r.status != 200 {
		t.Errorf("other tenant's s1: %d %v", r.status, r.body)
	}
	if r := turn("s1", ""); r.status != 200 {
		t.Errorf("default tenant's s1: %d %v", r.status, r.body)
	}
	r = send(t, "GET", ops.url+"/v1/usage?tenant=acme&session_id=s1", "", "Authorization", bearer)
	if r.status != 200 || r.body["stopped"] != true || r.body["model_calls"] != 1.0 || r.body["cost_usd"].(float64) <= 0 || r.body["budget"] != nil ||
		r.body["id"] != "s1" || r.body["tenant"] != "acme" {
		t.Errorf("session usage: %d %v", r.status, r.body)
	}
	r = send(t, "GET", ops.url+"/v1/usage?session_id=s1", "", "Authorization", bearer)
	if r.status != 200 || r.body["stopped"] != false || r.body["model_calls"] != 1.0 || r.body["tenant"] != "default" {
		t.Errorf("default tenant's session usage: %d %v", r.status, r.body)
	}
	// Stopping the default tenant's s1 leaves acme's as it is.
	if r := post(t, ops.url, "/v1/admin/resume", `{"session_id":"s1"}`, "Authorization", bearer); r.status != 200 || r.body["tenant"] != "default" {
		t.Errorf("resume of the default tenant's s1: %d %v", r.status, r.body)
	}
	if r := turn("s1", "acme"); r.status != 403 || r.errType() != "stopped" {
		t.Errorf("acme's s1 after resuming the default tenant's: %d %v, want 403 stopped", r.status, r.body)
	}
	if r := post(t, ops.url, "/v1/admin/resume", `{"tenant":"acme","session_id":"s1"}`, "Authorization", bearer); r.status != 200 || r.body["stopped"] != false {
		t.Errorf("resume: %d %v", r.status, r.body)
	}
	if r := turn("s1", "acme"); r.status != 200 {
		t.Errorf("resumed session: %d %v", r.status, r.body)
	}

	if r := post(t, ops.url, "/v1/admin/stop", `{"tenant":"acme"}`, "Authorization", bearer); r.status != 200 {
		t.Fatalf("stop tenant: %d %v", r.status, r.body)
	}
	if r := turn("s3", "acme"); r.status != 403 || r.errType() != "stopped" {
		t.Errorf("stopped tenant: %d %v, want 403 stopped", r.status, r.body)
	}
	if r := turn("s3", "other"); r.status != 200 {
		t.Errorf("other tenant: %d %v", r.status, r.body)
	}
	r = send(t, "GET", ops.url+"/v1/usage?tenant=acme", "", "Authorization", bearer)
	want := map[string]any{"usd_per_day": 5.0}
	if r.status != 200 || r.body["stopped"] != true || r.body["model_calls"] != 3.0 || !cmp.Equal(r.body["budget"], want) || r.body["scope"] != "tenant" || r.body["tenant"] != "acme" {
		t.Errorf("tenant usage: %d %v", r.status, r.body)
	}
	r = send(t, "GET", ops.url+"/v1/usage?tenant=acme&day=2000-01-01", "", "Authorization", bearer)
	if r.status != 200 || r.body["model_calls"] != 0.0 || r.body["day"] != "2000-01-01" {
		t.Errorf("usage of a day long past: %d %v", r.status, r.body)
	}
}

package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

// TestCatalogEndpoints drives the read endpoints of #18 on the real
// stack (simulator, agent, file store): the session list (newest first,
// paged, by prefix, per tenant), a session's turn records and pin, the
// usage per day (a tenant's own, or every tenant's with the admin
// token), the tools, and their errors.
func TestCatalogEndpoints(t *testing.T) {
	srv := stacktest.Start(t, stacktest.Options{Retry: retry.Policy{Attempts: 1}, HTTP: httpapi.Config{
		TenantHeader: "X-Tenant", AdminToken: "admin-secret",
		Tools: func() []httpapi.ToolServer {
			return []httpapi.ToolServer{{Name: "everything", Type: "stdio", State: "connected", Tools: []httpapi.ToolInfo{{Name: "echo", InputSchema: json.RawMessage(`{"type":"object"}`)}}}}
		},
	}}).URL
	for _, id := range []string{"s1", "s2", "x1"} {
		if r := do(t, srv, "POST", "/agent", `{"session_id":"`+id+`","message":"hello"}`); r.status != 200 {
			t.Fatalf("turn of %s: %d %s", id, r.status, r.body)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if r := do(t, srv, "POST", "/agent", `{"session_id":"s1","message":"again"}`); r.status != 200 {
		t.Fatalf("second turn: %d %s", r.status, r.body)
	}
	if r := do(t, srv, "POST", "/agent", `{"session_id":"other","message":"hi"}`, "X-Tenant", "acme"); r.status != 200 {
		t.Fatalf("acme's turn: %d %s", r.status, r.body)
	}

	list := func(path string, hdr ...string) httpapi.SessionList {
		t.Helper()
		r := do(t, srv, "GET", path, "", hdr...)
		var l httpapi.SessionList
		if err := json.Unmarshal([]byte(r.body), &l); r.status != 200 || err != nil {
			t.Fatalf("GET %s = %d %s (%v)", path, r.status, r.body, err)
		}
		return l
	}
	ids := func(l httpapi.SessionList) []string {
		var out []string
		for _, s := range l.Sessions {
			out = append(out, s.SessionID)
		}
		return out
	}
	p1 := list("/v1/sessions?limit=2")
	if diff := cmp.Diff([]string{"x1", "s2"}, ids(p1)); diff != "" || p1.NextCursor == "" {
		t.Fatalf("page 1 (-want +got):\n%s next %q", diff, p1.NextCursor)
	}
	p2 := list("/v1/sessions?limit=2&cursor=" + p1.NextCursor)
	if diff := cmp.Diff([]string{"s1"}, ids(p2)); diff != "" || p2.NextCursor != "" {
		t.Fatalf("page 2 (-want +got):\n%s next %q", diff, p2.NextCursor)
	}
	if s := p2.Sessions[0]; s.Turns != 2 || s.Counters["input_tokens"] == 0 || s.CostUSD <= 0 {
		t.Errorf("summary of s1 = %+v; want 2 turns, tokens and a cost", s)
	}
	if diff := cmp.Diff([]string{"s2", "s1"}, ids(list("/v1/sessions?prefix=s"))); diff != "" {
		t.Errorf("prefix s (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"other"}, ids(list("/v1/sessions", "X-Tenant", "acme"))); diff != "" {
		t.Errorf("acme's sessions (-want +got):\n%s", diff)
	}
	// The admin token reads another tenant's sessions, and writes nothing.
	if diff := cmp.Diff([]string{"other"}, ids(list("/v1/sessions?tenant=acme", "Authorization", "Bearer admin-secret"))); diff != "" {
		t.Errorf("acme's sessions for the admin (-want +got):\n%s", diff)
	}

	// A session: messages, the turn records, the pin.
	r := do(t, srv, "GET", "/v1/sessions/s1", "")
	var view struct {
		httpapi.SessionView
		Records []struct {
			Turn      int64  `json:"turn"`
			From      int64  `json:"from"`
			To        int64  `json:"to"`
			RequestID string `json:"request_id"`
			Usage     struct {
				InputTokens  int64   `json:"input_tokens"`
				OutputTokens int64   `json:"output_tokens"`
				CostUSD      float64 `json:"cost_usd"`
			} `json:"usage"`
			LatencyMS map[string]int64 `json:"latency_ms"`
		} `json:"records"`
	}
	if err := json.Unmarshal([]byte(r.body), &view); r.status != 200 || err != nil {
		t.Fatalf("GET session = %d %s (%v)", r.status, r.body, err)
	}
	if len(view.Records) != 2 || len(view.Messages) != 4 {
		t.Fatalf("session s1 has %d records and %d messages; want 2 and 4: %s", len(view.Records), len(view.Messages), r.body)
	}
	for i, rec := range view.Records {
		if rec.Turn != int64(i+1) || rec.From != int64(2*i) || rec.To != int64(2*i+2) || !strings.HasPrefix(rec.RequestID, "req_") ||
			rec.Usage.InputTokens == 0 || rec.Usage.OutputTokens == 0 || rec.Usage.CostUSD <= 0 {
			t.Errorf("record %d = %+v", i, rec)
		}
		for _, k := range []string{"model", "store", "tools", "total"} {
			if _, ok := rec.LatencyMS[k]; !ok {
				t.Errorf("record %d has no latency_ms.%s", i, k)
			}
		}
	}
	if view.CostUSD <= 0 || !json.Valid(view.Pinned) {
		t.Errorf("cost %v pinned %s; want a cost and the pin", view.CostUSD, view.Pinned)
	}

	// Usage: the caller's tenant only, or every tenant for the admin.
	usage := func(hdr ...string) []string {
		t.Helper()
		today := time.Now().UTC().Format(time.DateOnly)
		r := do(t, srv, "GET", "/v1/usage?from="+today+"&to="+today, "", hdr...)
		var rep httpapi.UsageReport
		if err := json.Unmarshal([]byte(r.body), &rep); r.status != 200 || err != nil {
			t.Fatalf("GET /v1/usage = %d %s (%v)", r.status, r.body, err)
		}
		var out []string
		for _, d := range rep.Days {
			if d.Date != time.Now().UTC().Format(time.DateOnly) || d.Counters["input_tokens"] == 0 || d.CostUSD <= 0 {
				t.Errorf("usage row %+v", d)
			}
			out = append(out, d.Tenant)
		}
		return out
	}
	if diff := cmp.Diff([]string{"default"}, usage()); diff != "" {
		t.Errorf("usage of the default tenant (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"acme", "default"}, usage("Authorization", "Bearer admin-secret")); diff != "" {
		t.Errorf("usage for the admin (-want +got):\n%s", diff)
	}

	r = do(t, srv, "GET", "/v1/tools", "")
	if r.status != 200 || !strings.Contains(r.body, `"name":"everything"`) || !strings.Contains(r.body, `"input_schema":{"type":"object"}`) {
		t.Errorf("GET /v1/tools = %d %s", r.status, r.body)
	}

	// Delete leaves the list.
	if d := do(t, srv, "DELETE", "/v1/sessions/s2", ""); d.status != 204 {
		t.Fatalf("DELETE = %d %s", d.status, d.body)
	}
	if diff := cmp.Diff([]string{"x1", "s1"}, ids(list("/v1/sessions"))); diff != "" {
		t.Errorf("after DELETE (-want +got):\n%s", diff)
	}

	for _, tc := range []struct{ name, path string }{
		{"limit zero", "/v1/sessions?limit=0"},
		{"limit too large", "/v1/sessions?limit=1000"},
		{"limit not a number", "/v1/sessions?limit=x"},
		{"bad cursor", "/v1/sessions?cursor=zz"},
		{"bad prefix", "/v1/sessions?prefix=a%20b"},
		{"bad date", "/v1/usage?from=yesterday&to=2026-01-01"},
		{"no from", "/v1/usage?to=2026-01-01"},
		{"no to", "/v1/usage?from=2026-01-01"},
		{"from after to", "/v1/usage?from=2026-02-01&to=2026-01-01"},
		{"too many days", "/v1/usage?from=2020-01-01&to=2026-01-01"},
		{"admin bad tenant", "/v1/usage?tenant=a%2Fb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, srv, "GET", tc.path, "", "Authorization", "Bearer admin-secret")
			if r.status != 400 || errType(t, r) != "invalid_request" {
				t.Errorf("GET %s = %d %s; want 400 invalid_request", tc.path, r.status, r.body)
			}
		})
	}
	if r := do(t, srv, "POST", "/v1/sessions", `{}`); r.status != 405 {
		t.Errorf("POST /v1/sessions = %d; want 405", r.status)
	}
}

// TestUsageBesideLimiter checks that GET /v1/usage keeps serving the rate
// limiter's queries (no from and to) when it has the path, and the
// catalog's days otherwise.
func TestUsageBesideLimiter(t *testing.T) {
	limiter := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "limiter") })
	srv := stacktest.Start(t, stacktest.Options{HTTP: httpapi.Config{Public: map[string]http.Handler{httpapi.UsagePath: limiter}}}).URL
	for _, tc := range []struct {
		query, want string
	}{
		{"?tenant=acme", "limiter"},
		{"?session_id=s1", "limiter"},
		{"?tenant=acme&session_id=s1", "limiter"},
		{"", "limiter"},
		{"?from=2026-01-01&to=2026-01-02", `"days":[]`},
		{"?tenant=acme&from=2026-01-01&to=2026-01-02", `"days":[]`},
	} {
		if r := do(t, srv, "GET", "/v1/usage"+tc.query, ""); r.status != 200 || !strings.Contains(r.body, tc.want) {
			t.Errorf("GET /v1/usage%s = %d %s; want %s", tc.query, r.status, r.body, tc.want)
		}
	}
}

// TestWhoami: GET /v1/whoami says the caller's tenant and whether it is
// the admin token, which is what the console's tenant picker needs.
func TestWhoami(t *testing.T) {
	srv := stacktest.Start(t, stacktest.Options{HTTP: httpapi.Config{TenantHeader: "X-Tenant", AdminToken: "admin-secret"}}).URL
	who := func(path string, hdr ...string) httpapi.Whoami {
		t.Helper()
		r := do(t, srv, "GET", path, "", hdr...)
		var w httpapi.Whoami
		if err := json.Unmarshal([]byte(r.body), &w); r.status != 200 || err != nil {
			t.Fatalf("GET %s = %d %s (%v)", path, r.status, r.body, err)
		}
		return w
	}
	if w := who("/v1/whoami", "X-Tenant", "acme"); w.Tenant != "acme" || w.Admin || w.Method == "admin" || w.Method == "" {
		t.Errorf("acme = %+v", w)
	}
	if w := who("/v1/whoami", "Authorization", "Bearer admin-secret"); w.Tenant != "default" || !w.Admin || w.Method != "admin" {
		t.Errorf("admin = %+v", w)
	}
	if w := who("/v1/whoami?tenant=acme", "Authorization", "Bearer admin-secret"); w.Tenant != "acme" || !w.Admin {
		t.Errorf("admin on acme = %+v", w)
	}
	// ?tenant= is the admin's: another caller stays in its own tenant.
	if w := who("/v1/whoami?tenant=acme", "X-Tenant", "zeta"); w.Tenant != "zeta" || w.Admin {
		t.Errorf("zeta asking for acme = %+v", w)
	}
	if r := do(t, srv, "GET", "/v1/whoami?tenant=bad/tenant", "", "Authorization", "Bearer admin-secret"); r.status != http.StatusBadRequest || !strings.Contains(r.body, `"error"`) {
		t.Errorf("bad tenant: %d %s", r.status, r.body)
	}
	if r := do(t, srv, "POST", "/v1/whoami", "{}", "X-Tenant", "acme"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d %s", r.status, r.body)
	}
}

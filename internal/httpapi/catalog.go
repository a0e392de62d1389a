package httpapi

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/session"
)

// The read endpoints a browsing client needs (the console, see #18):
//
//	GET /v1/sessions          the caller's sessions, newest first, paged
//	GET /v1/sessions/{id}     a session with its turn records and pin
//	GET /v1/tools             the MCP servers, their state and tools
//	GET /v1/usage             tokens and cost per day
//	GET /v1/whoami            the caller's tenant, and whether it is the admin
//
// The admin token (Config.AdminToken) reads across tenants: every
// tenant's usage, and another tenant's sessions with ?tenant=. It writes
// nothing: DELETE and turns take an API key, as ever.

// ToolServer describes one MCP server for GET /v1/tools.
type ToolServer struct {
	Name string `json:"name"`
	// Type is the transport: "stdio", "http" or "inprocess".
	Type string `json:"type"`
	// State is "connected" or "down".
	State string     `json:"state"`
	Tools []ToolInfo `json:"tools"`
}

// ToolInfo is one tool as Claude sees it.
type ToolInfo struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

// ToolServers lists the deployment's MCP servers, for GET /v1/tools.
type ToolServers func() []ToolServer

// SessionSummary is one session of GET /v1/sessions.
type SessionSummary struct {
	SessionID string           `json:"session_id"`
	Created   time.Time        `json:"created"`
	Turns     int64            `json:"turns"`
	Counters  map[string]int64 `json:"counters,omitempty"`
	CostUSD   float64          `json:"cost_usd"`
}

// SessionList is the body of GET /v1/sessions.
type SessionList struct {
	Sessions []SessionSummary `json:"sessions"`
	// NextCursor, when set, is the cursor= of the next page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// UsageRow is one tenant's sums of one day in GET /v1/usage.
type UsageRow struct {
	Date     string           `json:"date"`
	Tenant   string           `json:"tenant"`
	Counters map[string]int64 `json:"counters"`
	CostUSD  float64          `json:"cost_usd"`
}

// UsageReport is the body of GET /v1/usage.
type UsageReport struct {
	From string     `json:"from"`
	To   string     `json:"to"`
	Days []UsageRow `json:"days"`
}

// costUSD reads the cost counter (micro-dollars, see the agent).
func costUSD(c map[string]int64) float64 { return float64(c["cost_micro_usd"]) / 1e6 }

type adminKey struct{}

// isAdmin reports whether the request carries the admin token.
func (h *handler) isAdmin(r *http.Request) bool {
	if h.adminToken == "" {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	want := sha256.Sum256([]byte(h.adminToken))
	sum := sha256.Sum256([]byte(got))
	return ok && len(r.Header.Values("Authorization")) == 1 && subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// readable serves f to the admin token as to any authenticated caller:
// for the admin, the tenant is ?tenant= (the default tenant without it)
// and the context says admin.
func (h *handler) readable(f http.HandlerFunc) http.HandlerFunc {
	authed := h.authenticated(f)
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || !h.isAdmin(r) {
			authed(w, r)
			return
		}
		tenant := r.URL.Query().Get("tenant")
		if tenant == "" {
			tenant = auth.DefaultTenant
		}
		if err := auth.ValidTenant(tenant); err != nil {
			h.writeError(w, r, badRequest("tenant: "+err.Error()))
			return
		}
		ctx := auth.WithPrincipal(r.Context(), auth.Principal{Tenant: tenant, Method: auth.MethodNone})
		ctx = context.WithValue(ctx, adminKey{}, r.URL.Query().Get("tenant") == "")
		f(w, r.WithContext(ctx))
	}
}

// Whoami is the body of GET /v1/whoami: who the server takes the
// caller for, so that a client (the console) offers the views that
// caller may use, such as a tenant picker for the admin token.
type Whoami struct {
	// Tenant owns what the caller reads and writes; for the admin token,
	// the ?tenant= it named (the default tenant without it).
	Tenant string `json:"tenant"`
	// Admin is true for the admin token: it reads every tenant and runs
	// no turn.
	Admin bool `json:"admin"`
	// Method is how the request was authenticated: "admin", or the
	// authenticator's ("key", "jwt", …; "none" with authentication off).
	Method string `json:"method"`
	// KeyID is the API key's public id, when the caller used one.
	KeyID string `json:"key_id,omitempty"`
}

func (h *handler) whoami(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	me := Whoami{Tenant: tenantOf(r), Method: string(p.Method), KeyID: p.KeyID}
	if h.isAdmin(r) {
		me = Whoami{Tenant: tenantOf(r), Admin: true, Method: "admin"}
	}
	writeJSON(w, http.StatusOK, me)
}

// allTenants reports whether the request is the admin's without
// ?tenant=: a view of every tenant.
func allTenants(r *http.Request) bool {
	all, _ := r.Context().Value(adminKey{}).(bool)
	return all
}

func sortRows(rows []UsageRow) {
	slices.SortFunc(rows, func(a, b UsageRow) int {
		return cmp.Or(strings.Compare(a.Date, b.Date), strings.Compare(a.Tenant, b.Tenant))
	})
}

func (h *handler) catalogOr404(w http.ResponseWriter, r *http.Request) bool {
	if h.catalog == nil {
		h.writeError(w, r, &apierr.Error{Kind: apierr.NotFound, Message: "this store keeps no catalog: " + r.URL.Path + " is not available"})
		return false
	}
	return true
}

func (h *handler) listSessions(w http.ResponseWriter, r *http.Request) {
	if !h.catalogOr404(w, r) {
		return
	}
	q := r.URL.Query()
	lq := session.ListQuery{Cursor: q.Get("cursor"), Prefix: q.Get("prefix")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > session.MaxListLimit {
			h.writeError(w, r, badRequest("limit must be a number from 1 to "+strconv.Itoa(session.MaxListLimit)))
			return
		}
		lq.Limit = n
	}
	if lq.Prefix != "" {
		if err := session.ValidID(lq.Prefix); err != nil {
			h.writeError(w, r, badRequest("prefix: "+strings.TrimPrefix(err.Error(), "session: invalid session id: ")))
			return
		}
	}
	page, err := h.catalog.List(r.Context(), tenantOf(r), lq)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := SessionList{Sessions: []SessionSummary{}, NextCursor: page.Next}
	for _, s := range page.Sessions {
		out.Sessions = append(out.Sessions, SessionSummary{SessionID: s.ID, Created: s.Created, Turns: s.Turns, Counters: s.Counters, CostUSD: costUSD(s.Counters)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *handler) tools(w http.ResponseWriter, r *http.Request) {
	servers := []ToolServer{}
	if h.toolServers != nil {
		servers = h.toolServers()
	}
	writeJSON(w, http.StatusOK, map[string]any{"servers": servers})
}

// UsagePath is the path of the usage per day.
const UsagePath = "/v1/usage"

// limiterQuery reports whether a GET /v1/usage is for the rate limiter's
// usage of the day (internal/ratelimit's admin API, ?tenant=…
// [&session_id=…]), which had the path first: one without from and to.
func limiterQuery(r *http.Request) bool {
	q := r.URL.Query()
	return !q.Has("from") && !q.Has("to")
}

// maxUsageDays bounds from..to of GET /v1/usage.
const maxUsageDays = 366

func (h *handler) usage(w http.ResponseWriter, r *http.Request) {
	if !h.catalogOr404(w, r) {
		return
	}
	q := r.URL.Query()
	day := func(name string) (time.Time, bool) {
		t, err := time.Parse(time.DateOnly, q.Get(name))
		if err != nil {
			h.writeError(w, r, badRequest("from and to are required, dates as YYYY-MM-DD: "+name+" is not"))
			return t, false
		}
		return t, true
	}
	to, ok := day("to")
	if !ok {
		return
	}
	from, ok := day("from")
	if !ok {
		return
	}
	if from.After(to) || to.Sub(from) >= maxUsageDays*24*time.Hour {
		h.writeError(w, r, badRequest("from must be on or before to, at most "+strconv.Itoa(maxUsageDays)+" days apart"))
		return
	}
	days, err := h.catalog.Usage(r.Context(), from, to)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	all := allTenants(r)
	tenant := tenantOf(r)
	rep := UsageReport{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Days: []UsageRow{}}
	for _, d := range days {
		for t, c := range d.Tenants {
			if !all && t != tenant {
				continue
			}
			rep.Days = append(rep.Days, UsageRow{Date: d.Day.Format(time.DateOnly), Tenant: t, Counters: c, CostUSD: costUSD(c)})
		}
	}
	sortRows(rep.Days)
	writeJSON(w, http.StatusOK, rep)
}

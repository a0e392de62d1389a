package ratelimit

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/session"
)

// Admin paths, to mount on the API (httpapi.Config.Extra):
//
//	POST /v1/admin/stop    {"tenant":"acme"}, {"tenant":"acme","session_id":"s1"} or {"session_id":"s1"}
//	POST /v1/admin/resume  the same
//	GET  /v1/usage?tenant=acme[&day=2026-11-24], ?tenant=acme&session_id=s1 or ?session_id=s1
//
// A tenant alone names the tenant; a session id names a session of the
// tenant given with it, or of the default tenant when none is: sessions
// are namespaced by tenant (see #13), so tenant acme's s1 and the default
// tenant's s1 are two sessions with their own kill switch and usage.
const (
	AdminPath = "/v1/admin/"
	UsagePath = "/v1/usage"
)

// maxAdminBody bounds an admin request body.
const maxAdminBody = 4 << 10

// Admin returns the operators' HTTP handler for l: the kill switch (stop,
// resume) and the usage of a session or tenant on a day, with its budget
// and whether it is stopped. Every request must carry
// "Authorization: Bearer <token>" (401 otherwise). An empty token disables
// the handler: it answers 404 to everything, as if it were not mounted.
// Errors are JSON, {"error":{"type":…,"message":…}}, written by apierr like
// the API's.
func (l *Limiter) Admin(token string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.Default()
	}
	a := &admin{l: l, token: []byte(token), log: log, mux: http.NewServeMux()}
	a.mux.HandleFunc(AdminPath+"stop", a.only("POST", func(w http.ResponseWriter, r *http.Request) { a.kill(w, r, true) }))
	a.mux.HandleFunc(AdminPath+"resume", a.only("POST", func(w http.ResponseWriter, r *http.Request) { a.kill(w, r, false) }))
	a.mux.HandleFunc(UsagePath, a.only("GET", a.usage))
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, &apierr.Error{Kind: apierr.NotFound, Message: "no such endpoint: " + r.URL.Path})
	})
	return a
}

type admin struct {
	l     *Limiter
	token []byte
	log   *slog.Logger
	mux   *http.ServeMux
}

func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(a.token) == 0 {
		a.fail(w, r, &apierr.Error{Kind: apierr.NotFound, Message: "no such endpoint: " + r.URL.Path})
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(got), a.token) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lambdagent admin"`)
		a.fail(w, r, &apierr.Error{Kind: apierr.Unauthorized, Message: "a valid admin bearer token is required"})
		return
	}
	a.mux.ServeHTTP(w, r)
}

func (a *admin) only(method string, f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			a.fail(w, r, &apierr.Error{Kind: apierr.MethodNotAllowed, Message: r.Method + " is not allowed here; use " + method})
			return
		}
		f(w, r)
	}
}

// Target is the body of the stop and resume requests: a tenant, a
// session of the default tenant, or both (that tenant's session).
type Target struct {
	SessionID string `json:"session_id,omitempty"`
	Tenant    string `json:"tenant,omitempty"`
}

// KillSwitch is the answer of the stop and resume requests.
type KillSwitch struct {
	Scope Scope `json:"scope"`
	// ID is the session id (as the client knows it) or the tenant.
	ID string `json:"id"`
	// Tenant is the tenant: the session's, or ID itself.
	Tenant  string `json:"tenant"`
	Stopped bool   `json:"stopped"`
}

func (a *admin) kill(w http.ResponseWriter, r *http.Request, stop bool) {
	if e := apierr.RequireJSON(r); e != nil {
		a.fail(w, r, e)
		return
	}
	var t Target
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		a.fail(w, r, &apierr.Error{Kind: apierr.InvalidRequest, Message: "body must be {\"tenant\":…}, {\"session_id\":…} or both", Err: err})
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		a.fail(w, r, &apierr.Error{Kind: apierr.InvalidRequest, Message: "body must hold one JSON object"})
		return
	}
	scope, id, ok := a.target(w, r, t.SessionID, t.Tenant)
	if !ok {
		return
	}
	ks := KillSwitch{Scope: scope, ID: id, Tenant: id, Stopped: stop}
	if scope == ScopeSession {
		ks.Tenant, ks.ID = session.Unscope(id)
	}
	var err error
	if stop {
		err = a.l.Stop(r.Context(), scope, id)
	} else {
		err = a.l.Resume(r.Context(), scope, id)
	}
	if err != nil {
		a.redisFail(w, r, err)
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelWarn, "ratelimit: kill switch", slog.String("scope", string(scope)),
		slog.String("tenant", ks.Tenant), slog.String("id", ks.ID), slog.Bool("stopped", stop))
	writeJSON(w, http.StatusOK, ks)
}

// target checks the target of a request and returns its scope and id:
// ScopeTenant and the tenant when only a tenant is given, else
// ScopeSession and the session's store id (session.Scope of the tenant,
// the default tenant when none is given, and the session id).
func (a *admin) target(w http.ResponseWriter, r *http.Request, sessionID, tenant string) (Scope, string, bool) {
	if sessionID == "" && tenant == "" {
		a.fail(w, r, &apierr.Error{Kind: apierr.InvalidRequest, Message: "give a tenant, a session_id, or both"})
		return "", "", false
	}
	if tenant != "" {
		if err := auth.ValidTenant(tenant); err != nil {
			a.fail(w, r, apierr.From(fmt.Errorf("%w: %w", ErrInvalidKey, err)))
			return "", "", false
		}
	}
	if sessionID == "" {
		return ScopeTenant, tenant, true
	}
	if err := session.ValidID(sessionID); err != nil {
		a.fail(w, r, apierr.From(err))
		return "", "", false
	}
	return ScopeSession, session.Scope(tenant, sessionID), true
}

// UsageView is the answer of GET /v1/usage.
type UsageView struct {
	DayUsage
	// Budget is the daily budget of the scope; absent when none is set.
	Budget  *BudgetView `json:"budget,omitempty"`
	Stopped bool        `json:"stopped"`
}

// BudgetView is a daily budget; a zero field is no limit.
type BudgetView struct {
	TokensPerDay int64   `json:"tokens_per_day,omitempty"`
	USDPerDay    float64 `json:"usd_per_day,omitempty"`
}

func (a *admin) usage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	scope, id, ok := a.target(w, r, q.Get("session_id"), q.Get("tenant"))
	if !ok {
		return
	}
	t := a.l.now()
	if d := q.Get("day"); d != "" {
		var err error
		if t, err = time.Parse(time.DateOnly, d); err != nil {
			a.fail(w, r, &apierr.Error{Kind: apierr.InvalidRequest, Message: "day must be YYYY-MM-DD", Err: err})
			return
		}
	}
	u, err := a.l.Usage(r.Context(), scope, id, t) // u names the client's session id and its tenant
	if err != nil {
		a.redisFail(w, r, err)
		return
	}
	stopped, err := a.l.Stopped(r.Context(), scope, id)
	if err != nil {
		a.redisFail(w, r, err)
		return
	}
	b := a.l.cfg.TenantBudget
	if scope == ScopeSession {
		b = a.l.cfg.SessionBudget
	}
	v := UsageView{DayUsage: u, Stopped: stopped}
	if b != (Budget{}) {
		v.Budget = &BudgetView{TokensPerDay: b.TokensPerDay, USDPerDay: b.USDPerDay}
	}
	writeJSON(w, http.StatusOK, v)
}

func (a *admin) redisFail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrUnavailable) {
		a.fail(w, r, &apierr.Error{Kind: apierr.StoreUnavailable, Message: "the limiter's store is unavailable; retry", RetryAfter: time.Second, Err: err})
		return
	}
	a.fail(w, r, &apierr.Error{Kind: apierr.Canceled, Message: "the request was canceled", Err: err})
}

// fail answers e and logs it at its level, with its cause.
func (a *admin) fail(w http.ResponseWriter, r *http.Request, e *apierr.Error) {
	a.log.LogAttrs(r.Context(), e.LogLevel(), "admin request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", e.StatusCode()), slog.String("type", string(e.Kind)), slog.Any("err", e.Err))
	apierr.Write(w, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		apierr.Write(w, apierr.From(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(b)
	_, _ = w.Write([]byte{'\n'})
}

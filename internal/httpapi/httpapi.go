package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// DefaultMaxBodyBytes is the request body limit of a zero Config.
const DefaultMaxBodyBytes = 1 << 20

// IdempotencyKeyHeader makes a turn run at most once.
const IdempotencyKeyHeader = "Idempotency-Key"

// Turner runs turns; *agent.Agent is one.
type Turner interface {
	Run(ctx context.Context, req agent.Request) (*agent.Answer, error)
}

// Sessions reads and deletes sessions; session.Store is one.
type Sessions interface {
	Load(ctx context.Context, id string) (*session.State, error)
	Delete(ctx context.Context, id string) error
}

// Config tunes the handler. A zero field means its default.
type Config struct {
	// MaxBodyBytes limits request bodies (413 beyond). Zero means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Logger receives one line per failed request. Nil means slog.Default().
	Logger *slog.Logger
	// Auth says who each data-plane request acts for: its principal's
	// tenant owns the turn (agent.Request.Tenant) and the sessions read
	// and deleted (session.Scope). Nil means mode none: every request acts
	// for auth.DefaultTenant. lambdagent.New always sets one (#13).
	Auth *auth.Authenticator
	// TenantHeader, if set, names the request header whose value is the
	// tenant in mode none (a gateway in front authenticated the caller);
	// empty means every turn is the default tenant's. Any other mode
	// ignores it: the tenant comes from the credential, never a header.
	TenantHeader string
	// Extra, if set, serves data-plane paths the API does not know (such
	// as /mcp), after authentication like the API's own routes.
	Extra map[string]http.Handler
	// Workflows, if set, serves the workflow runs API: POST
	// /v1/workflows/{name}/runs and the /v1/runs routes (see #16).
	Workflows Workflows
	// Streams keeps the events of streamed turns (see #15), for GET
	// /v1/streams/{stream_id} on any process. Nil means turns do not
	// stream: a request asking for it gets the plain JSON answer.
	Streams stream.Log
	// Detached, if set, counts the streamed turns running on after their
	// request ended (the client hung up): their owner waits for them
	// before closing the store, so a shutdown does not cut them.
	Detached *sync.WaitGroup
	// ShowThinking sends Claude's thinking to streaming clients as
	// "thinking" events. Off by default: thinking is the operator's to
	// show.
	ShowThinking bool
	// Catalog, if set, serves GET /v1/sessions and /v1/usage and adds the
	// turn records to GET /v1/sessions/{id} (see catalog.go). Nil answers
	// those with 404.
	Catalog session.Catalog
	// Tools, if set, lists the MCP servers for GET /v1/tools; nil lists
	// none.
	Tools ToolServers
	// AdminToken, if set, lets its bearer read across tenants (GET only,
	// see catalog.go).
	AdminToken string
	// Public, if set, serves paths without the data-plane authentication:
	// operational endpoints (/metrics, /readyz, open or behind
	// [RequireToken]) and the admin API, which checks its own token.
	Public map[string]http.Handler
}

type handler struct {
	turns    Turner
	sessions Sessions
	maxBody  int64
	tenantH  string
	auth     *auth.Authenticator
	log      *slog.Logger
	mux      *http.ServeMux
	wf       Workflows
	// streams is Config.Streams; showThinking Config.ShowThinking.
	streams      stream.Log
	showThinking bool
	detached     *sync.WaitGroup // never nil

	catalog     session.Catalog
	toolServers ToolServers
	adminToken  string
}

// New returns the API handler.
func New(t Turner, s Sessions, cfg Config) (http.Handler, error) {
	if t == nil || s == nil {
		return nil, errors.New("httpapi: nil Turner or Sessions")
	}
	h := &handler{turns: t, sessions: s, maxBody: cfg.MaxBodyBytes, tenantH: cfg.TenantHeader, auth: cfg.Auth, log: cfg.Logger, mux: http.NewServeMux(),
		streams: cfg.Streams, showThinking: cfg.ShowThinking, detached: cfg.Detached,
		catalog: cfg.Catalog, toolServers: cfg.Tools, adminToken: cfg.AdminToken}
	if h.detached == nil {
		h.detached = new(sync.WaitGroup)
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	// Routes take every method and check it themselves so that a wrong
	// method gets a JSON 405, not ServeMux's text one. Authentication
	// comes first: a stranger learns nothing, not even the allowed method.
	h.mux.HandleFunc("/agent", h.authenticated(h.only("POST", h.postAgent)))
	h.mux.HandleFunc("/v1/sessions/{id}/turns", h.authenticated(h.only("POST", h.postTurn)))
	h.mux.HandleFunc("/v1/sessions/{id}", h.readable(h.session))
	h.mux.HandleFunc("/v1/sessions", h.readable(h.only("GET", h.listSessions)))
	h.mux.HandleFunc("/v1/tools", h.readable(h.only("GET", h.tools)))
	h.mux.HandleFunc("/v1/whoami", h.readable(h.only("GET", h.whoami)))
	usage := h.readable(h.only("GET", h.usage))
	limiter, ok := cfg.Public[UsagePath]
	if x, extra := cfg.Extra[UsagePath]; extra {
		limiter, ok = h.authenticated(x.ServeHTTP), true
	}
	if ok {
		// The limiter's GET /v1/usage?tenant=…[&session_id=…] (the day's
		// usage under the admin token) came first: its queries keep going
		// to it, the rest to the catalog's.
		catalog := usage
		usage = func(w http.ResponseWriter, r *http.Request) {
			if limiterQuery(r) {
				limiter.ServeHTTP(w, r)
				return
			}
			catalog(w, r)
		}
	}
	h.mux.HandleFunc(UsagePath, usage)
	if h.streams != nil {
		h.mux.HandleFunc("/v1/streams/{stream_id}", h.authenticated(h.only("GET", h.getStream)))
	}
	h.mux.HandleFunc("/healthz", h.only("GET", h.healthz))
	if cfg.Workflows != nil {
		h.routeWorkflows(cfg.Workflows)
	}
	for path, x := range cfg.Extra {
		if path == UsagePath {
			continue // routed above
		}
		h.mux.Handle(path, h.authenticated(x.ServeHTTP))
	}
	for path, x := range cfg.Public {
		if path == UsagePath {
			continue // routed above
		}
		h.mux.Handle(path, x)
	}
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, &apierr.Error{Kind: apierr.NotFound, Message: "no such endpoint: " + r.URL.Path})
	})
	return h, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil && v != http.ErrAbortHandler {
			h.writeError(w, r, fmt.Errorf("panic: %v", v))
		}
	}()
	h.mux.ServeHTTP(w, r)
}

func (h *handler) only(method string, f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			h.writeError(w, r, &apierr.Error{Kind: apierr.MethodNotAllowed, Message: r.Method + " is not allowed here; use " + method})
			return
		}
		f(w, r)
	}
}

// AgentRequest is the body of POST /agent, the seed article's shape.
type AgentRequest struct {
	SessionID string `json:"session_id"`
	Message   string `json:"message"`
	// History names the history strategy of a new session: full,
	// compact, clear_tool_uses or window (see agent.Request.History).
	History string `json:"history,omitempty"`
	// Stream asks for the answer as server-sent events, like Accept:
	// text/event-stream (see #15).
	Stream bool `json:"stream"`
}

func (h *handler) postAgent(w http.ResponseWriter, r *http.Request) {
	var req AgentRequest
	if err := h.decode(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	if req.SessionID == "" {
		h.writeError(w, r, badRequest("session_id is required"))
		return
	}
	h.turn(w, r, req.SessionID, req.Message, req.History, req.Stream)
}

func (h *handler) postTurn(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Message string `json:"message"`
		History string `json:"history,omitempty"`
		Stream  bool   `json:"stream"`
	}
	if err := h.decode(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	h.turn(w, r, r.PathValue("id"), req.Message, req.History, req.Stream)
}

func (h *handler) turn(w http.ResponseWriter, r *http.Request, id, msg, history string, streamed bool) {
	if err := session.ValidID(id); err != nil {
		h.writeError(w, r, err)
		return
	}
	if msg == "" {
		h.writeError(w, r, badRequest("message is required and must not be empty"))
		return
	}
	key := r.Header.Get(IdempotencyKeyHeader)
	if len(key) > 256 {
		h.writeError(w, r, badRequest(IdempotencyKeyHeader+" is longer than 256 bytes"))
		return
	}
	tenant := tenantOf(r)
	if tenant == auth.DefaultTenant {
		// The empty tenant is the default one everywhere (limits, store
		// ids, metrics); keep it empty so that a single-tenant deployment's
		// logs, spans and metric labels stay as they were.
		tenant = ""
	}
	req := agent.Request{SessionID: id, Message: msg, IdempotencyKey: key, Tenant: tenant, History: history}
	if h.streams != nil && wantsStream(r, streamed) {
		h.streamTurn(w, r, req)
		return
	}
	ans, err := h.turns.Run(r.Context(), req)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if ans.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeRaw(w, http.StatusOK, ans.JSON)
}

// SessionView is the body of GET /v1/sessions/{id}.
type SessionView struct {
	SessionID string            `json:"session_id"`
	Turns     int64             `json:"turns"`
	Version   int64             `json:"version"`
	Counters  map[string]int64  `json:"counters,omitempty"`
	CostUSD   float64           `json:"cost_usd"`
	Messages  []json.RawMessage `json:"messages"`
	// Records are the turn records (agent.Record: usage, cost, latency
	// split, upstream request id, the turn's messages), oldest first,
	// when the store keeps a catalog.
	Records []json.RawMessage `json:"records,omitempty"`
	// Pinned is the system prompt and tools the session pinned at its
	// first turn ({"system":…,"tools":[…]}), when it pinned any.
	Pinned json.RawMessage `json:"pinned,omitempty"`
}

func (h *handler) session(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := session.ValidID(id); err != nil {
		h.writeError(w, r, err)
		return
	}
	// The store id is the caller's tenant's: another tenant's session of
	// the same id is not found, never forbidden (#13).
	storeID := session.Scope(tenantOf(r), id)
	switch r.Method {
	case http.MethodGet:
		st, err := h.sessions.Load(r.Context(), storeID)
		if err != nil {
			h.writeError(w, r, err)
			return
		}
		if st.Version == 0 && st.Turns == 0 {
			h.writeError(w, r, &apierr.Error{Kind: apierr.NotFound, Message: "no session " + id})
			return
		}
		view := SessionView{SessionID: id, Turns: st.Turns, Version: st.Version, Counters: st.Counters, CostUSD: costUSD(st.Counters), Messages: st.Messages}
		if json.Valid(st.Pinned) {
			view.Pinned = st.Pinned
		}
		if h.catalog != nil {
			if view.Records, err = h.catalog.Records(r.Context(), storeID); err != nil {
				h.writeError(w, r, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, view)
	case http.MethodDelete:
		if err := h.sessions.Delete(r.Context(), storeID); err != nil {
			h.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, DELETE")
		h.writeError(w, r, &apierr.Error{Kind: apierr.MethodNotAllowed, Message: r.Method + " is not allowed here; use GET or DELETE"})
	}
}

func (h *handler) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "time": time.Now().UTC().Format(time.RFC3339)})
}

func badRequest(msg string) *apierr.Error {
	return &apierr.Error{Kind: apierr.InvalidRequest, Message: msg}
}

// decode reads a JSON object body into v, within the size limit. The body
// must come as Content-Type application/json (415 otherwise, see
// apierr.RequireJSON). Unknown fields are allowed (callers such as SQS
// producers may add their own).
func (h *handler) decode(w http.ResponseWriter, r *http.Request, v any) error {
	if e := apierr.RequireJSON(r); e != nil {
		return e
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		// The cause (a read timeout, a reset) is the server's business;
		// the log has it.
		return &apierr.Error{Kind: apierr.InvalidRequest, Message: "the request body could not be read in full (too slow, or cut short)", Err: err}
	}
	return DecodeJSON(body, v)
}

// DecodeJSON decodes exactly one JSON object from body into v, with a
// message fit for the client on failure.
func DecodeJSON(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return badRequest("request body is empty; send a JSON object")
	}
	if body[0] != '{' {
		return badRequest("request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest(fmt.Sprintf("field %q must be a %s", te.Field, te.Type))
		}
		return badRequest("invalid JSON: " + err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid JSON: data after the object")
	}
	return nil
}

// tenantOf is the tenant of an authenticated request.
func tenantOf(r *http.Request) string {
	if p, ok := auth.PrincipalFrom(r.Context()); ok {
		return p.Tenant
	}
	return auth.DefaultTenant // unreachable: every data-plane route is authenticated
}

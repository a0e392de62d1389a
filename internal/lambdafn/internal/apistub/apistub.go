// Package apistub stands in for lambdagent's HTTP API in lambdafn's tests:
// the same routes, Idempotency-Key and JSON error shape, with turns that
// echo the message and count how often each ran. lambdafn takes any
// http.Handler; this one lets its tests see exactly what a request became.
//
// A turn's message steers it: "slow" waits for the request's context to
// end and answers 504; "busy" answers 409 with Retry-After: 1; "fail"
// answers 503; "panic" panics; "sleep:<duration> <text>" sleeps first
// (and answers 504 if the context ends meanwhile). Two turns of one
// session at once get 409, as with the real lease.
package apistub

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// API is the stand-in handler. It is safe for concurrent use.
type API struct {
	mux *http.ServeMux

	mu sync.Mutex
	// guarded by mu
	answers  map[string][]byte   // idempotency key → stored answer
	runs     map[string]int      // idempotency key → turns run
	messages map[string][]string // session → messages of its turns, in order
	inflight map[string]bool     // session → a turn is running
}

// New returns an empty API.
func New() *API {
	a := &API{
		mux:      http.NewServeMux(),
		answers:  map[string][]byte{},
		runs:     map[string]int{},
		messages: map[string][]string{},
		inflight: map[string]bool{},
	}
	a.mux.HandleFunc("POST /agent", a.agent)
	a.mux.HandleFunc("GET /v1/sessions/{id}", a.session)
	a.mux.HandleFunc("GET /runs", a.runsHandler)
	a.mux.HandleFunc("/echo/{rest...}", echo)
	a.mux.HandleFunc("GET /binary", binary)
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// Runs reports how many times the turn under an idempotency key ran.
func (a *API) Runs(key string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runs[key]
}

// Messages returns the messages of a session's completed turns, in order.
func (a *API) Messages(session string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.messages[session])
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

func (a *API) agent(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SessionID string `json:"session_id"`
		Message   string `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		apierr.Write(w, &apierr.Error{Kind: apierr.InvalidRequest, Message: "invalid JSON: " + err.Error()})
		return
	}
	if req.SessionID == "" || req.Message == "" {
		apierr.Write(w, &apierr.Error{Kind: apierr.InvalidRequest, Message: "session_id and message are required"})
		return
	}
	key := r.Header.Get("Idempotency-Key")
	a.mu.Lock()
	if ans, ok := a.answers[key]; ok && key != "" {
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Idempotent-Replayed", "true")
		_, _ = w.Write(ans)
		return
	}
	if a.inflight[req.SessionID] {
		a.mu.Unlock()
		apierr.Write(w, &apierr.Error{Kind: apierr.SessionBusy, Message: "another turn of this session is in progress; retry later", RetryAfter: time.Second})
		return
	}
	a.inflight[req.SessionID] = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.inflight, req.SessionID)
		a.mu.Unlock()
	}()

	msg := req.Message
	if d, ok := strings.CutPrefix(msg, "sleep:"); ok {
		d, _, _ = strings.Cut(d, " ")
		dur, _ := time.ParseDuration(d)
		select {
		case <-time.After(dur):
		case <-r.Context().Done():
			apierr.Write(w, &apierr.Error{Kind: apierr.Timeout, Message: "the turn did not finish in time; nothing was saved, retry"})
			return
		}
	}
	switch msg {
	case "slow":
		<-r.Context().Done()
		apierr.Write(w, &apierr.Error{Kind: apierr.Timeout, Message: "the turn did not finish in time; nothing was saved, retry"})
		return
	case "busy":
		apierr.Write(w, &apierr.Error{Kind: apierr.SessionBusy, Message: "another turn of this session is in progress; retry later", RetryAfter: time.Second})
		return
	case "fail":
		apierr.Write(w, &apierr.Error{Kind: apierr.StoreUnavailable, Message: "the session store is unavailable; nothing was saved, retry"})
		return
	case "panic":
		panic("apistub: asked to panic")
	}
	ans, _ := json.Marshal(map[string]string{"response": "echo: " + msg, "session_id": req.SessionID})
	ans = append(ans, '\n')
	a.mu.Lock()
	a.runs[key]++
	a.messages[req.SessionID] = append(a.messages[req.SessionID], msg)
	if key != "" {
		a.answers[key] = ans
	}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(ans)
}

func (a *API) session(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	msgs := a.Messages(id)
	if len(msgs) == 0 {
		apierr.Write(w, &apierr.Error{Kind: apierr.NotFound, Message: "no session " + id})
		return
	}
	writeJSON(w, 200, map[string]any{"session_id": id, "turns": len(msgs), "messages": msgs})
}

func (a *API) runsHandler(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	runs := make(map[string]int, len(a.runs))
	for k, v := range a.runs {
		runs[k] = v
	}
	a.mu.Unlock()
	writeJSON(w, 200, runs)
}

// Echo is what /echo/… answers: the request as the handler saw it.
type Echo struct {
	Method        string              `json:"method"`
	Path          string              `json:"path"`
	EscapedPath   string              `json:"escaped_path"`
	Rest          string              `json:"rest"`
	Query         map[string][]string `json:"query"`
	Header        map[string][]string `json:"header"`
	Cookies       []string            `json:"cookies"`
	Host          string              `json:"host"`
	RemoteAddr    string              `json:"remote_addr"`
	RequestURI    string              `json:"request_uri"`
	ContentLength int64               `json:"content_length"`
	Body          string              `json:"body"` // base64
	HasDeadline   bool                `json:"has_deadline"`
}

func echo(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		apierr.Write(w, &apierr.Error{Kind: apierr.InvalidRequest, Message: err.Error()})
		return
	}
	e := Echo{
		Method: r.Method, Path: r.URL.Path, EscapedPath: r.URL.EscapedPath(), Rest: r.PathValue("rest"),
		Query: r.URL.Query(), Header: r.Header, Host: r.Host, RemoteAddr: r.RemoteAddr,
		RequestURI: r.RequestURI, ContentLength: r.ContentLength, Body: base64.StdEncoding.EncodeToString(body),
	}
	_, e.HasDeadline = r.Context().Deadline()
	for _, c := range r.Cookies() {
		e.Cookies = append(e.Cookies, fmt.Sprintf("%s=%s", c.Name, c.Value))
	}
	w.Header().Add("Set-Cookie", "a=1; Path=/")
	w.Header().Add("Set-Cookie", "b=2; Path=/")
	w.Header().Add("X-Multi", "one")
	w.Header().Add("X-Multi", "two")
	writeJSON(w, http.StatusOK, e)
}

// binary answers every byte value once, as image/png.
func binary(w http.ResponseWriter, r *http.Request) {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	w.Header().Set("Content-Type", "image/png")
	_, _ = w.Write(b)
}

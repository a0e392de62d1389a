package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/workflow"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
)

// Workflows starts and reads workflow runs; *engine.Engine is one. Every
// call names the caller's tenant: a run of another tenant is not found.
type Workflows interface {
	Definitions() []*workflow.Definition
	Start(ctx context.Context, tenant, name string, input json.RawMessage, idempotencyKey string) (engine.Run, bool, error)
	Get(ctx context.Context, tenant, id string) (*engine.Snapshot, error)
	List(ctx context.Context, tenant, workflow, status string, limit int) ([]engine.Run, error)
	Signal(ctx context.Context, tenant, id, event string, body json.RawMessage) error
	Cancel(ctx context.Context, tenant, id string) error
}

// routeWorkflows adds the workflow routes (see #16).
func (h *handler) routeWorkflows(wf Workflows) {
	h.wf = wf
	h.mux.HandleFunc("/v1/workflows", h.authenticated(h.only("GET", h.listWorkflows)))
	h.mux.HandleFunc("/v1/workflows/{name}/runs", h.authenticated(h.only("POST", h.startRun)))
	h.mux.HandleFunc("/v1/runs", h.authenticated(h.only("GET", h.listRuns)))
	h.mux.HandleFunc("/v1/runs/{id}", h.authenticated(h.only("GET", h.getRun)))
	h.mux.HandleFunc("/v1/runs/{id}/events/{event}", h.authenticated(h.only("POST", h.postEvent)))
	h.mux.HandleFunc("/v1/runs/{id}/cancel", h.authenticated(h.only("POST", h.cancelRun)))
}

// A WorkflowInfo is one workflow of GET /v1/workflows: its definition
// as written (name, input schema, steps), and the events its
// wait_for_event steps wait for, so that a client knows what to send.
type WorkflowInfo struct {
	*workflow.Definition
	Events []string `json:"events"`
}

// listWorkflows serves GET /v1/workflows: the definitions this server
// runs, sorted by name. They are the deployment's, the same for every
// tenant.
func (h *handler) listWorkflows(w http.ResponseWriter, r *http.Request) {
	defs := h.wf.Definitions()
	out := make([]WorkflowInfo, len(defs))
	for i, d := range defs {
		out[i] = WorkflowInfo{Definition: d, Events: waitEvents(d.Steps, nil)}
	}
	writeJSON(w, http.StatusOK, map[string]any{"workflows": out})
}

// waitEvents appends the events the wait_for_event steps of steps (and of
// their parallel branches and map bodies) wait for, each once.
func waitEvents(steps []workflow.Step, out []string) []string {
	if out == nil {
		out = []string{}
	}
	for _, s := range steps {
		if s.WaitForEvent != nil && !slices.Contains(out, s.WaitForEvent.Event) {
			out = append(out, s.WaitForEvent.Event)
		}
		for _, b := range s.Parallel {
			out = waitEvents(b, out)
		}
		if s.Map != nil {
			out = waitEvents(s.Map.Steps, out)
		}
	}
	return out
}

// RunCreated is the body of a 201 from POST /v1/workflows/{name}/runs.
type RunCreated struct {
	RunID    string `json:"run_id"`
	Workflow string `json:"workflow"`
	Status   string `json:"status"`
}

func (h *handler) startRun(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Input json.RawMessage `json:"input"`
	}
	if r.ContentLength != 0 {
		if err := h.decode(w, r, &req); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	key := r.Header.Get(IdempotencyKeyHeader)
	if len(key) > 256 {
		h.writeError(w, r, badRequest(IdempotencyKeyHeader+" is longer than 256 bytes"))
		return
	}
	run, created, err := h.wf.Start(r.Context(), tenantOf(r), r.PathValue("name"), req.Input, key)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
		status = http.StatusOK
	}
	w.Header().Set("Location", "/v1/runs/"+run.ID)
	writeJSON(w, status, RunCreated{RunID: run.ID, Workflow: run.Workflow, Status: run.Status})
}

func (h *handler) getRun(w http.ResponseWriter, r *http.Request) {
	snap, err := h.wf.Get(r.Context(), tenantOf(r), r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, snap.View())
}

// RunSummary is one run of GET /v1/runs.
type RunSummary struct {
	RunID     string    `json:"run_id"`
	Workflow  string    `json:"workflow"`
	Status    string    `json:"status"`
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (h *handler) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			h.writeError(w, r, badRequest("limit must be 1 to 1000"))
			return
		}
		limit = n
	}
	switch s := q.Get("status"); s {
	case "", engine.Running, engine.Sleeping, engine.Waiting, engine.Completed, engine.Failed, engine.Canceled:
	default:
		h.writeError(w, r, badRequest("status must be one of running, sleeping, waiting, completed, failed, canceled"))
		return
	}
	runs, err := h.wf.List(r.Context(), tenantOf(r), q.Get("workflow"), q.Get("status"), limit)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := make([]RunSummary, len(runs))
	for i, x := range runs {
		out[i] = RunSummary{RunID: x.ID, Workflow: x.Workflow, Status: x.Status, Error: x.Error, CreatedAt: x.CreatedAt, UpdatedAt: x.UpdatedAt}
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

func (h *handler) postEvent(w http.ResponseWriter, r *http.Request) {
	var body json.RawMessage
	if r.ContentLength != 0 {
		if e := apierr.RequireJSON(r); e != nil {
			h.writeError(w, r, e)
			return
		}
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				h.writeError(w, r, err)
				return
			}
			h.writeError(w, r, &apierr.Error{Kind: apierr.InvalidRequest, Message: "the request body could not be read in full", Err: err})
			return
		}
		if len(b) > 0 && !json.Valid(b) {
			h.writeError(w, r, badRequest("the event body must be JSON"))
			return
		}
		body = b
	}
	if err := h.wf.Signal(r.Context(), tenantOf(r), r.PathValue("id"), r.PathValue("event"), body); err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"run_id": r.PathValue("id"), "event": r.PathValue("event"), "status": "accepted"})
}

func (h *handler) cancelRun(w http.ResponseWriter, r *http.Request) {
	if err := h.wf.Cancel(r.Context(), tenantOf(r), r.PathValue("id")); err != nil {
		h.writeError(w, r, err)
		return
	}
	snap, err := h.wf.Get(r.Context(), tenantOf(r), r.PathValue("id"))
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, snap.View())
}

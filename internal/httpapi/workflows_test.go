package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/stacktest"
	"github.com/lambdagent/lambdagent/internal/workflow"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
	"github.com/lambdagent/lambdagent/internal/workflow/redisrun"
)

const greet = `
name: greet
input: {type: object, required: [name], properties: {name: {type: string}}}
steps:
  - id: hello
    prompt: "hello {{.input.name}}"
  - id: ok
    wait_for_event: {event: approval}
`

// newWorkflowServer serves the API with workflows on a real Redis and the
// simulator, with workers running.
func newWorkflowServer(t *testing.T) string {
	t.Helper()
	stack := stacktest.Start(t, stacktest.Options{NoServer: true})
	d, err := workflow.Parse("greet.yaml", []byte(greet))
	if err == nil {
		err = d.Validate(workflow.ValidateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	store, err := redisrun.New(redistest.Client(t, redistest.Start(t)), redisrun.Config{Prefix: redistest.Prefix(t)})
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.New(engine.Config{Store: store, Definitions: []*workflow.Definition{d}, Turns: stack.Agent,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	go e.RunWorkers(t.Context(), 2)
	h, err := httpapi.New(stack.Agent, stack.Store, httpapi.Config{Workflows: e, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestWorkflowRunsOverHTTP(t *testing.T) {
	srv := newWorkflowServer(t)
	r := do(t, srv, "POST", "/v1/workflows/greet/runs", `{"input":{"name":"ada"}}`, "Idempotency-Key", "k1")
	if r.status != http.StatusCreated {
		t.Fatalf("start: %d %s", r.status, r.body)
	}
	var created httpapi.RunCreated
	json.Unmarshal([]byte(r.body), &created)
	if !strings.HasPrefix(created.RunID, "run_") || created.Workflow != "greet" || created.Status != "running" {
		t.Errorf("created = %s", r.body)
	}
	again := do(t, srv, "POST", "/v1/workflows/greet/runs", `{"input":{"name":"ada"}}`, "Idempotency-Key", "k1")
	if again.status != http.StatusOK || !strings.Contains(again.body, created.RunID) {
		t.Errorf("same key: %d %s", again.status, again.body)
	}

	// The run waits for its event after the prompt.
	var view engine.RunView
	poll := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			g := do(t, srv, "GET", "/v1/runs/"+created.RunID, "")
			view = engine.RunView{}
			json.Unmarshal([]byte(g.body), &view)
			if view.Status == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status %q, want %q: %s", view.Status, want, g.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	poll("waiting")
	ev := do(t, srv, "POST", "/v1/runs/"+created.RunID+"/events/approval", `{"by":"grace"}`)
	if ev.status != http.StatusAccepted {
		t.Fatalf("event: %d %s", ev.status, ev.body)
	}
	poll("completed")
	if string(view.Output) != `{"by":"grace"}` || len(view.Steps) != 2 || !strings.Contains(string(view.Steps[0].Output), "hello ada") ||
		view.Steps[0].Usage == nil || view.Steps[0].Attempts != 1 || view.Steps[1].EndedAt == nil {
		t.Errorf("run = %+v", view)
	}
	// The body has every field the issue names, null or not.
	g := do(t, srv, "GET", "/v1/runs/"+created.RunID, "")
	var raw map[string]any
	json.Unmarshal([]byte(g.body), &raw)
	for _, k := range []string{"run_id", "workflow", "status", "input", "output", "error", "steps"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("GET run has no %q: %s", k, g.body)
		}
	}
	step := raw["steps"].([]any)[0].(map[string]any)
	for _, k := range []string{"id", "status", "attempts", "started_at", "ended_at", "output", "error", "usage"} {
		if _, ok := step[k]; !ok {
			t.Errorf("step has no %q", k)
		}
	}

	l := do(t, srv, "GET", "/v1/runs?workflow=greet&status=completed", "")
	if l.status != 200 || !strings.Contains(l.body, created.RunID) {
		t.Errorf("list: %d %s", l.status, l.body)
	}
	if l := do(t, srv, "GET", "/v1/runs?status=running", ""); strings.Contains(l.body, created.RunID) {
		t.Errorf("status filter: %s", l.body)
	}
}

func TestWorkflowErrorsOverHTTP(t *testing.T) {
	srv := newWorkflowServer(t)
	cases := []struct {
		method, path, body string
		status             int
		typ, msg           string
	}{
		{"POST", "/v1/workflows/nope/runs", `{"input":{}}`, 404, "not_found", `no workflow \"nope\"`},
		{"POST", "/v1/workflows/greet/runs", `{"input":{"name":7}}`, 400, "invalid_request", "name"},
		{"POST", "/v1/workflows/greet/runs", `{"input":`, 400, "invalid_request", "invalid JSON"},
		{"GET", "/v1/runs/run_nope", "", 404, "not_found", "run_nope"},
		{"POST", "/v1/runs/run_nope/events/approval", `{}`, 404, "not_found", "run_nope"},
		{"POST", "/v1/runs/run_nope/cancel", ``, 404, "not_found", "run_nope"},
		{"GET", "/v1/runs?status=bogus", "", 400, "invalid_request", "status must be one of"},
		{"DELETE", "/v1/runs/run_x", "", 405, "method_not_allowed", "use GET"},
	}
	for _, c := range cases {
		r := do(t, srv, c.method, c.path, c.body)
		if r.status != c.status || errType(t, r) != c.typ || !strings.Contains(r.body, c.msg) {
			t.Errorf("%s %s: %d %s, want %d %s containing %q", c.method, c.path, r.status, r.body, c.status, c.typ, c.msg)
		}
	}
	if l := do(t, srv, "GET", "/v1/runs", ""); l.body != "{\"runs\":[]}\n" {
		t.Errorf("bad requests started runs: %s", l.body)
	}
	// A canceled run refuses events.
	r := do(t, srv, "POST", "/v1/workflows/greet/runs", `{"input":{"name":"x"}}`)
	var created httpapi.RunCreated
	json.Unmarshal([]byte(r.body), &created)
	if c := do(t, srv, "POST", "/v1/runs/"+created.RunID+"/cancel", ""); c.status != 200 || !strings.Contains(c.body, `"canceled"`) {
		t.Errorf("cancel: %d %s", c.status, c.body)
	}
	if e := do(t, srv, "POST", "/v1/runs/"+created.RunID+"/events/approval", `{}`); e.status != 409 {
		t.Errorf("event after cancel: %d %s", e.status, e.body)
	}
}

// TestWorkflowDefinitionsOverHTTP: GET /v1/workflows lists the workflows
// the server runs, with their input schema, steps and the events they
// wait for, which is what the console's start form and event button use.
func TestWorkflowDefinitionsOverHTTP(t *testing.T) {
	srv := newWorkflowServer(t)
	r := do(t, srv, "GET", "/v1/workflows", "")
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/workflows: %d %s", r.status, r.body)
	}
	var body struct {
		Workflows []struct {
			Name  string         `json:"name"`
			Input map[string]any `json:"input"`
			Steps []struct {
				ID           string `json:"id"`
				Prompt       string `json:"prompt"`
				WaitForEvent *struct {
					Event string `json:"event"`
				} `json:"wait_for_event"`
			} `json:"steps"`
			Events []string `json:"events"`
		} `json:"workflows"`
	}
	if err := json.Unmarshal([]byte(r.body), &body); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
	if len(body.Workflows) != 1 {
		t.Fatalf("workflows = %s", r.body)
	}
	w := body.Workflows[0]
	if w.Name != "greet" || w.Input["type"] != "object" || len(w.Steps) != 2 || w.Steps[0].Prompt != "hello {{.input.name}}" ||
		w.Steps[1].WaitForEvent == nil || w.Steps[1].WaitForEvent.Event != "approval" || len(w.Events) != 1 || w.Events[0] != "approval" {
		t.Errorf("greet = %s", r.body)
	}
	if strings.Contains(r.body, `"File"`) || strings.Contains(r.body, "greet.yaml") {
		t.Errorf("the listing shows where the definition was read from: %s", r.body)
	}
	if p := do(t, srv, "POST", "/v1/workflows", `{}`); p.status != http.StatusMethodNotAllowed || !strings.Contains(p.body, `"error"`) {
		t.Errorf("POST /v1/workflows: %d %s", p.status, p.body)
	}
}

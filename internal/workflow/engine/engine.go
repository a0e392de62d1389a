package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/workflow"
)

// Defaults for a zero [Config].
const (
	DefaultLeaseTTL = 30 * time.Second
	// DefaultMaxOutputBytes bounds a step's output (JSON): a larger one
	// fails the step rather than swell the run every replay reads.
	DefaultMaxOutputBytes = 256 << 10
	// DefaultMaxVisits bounds how often one step runs in a loop of one
	// run, so that a loop whose exit is never taken ends as a failure.
	DefaultMaxVisits = 1000
	// commitTimeout bounds a commit, which runs detached from the walk's
	// context: a result the tool already produced is saved even while the
	// worker is being stopped.
	commitTimeout = 10 * time.Second
)

// Turner runs agent turns; *agent.Agent is one.
type Turner interface {
	Run(ctx context.Context, req agent.Request) (*agent.Answer, error)
}

// A Clock tells time and waits; tests pass a fake one so that sleeps,
// timeouts and backoffs need no real waiting.
type Clock interface {
	Now() time.Time
	// Sleep waits d or until ctx ends (returning its error).
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Config builds an [Engine]. Store and Definitions are required.
type Config struct {
	Store       Store
	Definitions []*workflow.Definition // validated
	// Tools runs tool steps; nil fails them.
	Tools agent.Tools
	// Turns runs prompt steps; nil fails them.
	Turns Turner
	// Clock is the time of timers and backoffs. Nil means the real one.
	Clock Clock
	// LeaseTTL is the run lease's lifetime, renewed every third of it.
	// Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// MaxVisits bounds the runs of one step in a loop; zero means
	// DefaultMaxVisits.
	MaxVisits int
	// MaxOutputBytes bounds a step's output; zero means
	// DefaultMaxOutputBytes.
	MaxOutputBytes int
	Logger         *slog.Logger
	// Metrics, if set, counts runs that end (workflow_runs, by workflow
	// and outcome) and steps that end (workflow_steps, by workflow, kind
	// and outcome); *telemetry.Telemetry is one.
	Metrics Counter
}

// A Counter adds to a named counter with label pairs.
type Counter interface {
	Count(name string, n int64, labels ...string)
}

// Engine starts, reads and advances runs. Safe for concurrent use.
type Engine struct {
	cfg  Config
	defs map[string]*workflow.Definition
	log  *slog.Logger
}

// New returns an Engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("engine: nil Store")
	}
	e := &Engine{cfg: cfg, defs: map[string]*workflow.Definition{}, log: cfg.Logger}
	for _, d := range cfg.Definitions {
		if _, dup := e.defs[d.Name]; dup {
			return nil, fmt.Errorf("engine: workflow %q defined twice", d.Name)
		}
		e.defs[d.Name] = d
	}
	if e.cfg.Clock == nil {
		e.cfg.Clock = realClock{}
	}
	if e.cfg.LeaseTTL <= 0 {
		e.cfg.LeaseTTL = DefaultLeaseTTL
	}
	if e.cfg.MaxVisits <= 0 {
		e.cfg.MaxVisits = DefaultMaxVisits
	}
	if e.cfg.MaxOutputBytes <= 0 {
		e.cfg.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if e.log == nil {
		e.log = slog.Default()
	}
	return e, nil
}

// Workflows returns the names of the definitions, sorted.
func (e *Engine) Workflows() []string {
	names := make([]string, 0, len(e.defs))
	for n := range e.defs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Definitions returns the definitions, sorted by name: what
// GET /v1/workflows shows. The caller must not change them.
func (e *Engine) Definitions() []*workflow.Definition {
	out := make([]*workflow.Definition, 0, len(e.defs))
	for _, n := range e.Workflows() {
		out = append(out, e.defs[n])
	}
	return out
}

// Start starts a run of workflow name for tenant, or with an
// idempotency key used before returns that run (created false). The input
// is checked against the definition's schema first: a bad one starts
// nothing (workflow.ErrInvalidInput).
func (e *Engine) Start(ctx context.Context, tenant, name string, input json.RawMessage, idempotencyKey string) (Run, bool, error) {
	d := e.defs[name]
	if d == nil {
		return Run{}, false, fmt.Errorf("%w: no workflow %q", ErrNotFound, name)
	}
	if tenant == "" {
		tenant = auth.DefaultTenant
	}
	if len(input) == 0 {
		input = json.RawMessage(`{}`)
	}
	if err := d.CheckInput(input); err != nil {
		return Run{}, false, err
	}
	id := "run_" + randomHex(12)
	now := e.cfg.Clock.Now()
	r := Run{ID: id, StoreID: session.Scope(tenant, id), Tenant: tenant, Workflow: name, Status: Running,
		Input: input, CreatedAt: now, UpdatedAt: now}
	return e.cfg.Store.Create(ctx, r, idempotencyKey)
}

// Get reads the tenant's run id.
func (e *Engine) Get(ctx context.Context, tenant, id string) (*Snapshot, error) {
	if session.ValidID(id) != nil {
		return nil, fmt.Errorf("%w: no run %q", ErrNotFound, id)
	}
	return e.cfg.Store.Get(ctx, session.Scope(tenant, id))
}

// List lists the tenant's runs, newest first.
func (e *Engine) List(ctx context.Context, tenant, workflow, status string, limit int) ([]Run, error) {
	return e.cfg.Store.List(ctx, tenant, workflow, status, limit)
}

// Signal delivers event to the tenant's run id.
func (e *Engine) Signal(ctx context.Context, tenant, id, event string, body json.RawMessage) error {
	if session.ValidID(id) != nil {
		return fmt.Errorf("%w: no run %q", ErrNotFound, id)
	}
	if err := session.ValidID(event); err != nil {
		return fmt.Errorf("%w: event name: %w", workflow.ErrInvalidInput, err)
	}
	if len(body) == 0 {
		body = json.RawMessage(`null`)
	}
	return e.cfg.Store.Signal(ctx, session.Scope(tenant, id), event, body)
}

// Cancel cancels the tenant's run id.
func (e *Engine) Cancel(ctx context.Context, tenant, id string) error {
	if session.ValidID(id) != nil {
		return fmt.Errorf("%w: no run %q", ErrNotFound, id)
	}
	return e.cfg.Store.Cancel(ctx, session.Scope(tenant, id), e.cfg.Clock.Now())
}

// Work advances runs from the ready queue until ctx ends.
func (e *Engine) Work(ctx context.Context) {
	for ctx.Err() == nil {
		id, err := e.cfg.Store.Next(ctx, time.Second)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("workflow: read ready queue", "err", err)
				_ = realClock{}.Sleep(ctx, time.Second)
			}
			continue
		}
		if id != "" {
			if err := e.Advance(ctx, id); err != nil && ctx.Err() == nil {
				e.log.Warn("workflow: advance run", "run", id, "err", err)
			}
		}
	}
}

// FireTimers moves due runs to the ready queue every interval until ctx
// ends.
func (e *Engine) FireTimers(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := e.cfg.Store.Fire(ctx, e.cfg.Clock.Now()); err != nil && ctx.Err() == nil {
			e.log.Warn("workflow: fire timers", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Due fires the timers that are due (and expired leases) and takes up to
// n runs off the ready queue, without waiting: for a driver with no
// worker loop (Lambda's scheduled timers event), which advances them
// itself or hands them on. A run taken and never advanced is queued again
// by the store after its grace period.
func (e *Engine) Due(ctx context.Context, n int) ([]string, error) {
	if _, err := e.cfg.Store.Fire(ctx, e.cfg.Clock.Now()); err != nil {
		return nil, err
	}
	var ids []string
	for len(ids) < n {
		id, err := e.cfg.Store.Next(ctx, 0)
		if err != nil {
			return ids, err
		}
		if id == "" {
			break
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// RunWorkers runs n workers and the timer loop until ctx ends.
func (e *Engine) RunWorkers(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { e.Work(ctx) })
	}
	wg.Go(func() { e.FireTimers(ctx, time.Second) })
	wg.Wait()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// A StepView is one step of GET /v1/runs/{id}.
type StepView struct {
	ID        string          `json:"id"`
	Key       string          `json:"key,omitempty"`
	Status    string          `json:"status"`
	Attempts  int             `json:"attempts"`
	StartedAt *time.Time      `json:"started_at"`
	EndedAt   *time.Time      `json:"ended_at"`
	Output    json.RawMessage `json:"output"`
	Error     string          `json:"error"`
	Usage     any             `json:"usage"`
}

// A RunView is the body of GET /v1/runs/{id}.
type RunView struct {
	RunID    string          `json:"run_id"`
	Workflow string          `json:"workflow"`
	Status   string          `json:"status"`
	Input    json.RawMessage `json:"input"`
	Output   json.RawMessage `json:"output"`
	Error    string          `json:"error"`
	Steps    []StepView      `json:"steps"`
	// Usage sums the usage of the run's steps (its prompt turns).
	Usage claude.Usage `json:"usage"`
}

// View is the snapshot as the API shows it: steps in the order they were
// first committed.
func (s *Snapshot) View() RunView {
	recs := make([]StepRecord, 0, len(s.Steps))
	for _, r := range s.Steps {
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
	v := RunView{RunID: s.Run.ID, Workflow: s.Run.Workflow, Status: s.Run.Status, Input: s.Run.Input,
		Output: s.Run.Output, Error: s.Run.Error, Steps: make([]StepView, len(recs))}
	for i, r := range recs {
		started := r.StartedAt
		sv := StepView{ID: r.ID, Status: r.Status, Attempts: r.Attempts, StartedAt: &started, EndedAt: r.EndedAt,
			Output: r.Output, Error: r.Error}
		if r.Key != r.ID {
			sv.Key = r.Key
		}
		if u := r.Usage; u != nil {
			sv.Usage = u
			v.Usage.InputTokens += u.InputTokens
			v.Usage.OutputTokens += u.OutputTokens
			v.Usage.CacheCreationInputTokens += u.CacheCreationInputTokens
			v.Usage.CacheReadInputTokens += u.CacheReadInputTokens
			v.Usage.CostUSD += u.CostUSD
		}
		v.Steps[i] = sv
	}
	if v.Output == nil {
		v.Output = json.RawMessage("null")
	}
	return v
}

package engine

import (
	"context"
	"encoding/json"
	"time"

	"github.com/lambdagent/lambdagent/internal/claude"
)

// Statuses of a run.
const (
	Running   = "running"
	Sleeping  = "sleeping"
	Waiting   = "waiting"
	Completed = "completed"
	Failed    = "failed"
	Canceled  = "canceled"
)

// Final reports whether a run in status will never advance again.
func Final(status string) bool {
	return status == Completed || status == Failed || status == Canceled
}

// A Run is a run's own state, without its steps.
type Run struct {
	// ID is the run id the client sees; StoreID is session.Scope of the
	// tenant and ID, under which the store keeps it.
	ID        string          `json:"run_id"`
	StoreID   string          `json:"-"`
	Tenant    string          `json:"-"`
	Workflow  string          `json:"workflow"`
	Status    string          `json:"status"`
	Input     json.RawMessage `json:"input"`
	Output    json.RawMessage `json:"output"`
	Error     string          `json:"error"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// A StepRecord is what is committed of one execution of a step. Key
// tells executions apart: the step's id, prefixed by the map element
// it ran for ("m[2]/id") and suffixed by its visit in a loop ("id#1").
type StepRecord struct {
	Key       string          `json:"key"`
	ID        string          `json:"id"`
	Status    string          `json:"status"`
	Attempts  int             `json:"attempts"`
	StartedAt time.Time       `json:"started_at"`
	EndedAt   *time.Time      `json:"ended_at"`
	Output    json.RawMessage `json:"output"`
	Error     string          `json:"error"`
	Usage     *claude.Usage   `json:"usage"`
	// Due is when a sleeping step wakes or a waiting one times out.
	Due *time.Time `json:"due,omitempty"`
	// Next is the step a branch, or a wait_for_event's on_timeout, chose.
	Next string `json:"next,omitempty"`
	// Seq orders the records as they were first committed.
	Seq int64 `json:"seq"`
}

// A Snapshot is a run with its step records and undelivered events.
type Snapshot struct {
	Run    Run
	Steps  map[string]StepRecord      // by Key
	Events map[string]json.RawMessage // by event name
}

// A Commit is what an advancer writes under its lease.
type Commit struct {
	// Steps are step records to store (new, or replacing one of the same
	// Key).
	Steps []StepRecord
	// ConsumeEvent, if set, is an event delivered to a wait_for_event in
	// Steps: it is removed with the commit.
	ConsumeEvent string
	// Status, if set, changes the run's status; Output and Error go with
	// it.
	Status string
	Output json.RawMessage
	Error  string
	// Due, if set, is when the run's timer fires (a sleep or an event
	// timeout); zero removes the timer.
	Due time.Time
	// Release ends the lease.
	Release bool
	// KnownEvents is how many undelivered events the advancer saw; a
	// commit that leaves the run waiting while more have arrived puts it
	// back on the ready queue, so an event that came during the walk is
	// not missed.
	KnownEvents int
	Now         time.Time
}

// A Store keeps runs. Implementations are safe for concurrent use by
// many processes sharing the backend; each method is one round trip.
//
// Runs are named by store id (session.Scope of tenant and run id), so
// two tenants' runs never meet; List takes the tenant.
type Store interface {
	// Create stores a new run and puts it on the ready queue. With an
	// idempotency key already used for the tenant's workflow it stores
	// nothing and returns the run created with the key, and false.
	Create(ctx context.Context, r Run, idempotencyKey string) (Run, bool, error)
	// Acquire takes the run's lease for ttl and reads it. It returns
	// ErrNotFound, or a *BusyError while another advancer holds the lease.
	// A sleeping or waiting run becomes running. leaseExpiry is when a
	// worker that stopped renewing is presumed dead (the store re-queues
	// the run then).
	Acquire(ctx context.Context, storeID, token string, ttl time.Duration, leaseExpiry time.Time) (*Snapshot, error)
	// Renew extends a held lease, or returns ErrLeaseLost.
	Renew(ctx context.Context, storeID, token string, ttl time.Duration, leaseExpiry time.Time) error
	// Commit writes c if token holds the lease (else ErrLeaseLost) and the
	// run was not canceled (else ErrCanceled, and the lease is released).
	Commit(ctx context.Context, storeID, token string, c Commit) error
	// Get reads a run without its lease; ErrNotFound if none.
	Get(ctx context.Context, storeID string) (*Snapshot, error)
	// List returns the tenant's runs, newest first, at most limit,
	// filtered by workflow and status when they are not empty.
	List(ctx context.Context, tenant, workflow, status string, limit int) ([]Run, error)
	// Signal keeps the event for the run's wait_for_event step, replacing
	// an undelivered one of the same name, and wakes a waiting run. It
	// returns ErrNotFound, or ErrFinished for a run that ended.
	Signal(ctx context.Context, storeID, event string, body json.RawMessage) error
	// Cancel marks a run canceled unless it ended (ErrFinished); an
	// advancer in flight stops at its next commit.
	Cancel(ctx context.Context, storeID string, now time.Time) error
	// Fire moves the runs whose timer is due by now, and those whose
	// lease expiry passed, to the ready queue. It returns how many.
	Fire(ctx context.Context, now time.Time) (int, error)
	// Next pops a run from the ready queue, waiting up to wait; "" when
	// none came.
	Next(ctx context.Context, wait time.Duration) (string, error)
}

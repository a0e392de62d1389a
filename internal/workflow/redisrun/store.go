// Package redisrun keeps workflow runs in Redis ([engine.Store]), for
// processes that share them: serve's workers, Lambda instances, dev.
//
// Every key shares one Redis Cluster hash tag, {wf}, because the scripts
// touch a run's keys and the deployment's queues together: on a cluster
// one shard carries every workflow run (as {rl} carries the rate
// limiter), and no script is refused with CROSSSLOT. Runs are
// tenant-scoped like sessions (session.Scope):
//
//	<prefix>{wf}:<store id>:run     HASH: id, tenant, workflow, status,
//	                                input, output, error, created, updated
//	<prefix>{wf}:<store id>:lease   STRING: the advancer's token; PX expiry
//	<prefix>{wf}:<store id>:steps   HASH: step key → step record JSON
//	<prefix>{wf}:<store id>:events  HASH: event name → body, until consumed
//
// and the deployment's queues:
//
//	<prefix>{wf}:ready              LIST of store ids to advance
//	<prefix>{wf}:timers             ZSET store id by due time (ms)
//	<prefix>{wf}:active             ZSET store id by lease expiry (ms)
//	<prefix>{wf}:runs:<tenant>      ZSET run store ids by creation (ms)
//	<prefix>{wf}:idem:<tenant>:<workflow>:<key>   STRING: store id
//
// Every method is one Lua script (or one command): atomic, one round
// trip. A step's commit sends only that step's record, so its cost does
// not grow with the run; the run's state grows with its outputs only.
package redisrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
)

// Defaults for a zero [Config].
const (
	DefaultPrefix         = "lambdagent:"
	DefaultIdempotencyTTL = 24 * time.Hour
)

// Config tunes a Store.
type Config struct {
	// Prefix starts every key; no braces. Empty means DefaultPrefix.
	Prefix string
	// IdempotencyTTL is how long an Idempotency-Key of a start names its
	// run. Zero means DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
	// Requeue is how long a run put on the ready queue (created, or
	// woken by its timer) may wait for a worker to take its lease before
	// it is queued again: the worker that popped it may have died. Zero
	// means DefaultRequeue.
	Requeue time.Duration
}

// DefaultRequeue is the Requeue of a zero Config.
const DefaultRequeue = time.Minute

// Store is an [engine.Store] on Redis.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	idemTTL time.Duration
	requeue time.Duration
}

var _ engine.Store = (*Store)(nil)

// New returns a Store on rdb. It does no I/O.
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisrun: nil Redis client")
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("redisrun: prefix %q contains a brace", cfg.Prefix)
	}
	s := &Store{rdb: rdb, prefix: cfg.Prefix, idemTTL: cfg.IdempotencyTTL, requeue: cfg.Requeue}
	if s.requeue <= 0 {
		s.requeue = DefaultRequeue
	}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.idemTTL <= 0 {
		s.idemTTL = DefaultIdempotencyTTL
	}
	return s, nil
}

type keys struct{ run, lease, steps, events string }

func (s *Store) keys(id string) keys {
	b := s.prefix + "{wf}:" + id + ":"
	return keys{run: b + "run", lease: b + "lease", steps: b + "steps", events: b + "events"}
}

func (s *Store) ready() string  { return s.prefix + "{wf}:ready" }
func (s *Store) timers() string { return s.prefix + "{wf}:timers" }
func (s *Store) active() string { return s.prefix + "{wf}:active" }
func (s *Store) index(tenant string) string {
	return s.prefix + "{wf}:runs:" + tenant
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func wrap(err error, format string, args ...any) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	return fmt.Errorf(format+": %w: %w", append(args, engine.ErrUnavailable, err)...)
}

// Create implements [engine.Store.Create].
func (s *Store) Create(ctx context.Context, r engine.Run, idemKey string) (engine.Run, bool, error) {
	if err := session.ValidStoreID(r.StoreID); err != nil {
		return r, false, err
	}
	k := s.keys(r.StoreID)
	idem := k.run // unused without a key
	if idemKey != "" {
		idem = s.prefix + "{wf}:idem:" + r.Tenant + ":" + r.Workflow + ":" + idemKey
	}
	args := []any{r.StoreID, idemKey, s.idemTTL.Milliseconds(), ms(r.CreatedAt), ms(r.CreatedAt.Add(s.requeue)),
		"id", r.ID, "tenant", r.Tenant, "workflow", r.Workflow, "status", r.Status,
		"input", []byte(r.Input), "output", "", "error", "", "created", ms(r.CreatedAt), "updated", ms(r.UpdatedAt)}
	res, err := createScript.Run(ctx, s.rdb, []string{k.run, idem, s.index(r.Tenant), s.ready(), s.active()}, args...).StringSlice()
	if err != nil {
		return r, false, wrap(err, "create run %s", r.StoreID)
	}
	if len(res) == 2 && res[0] == "exists" {
		snap, err := s.Get(ctx, res[1])
		if err != nil {
			return r, false, err
		}
		return snap.Run, false, nil
	}
	return r, true, nil
}

// Acquire implements [engine.Store.Acquire].
func (s *Store) Acquire(ctx context.Context, id, token string, ttl time.Duration, expiry time.Time) (*engine.Snapshot, error) {
	k := s.keys(id)
	res, err := acquireScript.Run(ctx, s.rdb, []string{k.run, k.lease, k.steps, k.events, s.active()},
		token, ttl.Milliseconds(), ms(expiry), id).Slice()
	if err != nil {
		return nil, wrap(err, "acquire run %s", id)
	}
	switch str(res, 0) {
	case "notfound":
		return nil, fmt.Errorf("%w: run %s", engine.ErrNotFound, id)
	case "busy":
		n, _ := res[1].(int64)
		return nil, &engine.BusyError{RetryAfter: time.Duration(n) * time.Millisecond}
	case "ok":
		if len(res) != 4 {
			break
		}
		return parseSnapshot(id, strs(res[1]), strs(res[2]), strs(res[3]))
	}
	return nil, fmt.Errorf("acquire run %s: unexpected reply %v", id, res)
}

func str(res []any, i int) string {
	if i < len(res) {
		s, _ := res[i].(string)
		return s
	}
	return ""
}

func strs(v any) []string {
	xs, _ := v.([]any)
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i], _ = x.(string)
	}
	return out
}

func parseSnapshot(id string, run, steps, events []string) (*engine.Snapshot, error) {
	if len(run) == 0 {
		return nil, fmt.Errorf("%w: run %s", engine.ErrNotFound, id)
	}
	f := map[string]string{}
	for i := 0; i+1 < len(run); i += 2 {
		f[run[i]] = run[i+1]
	}
	tenant, _ := session.Unscope(id)
	snap := &engine.Snapshot{
		Run: engine.Run{ID: f["id"], StoreID: id, Tenant: tenant, Workflow: f["workflow"], Status: f["status"],
			Input: raw(f["input"]), Output: raw(f["output"]), Error: f["error"],
			CreatedAt: fromMS(f["created"]), UpdatedAt: fromMS(f["updated"])},
		Steps:  make(map[string]engine.StepRecord, len(steps)),
		Events: make(map[string]json.RawMessage, len(events)/2),
	}
	for _, r := range steps {
		var rec engine.StepRecord
		if err := json.Unmarshal([]byte(r), &rec); err != nil {
			return nil, fmt.Errorf("run %s: bad step record: %w", id, err)
		}
		snap.Steps[rec.Key] = rec
	}
	for i := 0; i+1 < len(events); i += 2 {
		snap.Events[events[i]] = json.RawMessage(events[i+1])
	}
	return snap, nil
}

func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

func fromMS(s string) time.Time {
	n, _ := strconv.ParseInt(s, 10, 64)
	return time.UnixMilli(n).UTC()
}

// Renew implements [engine.Store.Renew].
func (s *Store) Renew(ctx context.Context, id, token string, ttl time.Duration, expiry time.Time) error {
	k := s.keys(id)
	res, err := renewScript.Run(ctx, s.rdb, []string{k.lease, s.active()}, token, ttl.Milliseconds(), ms(expiry), id).Text()
	if err != nil {
		return wrap(err, "renew run %s", id)
	}
	if res != "ok" {
		return fmt.Errorf("renew run %s: %w", id, engine.ErrLeaseLost)
	}
	return nil
}

// Commit implements [engine.Store.Commit].
func (s *Store) Commit(ctx context.Context, id, token string, c engine.Commit) error {
	k := s.keys(id)
	release := "0"
	if c.Release {
		release = "1"
	}
	due := ""
	if !c.Due.IsZero() {
		due = strconv.FormatInt(ms(c.Due), 10)
	}
	args := []any{token, id, c.Status, []byte(c.Output), c.Error, release, due, c.ConsumeEvent, ms(c.Now), c.KnownEvents}
	for _, rec := range c.Steps {
		b, err := json.Marshal(rec)
		if err != nil {
			return fmt.Errorf("commit run %s: %w", id, err)
		}
		args = append(args, rec.Key, b)
	}
	res, err := commitScript.Run(ctx, s.rdb, []string{k.run, k.lease, k.steps, k.events, s.active(), s.timers(), s.ready()}, args...).Text()
	if err != nil {
		return wrap(err, "commit run %s", id)
	}
	switch res {
	case "ok":
		return nil
	case "lost":
		return fmt.Errorf("commit run %s: %w", id, engine.ErrLeaseLost)
	case "canceled":
		return fmt.Errorf("commit run %s: %w", id, engine.ErrCanceled)
	}
	return fmt.Errorf("commit run %s: unexpected reply %q", id, res)
}

// Get implements [engine.Store.Get].
func (s *Store) Get(ctx context.Context, id string) (*engine.Snapshot, error) {
	if session.ValidStoreID(id) != nil {
		return nil, fmt.Errorf("%w: run %s", engine.ErrNotFound, id)
	}
	k := s.keys(id)
	p := s.rdb.Pipeline()
	run := p.HGetAll(ctx, k.run)
	steps := p.HVals(ctx, k.steps)
	events := p.HGetAll(ctx, k.events)
	if _, err := p.Exec(ctx); err != nil {
		return nil, wrap(err, "get run %s", id)
	}
	var rf []string
	for f, v := range run.Val() {
		rf = append(rf, f, v)
	}
	var ev []string
	for f, v := range events.Val() {
		ev = append(ev, f, v)
	}
	return parseSnapshot(id, rf, steps.Val(), ev)
}

// List implements [engine.Store.List]. It reads the newest 1000 runs of
// the tenant and filters them.
func (s *Store) List(ctx context.Context, tenant, workflow, status string, limit int) ([]engine.Run, error) {
	if tenant == "" {
		tenant = session.DefaultTenant
	}
	ids, err := s.rdb.ZRevRange(ctx, s.index(tenant), 0, 999).Result()
	if err != nil {
		return nil, wrap(err, "list runs")
	}
	p := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(ids))
	for i, id := range ids {
		cmds[i] = p.HMGet(ctx, s.keys(id).run, "id", "workflow", "status", "error", "created", "updated")
	}
	if len(ids) > 0 {
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, wrap(err, "list runs")
		}
	}
	runs := []engine.Run{}
	for i, c := range cmds {
		v := c.Val()
		get := func(j int) string { s, _ := v[j].(string); return s }
		if get(0) == "" || (workflow != "" && get(1) != workflow) || (status != "" && get(2) != status) {
			continue
		}
		runs = append(runs, engine.Run{ID: get(0), StoreID: ids[i], Tenant: tenant, Workflow: get(1), Status: get(2),
			Error: get(3), CreatedAt: fromMS(get(4)), UpdatedAt: fromMS(get(5))})
		if limit > 0 && len(runs) == limit {
			break
		}
	}
	return runs, nil
}

// Signal implements [engine.Store.Signal].
func (s *Store) Signal(ctx context.Context, id, event string, body json.RawMessage) error {
	k := s.keys(id)
	res, err := signalScript.Run(ctx, s.rdb, []string{k.run, k.events, s.ready()}, id, event, []byte(body)).Text()
	if err != nil {
		return wrap(err, "signal run %s", id)
	}
	return outcome(res, id)
}

func outcome(res, id string) error {
	switch res {
	case "ok":
		return nil
	case "notfound":
		_, rid := session.Unscope(id)
		return fmt.Errorf("%w: no run %q", engine.ErrNotFound, rid)
	}
	return fmt.Errorf("%w: the run is %s", engine.ErrFinished, res)
}

// Cancel implements [engine.Store.Cancel].
func (s *Store) Cancel(ctx context.Context, id string, now time.Time) error {
	k := s.keys(id)
	res, err := cancelScript.Run(ctx, s.rdb, []string{k.run, s.timers()}, id, ms(now)).Text()
	if err != nil {
		return wrap(err, "cancel run %s", id)
	}
	return outcome(res, id)
}

// Fire implements [engine.Store.Fire].
func (s *Store) Fire(ctx context.Context, now time.Time) (int, error) {
	n, err := fireScript.Run(ctx, s.rdb, []string{s.timers(), s.active(), s.ready()}, ms(now), 1000, ms(now.Add(s.requeue))).Int()
	if err != nil {
		return 0, wrap(err, "fire timers")
	}
	return n, nil
}

// Next implements [engine.Store.Next].
// A wait under a second is a second (BLPOP's resolution through
// go-redis); zero does not wait.
func (s *Store) Next(ctx context.Context, wait time.Duration) (string, error) {
	if wait <= 0 {
		id, err := s.rdb.LPop(ctx, s.ready()).Result()
		if errors.Is(err, redis.Nil) {
			return "", nil
		}
		if err != nil {
			return "", wrap(err, "read ready queue")
		}
		return id, nil
	}
	res, err := s.rdb.BLPop(ctx, wait, s.ready()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", wrap(err, "read ready queue")
	}
	return res[1], nil
}

// Package filerun keeps workflow runs in a local file ([engine.Store]),
// for one process: `dev`, or a server without Redis. It is the
// workflow counterpart of internal/session/filestore, in a file of its
// own (bbolt holds a file for one process).
//
// Runs, their step records and undelivered events are in the file, so a
// restart keeps them. Leases, the ready queue and the timers are in
// memory: only this process can hold a lease, and when it restarts no
// lease is held. Open rebuilds the queue and the timers from the runs:
// a run that was running is ready again (its process died), and a
// sleeping or waiting one gets its timer back.
package filerun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
)

var (
	bucketRuns = []byte("runs")
	bucketIdem = []byte("idem")
	keyRun     = []byte("run")
	keySteps   = []byte("steps")
	keyEvents  = []byte("events")
)

// record is a run as the file keeps it.
type record struct {
	ID       string          `json:"id"`
	Tenant   string          `json:"tenant"`
	Workflow string          `json:"workflow"`
	Status   string          `json:"status"`
	Input    json.RawMessage `json:"input,omitempty"`
	Output   json.RawMessage `json:"output,omitempty"`
	Error    string          `json:"error,omitempty"`
	Created  int64           `json:"created"`
	Updated  int64           `json:"updated"`
	// Due is the run's timer (unix ms), zero for none; kept so that Open
	// can set it again.
	Due int64 `json:"due,omitempty"`
}

type lease struct {
	token string
	until time.Time // real time, as Redis's PX
}

// Store is an [engine.Store] in a bbolt file.
type Store struct {
	db *bolt.DB

	mu     sync.Mutex // guards the maps and ready, and makes each method atomic
	leases map[string]lease
	timers map[string]time.Time // by the engine's clock
	active map[string]time.Time // lease expiry, by the engine's clock
	ready  []string
	wake   chan struct{} // a token when ready grows
}

var _ engine.Store = (*Store)(nil)

// Open opens or creates the file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open workflow file %s: in use by another process; use Redis to share runs between processes: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open workflow file %s: %w", path, err)
	}
	s := &Store{db: db, leases: map[string]lease{}, timers: map[string]time.Time{}, active: map[string]time.Time{}, wake: make(chan struct{}, 1)}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketIdem); err != nil {
			return err
		}
		runs, err := tx.CreateBucketIfNotExists(bucketRuns)
		if err != nil {
			return err
		}
		return runs.ForEachBucket(func(id []byte) error {
			rb := runs.Bucket(id)
			var r record
			if err := json.Unmarshal(rb.Get(keyRun), &r); err != nil {
				return fmt.Errorf("run %s: %w", id, err)
			}
			switch {
			case r.Status == engine.Running:
				s.ready = append(s.ready, string(id))
			case (r.Status == engine.Sleeping || r.Status == engine.Waiting) && r.Due != 0:
				s.timers[string(id)] = time.UnixMilli(r.Due)
			}
			if r.Status == engine.Waiting && rb.Bucket(keyEvents).Stats().KeyN > 0 {
				s.ready = append(s.ready, string(id))
			}
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open workflow file %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) push(id string) {
	s.ready = append(s.ready, id)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func readRecord(rb *bolt.Bucket) (record, error) {
	var r record
	err := json.Unmarshal(rb.Get(keyRun), &r)
	return r, err
}

func putRecord(rb *bolt.Bucket, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return rb.Put(keyRun, b)
}

// Create implements [engine.Store.Create].
func (s *Store) Create(ctx context.Context, r engine.Run, idemKey string) (engine.Run, bool, error) {
	if err := session.ValidStoreID(r.StoreID); err != nil {
		return r, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var existing string
	err := s.db.Update(func(tx *bolt.Tx) error {
		ik := []byte(r.Tenant + "\x00" + r.Workflow + "\x00" + idemKey)
		if idemKey != "" {
			if prev := tx.Bucket(bucketIdem).Get(ik); prev != nil {
				existing = string(prev)
				return nil
			}
		}
		rb, err := tx.Bucket(bucketRuns).CreateBucket([]byte(r.StoreID))
		if err != nil {
			return err
		}
		if _, err := rb.CreateBucket(keySteps); err != nil {
			return err
		}
		if _, err := rb.CreateBucket(keyEvents); err != nil {
			return err
		}
		if err := putRecord(rb, record{ID: r.ID, Tenant: r.Tenant, Workflow: r.Workflow, Status: r.Status, Input: r.Input,
			Created: r.CreatedAt.UnixMilli(), Updated: r.UpdatedAt.UnixMilli()}); err != nil {
			return err
		}
		if idemKey != "" {
			return tx.Bucket(bucketIdem).Put(ik, []byte(r.StoreID))
		}
		return nil
	})
	if err != nil {
		return r, false, fmt.Errorf("create run %s: %w", r.StoreID, err)
	}
	if existing != "" {
		snap, err := s.get(existing)
		if err != nil {
			return r, false, err
		}
		return snap.Run, false, nil
	}
	s.push(r.StoreID)
	return r, true, nil
}

// held reports whether another token holds id's lease now.
func (s *Store) held(id, token string) (lease, bool) {
	l, ok := s.leases[id]
	if !ok || !time.Now().Before(l.until) {
		return l, false
	}
	return l, l.token != token
}

func (s *Store) owns(id, token string) bool {
	l, ok := s.leases[id]
	return ok && l.token == token && time.Now().Before(l.until)
}

// Acquire implements [engine.Store.Acquire].
func (s *Store) Acquire(ctx context.Context, id, token string, ttl time.Duration, expiry time.Time) (*engine.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, busy := s.held(id, token); busy {
		s.active[id] = expiry
		return nil, &engine.BusyError{RetryAfter: time.Until(l.until)}
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRuns).Bucket([]byte(id))
		if rb == nil {
			return engine.ErrNotFound
		}
		r, err := readRecord(rb)
		if err != nil {
			return err
		}
		if r.Status == engine.Sleeping || r.Status == engine.Waiting {
			r.Status = engine.Running
			return putRecord(rb, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("acquire run %s: %w", id, err)
	}
	s.leases[id] = lease{token: token, until: time.Now().Add(ttl)}
	s.active[id] = expiry
	return s.get(id)
}

// Renew implements [engine.Store.Renew].
func (s *Store) Renew(ctx context.Context, id, token string, ttl time.Duration, expiry time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.owns(id, token) {
		return fmt.Errorf("renew run %s: %w", id, engine.ErrLeaseLost)
	}
	s.leases[id] = lease{token: token, until: time.Now().Add(ttl)}
	s.active[id] = expiry
	return nil
}

func (s *Store) drop(id string) {
	delete(s.leases, id)
	delete(s.active, id)
}

// Commit implements [engine.Store.Commit].
func (s *Store) Commit(ctx context.Context, id, token string, c engine.Commit) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.owns(id, token) {
		return fmt.Errorf("commit run %s: %w", id, engine.ErrLeaseLost)
	}
	var canceled, wake bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRuns).Bucket([]byte(id))
		if rb == nil {
			return engine.ErrNotFound
		}
		r, err := readRecord(rb)
		if err != nil {
			return err
		}
		if r.Status == engine.Canceled {
			canceled = true
			return nil
		}
		for _, rec := range c.Steps {
			b, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			if err := rb.Bucket(keySteps).Put([]byte(rec.Key), b); err != nil {
				return err
			}
		}
		events := rb.Bucket(keyEvents)
		if c.ConsumeEvent != "" {
			if err := events.Delete([]byte(c.ConsumeEvent)); err != nil {
				return err
			}
		}
		if c.Status != "" {
			r.Status, r.Output, r.Error, r.Updated = c.Status, c.Output, c.Error, c.Now.UnixMilli()
		}
		if !c.Due.IsZero() {
			r.Due = c.Due.UnixMilli()
		} else if c.Release {
			r.Due = 0
		}
		if c.Release && c.Status == engine.Waiting && events.Stats().KeyN > c.KnownEvents {
			wake = true
		}
		return putRecord(rb, r)
	})
	if err != nil {
		return fmt.Errorf("commit run %s: %w", id, err)
	}
	if canceled {
		s.drop(id)
		delete(s.timers, id)
		return fmt.Errorf("commit run %s: %w", id, engine.ErrCanceled)
	}
	if !c.Due.IsZero() {
		s.timers[id] = c.Due
	} else if c.Release {
		delete(s.timers, id)
	}
	if c.Release {
		s.drop(id)
	}
	if wake {
		s.push(id)
	}
	return nil
}

// Get implements [engine.Store.Get].
func (s *Store) Get(ctx context.Context, id string) (*engine.Snapshot, error) {
	return s.get(id)
}

func (s *Store) get(id string) (*engine.Snapshot, error) {
	var snap *engine.Snapshot
	err := s.db.View(func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRuns).Bucket([]byte(id))
		if rb == nil {
			return fmt.Errorf("%w: run %s", engine.ErrNotFound, id)
		}
		r, err := readRecord(rb)
		if err != nil {
			return err
		}
		snap = &engine.Snapshot{Run: r.run(id), Steps: map[string]engine.StepRecord{}, Events: map[string]json.RawMessage{}}
		if err := rb.Bucket(keySteps).ForEach(func(k, v []byte) error {
			var rec engine.StepRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return err
			}
			snap.Steps[string(k)] = rec
			return nil
		}); err != nil {
			return err
		}
		return rb.Bucket(keyEvents).ForEach(func(k, v []byte) error {
			snap.Events[string(k)] = append(json.RawMessage(nil), v...)
			return nil
		})
	})
	return snap, err
}

func (r record) run(id string) engine.Run {
	return engine.Run{ID: r.ID, StoreID: id, Tenant: r.Tenant, Workflow: r.Workflow, Status: r.Status,
		Input: r.Input, Output: r.Output, Error: r.Error,
		CreatedAt: time.UnixMilli(r.Created).UTC(), UpdatedAt: time.UnixMilli(r.Updated).UTC()}
}

// List implements [engine.Store.List].
func (s *Store) List(ctx context.Context, tenant, workflow, status string, limit int) ([]engine.Run, error) {
	if tenant == "" {
		tenant = session.DefaultTenant
	}
	runs := []engine.Run{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns)
		return b.ForEachBucket(func(id []byte) error {
			if t, _ := session.Unscope(string(id)); t != tenant {
				return nil
			}
			r, err := readRecord(b.Bucket(id))
			if err != nil {
				return err
			}
			if (workflow == "" || r.Workflow == workflow) && (status == "" || r.Status == status) {
				run := r.run(string(id))
				run.Input, run.Output = nil, nil
				runs = append(runs, run)
			}
			return nil
		})
	})
	sort.SliceStable(runs, func(i, j int) bool { return runs[i].CreatedAt.After(runs[j].CreatedAt) })
	if limit > 0 && len(runs) > limit {
		runs = runs[:limit]
	}
	return runs, err
}

// status reads a run's status in tx; "" when there is no run.
func status(tx *bolt.Tx, id string) (*bolt.Bucket, record, error) {
	rb := tx.Bucket(bucketRuns).Bucket([]byte(id))
	if rb == nil {
		_, rid := session.Unscope(id)
		return nil, record{}, fmt.Errorf("%w: no run %q", engine.ErrNotFound, rid)
	}
	r, err := readRecord(rb)
	if err == nil && engine.Final(r.Status) {
		err = fmt.Errorf("%w: the run is %s", engine.ErrFinished, r.Status)
	}
	return rb, r, err
}

// Signal implements [engine.Store.Signal].
func (s *Store) Signal(ctx context.Context, id, event string, body json.RawMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var wake bool
	err := s.db.Update(func(tx *bolt.Tx) error {
		rb, r, err := status(tx, id)
		if err != nil {
			return err
		}
		wake = r.Status == engine.Waiting
		return rb.Bucket(keyEvents).Put([]byte(event), body)
	})
	if err != nil {
		return err
	}
	if wake {
		s.push(id)
	}
	return nil
}

// Cancel implements [engine.Store.Cancel].
func (s *Store) Cancel(ctx context.Context, id string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		rb, r, err := status(tx, id)
		if err != nil {
			return err
		}
		r.Status, r.Error, r.Updated, r.Due = engine.Canceled, "canceled", now.UnixMilli(), 0
		return putRecord(rb, r)
	})
	if err == nil {
		delete(s.timers, id)
	}
	return err
}

// Fire implements [engine.Store.Fire].
func (s *Store) Fire(ctx context.Context, now time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range []map[string]time.Time{s.timers, s.active} {
		for id, due := range m {
			if !due.After(now) {
				delete(m, id)
				s.push(id)
				n++
			}
		}
	}
	return n, nil
}

// Next implements [engine.Store.Next].
func (s *Store) Next(ctx context.Context, wait time.Duration) (string, error) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		s.mu.Lock()
		if len(s.ready) > 0 {
			id := s.ready[0]
			s.ready = s.ready[1:]
			more := len(s.ready) > 0
			s.mu.Unlock()
			if more { // pass the wake-up on to another waiting worker
				select {
				case s.wake <- struct{}{}:
				default:
				}
			}
			return id, nil
		}
		s.mu.Unlock()
		if wait <= 0 {
			return "", nil
		}
		select {
		case <-s.wake:
		case <-timeout:
			return "", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

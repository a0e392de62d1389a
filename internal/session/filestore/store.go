// Package filestore keeps sessions in one local file, the default that
// needs no setup: a restart keeps the sessions, and nothing else has to
// run.
//
// The file is a bbolt database, which gives each write transaction
// atomicity and durability (fsync on commit) without a server. bbolt lets
// one process open a file at a time (it takes an flock), so this store
// serves one process, with any number of goroutines; processes that
// share sessions need package redisstore. A second process opening the
// file gets an error saying so, after a short wait, instead of hanging.
//
// The layout mirrors the Redis store. Under the "sessions" bucket, each
// session is a bucket holding:
//
//	meta   JSON: version, turns, counters, expiry (unix ns), pending mark
//	lease  JSON: token, idempotency key, expiry (unix ns), holder's
//	       process id
//	pinned Commit.Pinned of the first commit that had one, as is
//	msgs   bucket: message i under its 8-byte big-endian index
//	idem   bucket: idempotency key → expiry, request hash, response
//	tools  bucket: tool_use id → tool result of the open turn
//	       ([session.ToolResultStore]); dropped by every commit
//
// Beside "sessions", the "kv" bucket holds the values of [session.KV],
// each with its expiry.
//
// A lease records the id of the Store (the process) that took it. Only
// one process has the file open at a time, so a lease taken by another
// process id was left by a process that is gone (crashed, or killed
// mid-turn): Begin takes it over at once instead of waiting for its TTL
// (see #17's fast takeover). The flock is the liveness record: the
// kernel drops it when the process dies.
//
// Messages are stored one per key and appended, so a commit writes its
// new messages, not the history. Expiry is wall time stored in the file:
// an expired session or lease reads as absent, is removed by the next
// write that touches it, and a background sweep removes the ones nobody
// touches.
package filestore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/lambdagent/lambdagent/internal/session"
)

// Defaults for a zero [Config].
const (
	DefaultTTL            = 7 * 24 * time.Hour
	DefaultIdempotencyTTL = 24 * time.Hour
	DefaultSweepInterval  = time.Hour
)

// openTimeout bounds the wait for the file lock held by another process.
const openTimeout = time.Second

// Config tunes a Store. A zero field means its default.
type Config struct {
	// TTL is how long a session is kept after its last commit. Zero means
	// DefaultTTL (7 days).
	TTL time.Duration
	// IdempotencyTTL is how long a turn's answer stays available to
	// repeats of its request. Zero means DefaultIdempotencyTTL (24 hours).
	// It is capped at TTL: a forgotten session forgets its answers too.
	IdempotencyTTL time.Duration
	// SweepInterval is how often a background sweep removes expired
	// sessions from the file. Zero means DefaultSweepInterval (1 hour);
	// negative turns the sweep off, leaving expired sessions invisible
	// but on disk until touched.
	SweepInterval time.Duration
}

// Store is a [session.Store] in a bbolt file. It is safe for concurrent
// use by goroutines of one process; see the package comment.
type Store struct {
	db      *bolt.DB
	ttl     time.Duration
	idemTTL time.Duration
	proc    string // this process's id, recorded in its leases

	stopSweep context.CancelFunc
	swept     chan struct{} // closed when the sweeper has returned
	closeOnce sync.Once
	closeErr  error
}

var _ session.Store = (*Store)(nil)

// Bucket and key names.
var (
	bucketSessions = []byte("sessions")
	keyMeta        = []byte("meta")
	keyLease       = []byte("lease")
	keyPinned      = []byte("pinned")
	bucketMsgs     = []byte("msgs")
	bucketIdem     = []byte("idem")
	bucketTools    = []byte("tools")
	bucketKV       = []byte("kv")
)

// Open opens or creates the session file at path; its directory must
// exist. If another process has the file open, Open fails after about a
// second. Close the Store to release the file.
func Open(path string, cfg Config) (*Store, error) {
	if cfg.TTL < 0 || cfg.IdempotencyTTL < 0 {
		return nil, fmt.Errorf("filestore: negative TTL (TTL %v, IdempotencyTTL %v)", cfg.TTL, cfg.IdempotencyTTL)
	}
	s := &Store{ttl: cfg.TTL, idemTTL: cfg.IdempotencyTTL, proc: rand.Text()}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.idemTTL == 0 {
		s.idemTTL = DefaultIdempotencyTTL
	}
	s.idemTTL = min(s.idemTTL, s.ttl)

	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open session file %s: the file is in use by another process; use Redis to share sessions between processes: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open session file %s: %w", path, err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSessions, bucketIndex, bucketUsage} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("open session file %s: %w", path, err)
	}
	s.db = db

	ctx, cancel := context.WithCancel(context.Background())
	s.stopSweep, s.swept = cancel, make(chan struct{})
	interval := cfg.SweepInterval
	if interval == 0 {
		interval = DefaultSweepInterval
	}
	go s.sweepEvery(ctx, interval)
	return s, nil
}

// Close stops the background sweep and closes the file. It waits for
// transactions in flight. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.stopSweep()
		<-s.swept
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close session file %s: %w", s.db.Path(), err)
		}
	})
	return s.closeErr
}

// meta is a session's header.
type meta struct {
	Version  int64            `json:"v"`
	Turns    int64            `json:"t"`
	Counters map[string]int64 `json:"c,omitempty"`
	Expires  int64            `json:"e"` // unix ns
	Pending  string           `json:"p,omitempty"`
	// Created is when the first commit was (unix µs): the session's key
	// in the index (see catalog.go).
	Created int64 `json:"cr,omitempty"`
	// Cut and CutStarts are the session's cut ([session.Commit.Cut]):
	// Begin reads the messages from Cut on.
	Cut       int64 `json:"cut,omitempty"`
	CutStarts int64 `json:"cs,omitempty"`
}

type lease struct {
	Token   string `json:"t"`
	Key     string `json:"k,omitempty"` // idempotency key of the turn
	Expires int64  `json:"e"`           // unix ns
	Proc    string `json:"p,omitempty"` // the holder's Store.proc
}

// An idemRecord is stored as 8 bytes of expiry (unix ns), 4 bytes of hash
// length, the hash, then the response: the response is opaque bytes, and
// this keeps it out of JSON's base64.
type idemRecord struct {
	Expires  int64
	Hash     string
	Response []byte
}

func (r idemRecord) encode() []byte {
	b := make([]byte, 12, 12+len(r.Hash)+len(r.Response))
	binary.BigEndian.PutUint64(b, uint64(r.Expires))
	binary.BigEndian.PutUint32(b[8:], uint32(len(r.Hash)))
	return append(append(b, r.Hash...), r.Response...)
}

func decodeIdem(b []byte) (idemRecord, error) {
	if len(b) < 12 {
		return idemRecord{}, errors.New("short idempotency record")
	}
	n := int(binary.BigEndian.Uint32(b[8:]))
	if len(b) < 12+n {
		return idemRecord{}, errors.New("short idempotency record")
	}
	return idemRecord{
		Expires:  int64(binary.BigEndian.Uint64(b)),
		Hash:     string(b[12 : 12+n]),
		Response: bytes.Clone(b[12+n:]),
	}, nil
}

func msgKey(i int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

// readMeta returns a session's meta if it exists and has not expired.
func readMeta(sb *bolt.Bucket, now int64) (*meta, error) {
	if sb == nil {
		return nil, nil
	}
	b := sb.Get(keyMeta)
	if b == nil {
		return nil, nil
	}
	var m meta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode meta: %w", err)
	}
	if m.Expires <= now {
		return nil, nil
	}
	return &m, nil
}

// readLease returns a session's lease if one is held and has not expired.
func readLease(sb *bolt.Bucket, now int64) (*lease, error) {
	if sb == nil {
		return nil, nil
	}
	b := sb.Get(keyLease)
	if b == nil {
		return nil, nil
	}
	var l lease
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("decode lease: %w", err)
	}
	if l.Expires <= now {
		return nil, nil
	}
	return &l, nil
}

// readIdem returns the live record stored under key in a live session.
func readIdem(sb *bolt.Bucket, key string, now int64) (*idemRecord, error) {
	ib := sb.Bucket(bucketIdem)
	if ib == nil {
		return nil, nil
	}
	b := ib.Get([]byte(key))
	if b == nil {
		return nil, nil
	}
	r, err := decodeIdem(b)
	if err != nil {
		return nil, err
	}
	if r.Expires <= now {
		return nil, nil
	}
	return &r, nil
}

// readState reads a live session's history and sums: from the session's
// cut on when tail is set (Begin), else all of it (Load). The messages
// before the cut are not copied, only their lengths summed into
// HistoryBytes.
func readState(sb *bolt.Bucket, m *meta, tail bool) (*session.State, error) {
	st := &session.State{}
	if m == nil {
		return st, nil
	}
	st.Version, st.Turns, st.Pending = m.Version, m.Turns, m.Pending
	if len(m.Counters) > 0 {
		st.Counters = m.Counters
	}
	if p := sb.Get(keyPinned); p != nil {
		st.Pinned = bytes.Clone(p)
	}
	if m.Version == 0 {
		return st, nil
	}
	mb := sb.Bucket(bucketMsgs)
	if mb == nil {
		return nil, fmt.Errorf("version %d but no messages", m.Version)
	}
	// The values are views of the file's pages, valid only in the
	// transaction: copy them, once, into one buffer, so the agent's
	// request costs one more copy whatever the depth ([session.Joined]).
	if tail && m.Cut > 0 && m.Cut < m.Version {
		st.First, st.FirstStarts = m.Cut, m.CutStarts
	}
	views := make([][]byte, 0, m.Version-st.First)
	c := mb.Cursor()
	n := int64(0)
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if n >= st.First {
			views = append(views, v)
		}
		st.HistoryBytes += int64(len(v))
		n++
	}
	if n != m.Version {
		return nil, fmt.Errorf("version %d but %d messages", m.Version, n)
	}
	st.Messages = session.JoinMessages(views)
	return st, nil
}

// expire removes from sb, in a write transaction, the session data and
// the lease if they have expired, and idempotency records past their
// own expiry when pruneIdem is set.
func expire(sb *bolt.Bucket, now int64, pruneIdem bool) error {
	if b := sb.Get(keyMeta); b != nil {
		m, err := readMeta(sb, now)
		if err != nil {
			return err
		}
		if m == nil {
			if err := sb.Delete(keyMeta); err != nil {
				return err
			}
			if err := sb.Delete(keyPinned); err != nil {
				return err
			}
			for _, name := range [][]byte{bucketMsgs, bucketIdem, bucketTools} {
				if err := sb.DeleteBucket(name); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
					return err
				}
			}
		}
	}
	if b := sb.Get(keyLease); b != nil {
		l, err := readLease(sb, now)
		if err != nil {
			return err
		}
		if l == nil {
			if err := sb.Delete(keyLease); err != nil {
				return err
			}
		}
	}
	if ib := sb.Bucket(bucketIdem); pruneIdem && ib != nil {
		var dead [][]byte
		if err := ib.ForEach(func(k, v []byte) error {
			if r, err := decodeIdem(v); err != nil || r.Expires <= now {
				dead = append(dead, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range dead {
			if err := ib.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// dropIfEmpty deletes the bucket of a session that has neither data nor
// a lease left.
func dropIfEmpty(root, sb *bolt.Bucket, id []byte) error {
	if sb.Get(keyMeta) != nil || sb.Get(keyLease) != nil {
		return nil
	}
	return root.DeleteBucket(id)
}

// Begin implements [session.Store.Begin].
func (s *Store) Begin(ctx context.Context, req session.BeginRequest) (*session.State, error) {
	if err := session.ValidStoreID(req.ID); err != nil {
		return nil, fmt.Errorf("begin session %q: %w", req.ID, err)
	}
	if req.LeaseToken == "" {
		return nil, fmt.Errorf("begin session %s: empty lease token", req.ID)
	}
	if req.LeaseTTL <= 0 {
		return nil, fmt.Errorf("begin session %s: lease TTL %v is not positive", req.ID, req.LeaseTTL)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("begin session %s: %w", req.ID, err)
	}
	// A read transaction settles replays, mismatches and busy leases,
	// which write nothing; only taking the lease needs the writer (and an
	// fsync). The write transaction decides again: things may have moved.
	var st *session.State
	var write bool
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		st, write, err = begin(tx, req, s.proc, time.Now().UnixNano(), false)
		return err
	})
	if err == nil && write {
		err = s.db.Update(func(tx *bolt.Tx) error {
			var err error
			st, _, err = begin(tx, req, s.proc, time.Now().UnixNano(), true)
			return err
		})
	}
	if err != nil {
		if _, busy := errors.AsType[*session.BusyError](err); busy {
			return nil, err
		}
		return nil, fmt.Errorf("begin session %s: %w", req.ID, err)
	}
	return st, nil
}

// begin runs Begin in tx for the process proc. Unless write is set it
// stops where it would take the lease and reports that it needs to.
func begin(tx *bolt.Tx, req session.BeginRequest, proc string, now int64, write bool) (st *session.State, needWrite bool, err error) {
	root := tx.Bucket(bucketSessions)
	id := []byte(req.ID)
	sb := root.Bucket(id)
	if write && sb != nil {
		if err := expire(sb, now, false); err != nil {
			return nil, false, err
		}
	}
	m, err := readMeta(sb, now)
	if err != nil {
		return nil, false, err
	}
	if req.IdempotencyKey != "" && m != nil {
		r, err := readIdem(sb, req.IdempotencyKey, now)
		if err != nil {
			return nil, false, err
		}
		if r != nil {
			if r.Hash != req.RequestHash {
				return nil, false, fmt.Errorf("key %q: %w", req.IdempotencyKey, session.ErrIdempotencyMismatch)
			}
			return &session.State{Replay: r.Response}, false, nil
		}
	}
	l, err := readLease(sb, now)
	if err != nil {
		return nil, false, err
	}
	// A lease of another process is a dead one's: we hold the file.
	if l != nil && l.Token != req.LeaseToken && (l.Proc == "" || l.Proc == proc) {
		return nil, false, &session.BusyError{
			RetryAfter: time.Duration(l.Expires - now),
			SameKey:    req.IdempotencyKey != "" && l.Key == req.IdempotencyKey,
		}
	}
	if !write {
		return nil, true, nil
	}
	if sb == nil {
		if sb, err = root.CreateBucket(id); err != nil {
			return nil, false, err
		}
	}
	b, err := json.Marshal(lease{Token: req.LeaseToken, Key: req.IdempotencyKey, Expires: now + int64(req.LeaseTTL), Proc: proc})
	if err != nil {
		return nil, false, err
	}
	if err := sb.Put(keyLease, b); err != nil {
		return nil, false, err
	}
	if st, err = readState(sb, m, true); err != nil {
		return nil, false, err
	}
	if tb := sb.Bucket(bucketTools); tb != nil && m != nil {
		err = tb.ForEach(func(k, v []byte) error {
			if st.ToolResults == nil {
				st.ToolResults = map[string]json.RawMessage{}
			}
			st.ToolResults[string(k)] = bytes.Clone(v)
			return nil
		})
	}
	return st, false, err
}

// Commit implements [session.Store.Commit].
func (s *Store) Commit(ctx context.Context, c session.Commit) (int64, error) {
	if err := session.ValidStoreID(c.ID); err != nil {
		return 0, fmt.Errorf("commit session %q at v%d: %w", c.ID, c.Version, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("commit session %s at v%d: %w", c.ID, c.Version, err)
	}
	var version int64
	err := s.db.Update(func(tx *bolt.Tx) error {
		now := time.Now().UnixNano()
		root := tx.Bucket(bucketSessions)
		sb := root.Bucket([]byte(c.ID))
		if sb == nil {
			return session.ErrLeaseLost
		}
		if err := expire(sb, now, false); err != nil {
			return err
		}
		l, err := readLease(sb, now)
		if err != nil {
			return err
		}
		if l == nil || l.Token != c.LeaseToken {
			return session.ErrLeaseLost
		}
		m, err := readMeta(sb, now)
		if err != nil {
			return err
		}
		if m == nil {
			m = &meta{}
		}
		if m.Version != c.Version {
			return fmt.Errorf("%w (it is at v%d)", session.ErrConflict, m.Version)
		}

		if len(c.Messages) > 0 {
			mb, err := sb.CreateBucketIfNotExists(bucketMsgs)
			if err != nil {
				return err
			}
			mb.FillPercent = 1 // append-only: fill pages instead of splitting them in half
			for i, msg := range c.Messages {
				if err := mb.Put(msgKey(m.Version+int64(i)), msg); err != nil {
					return err
				}
			}
		}
		if len(c.Pinned) > 0 && sb.Get(keyPinned) == nil {
			if err := sb.Put(keyPinned, c.Pinned); err != nil {
				return err
			}
		}
		if err := s.catalogCommit(tx, c, m, now); err != nil {
			return err
		}
		m.Version += int64(len(c.Messages))
		if c.Cut != nil && c.Cut.Index > m.Cut && c.Cut.Index < m.Version {
			m.Cut, m.CutStarts = c.Cut.Index, c.Cut.Starts
		}
		m.Turns += c.Turns
		switch {
		case c.Release:
			m.Pending = ""
		case c.Pending != "":
			m.Pending = c.Pending
		}
		if err := sb.DeleteBucket(bucketTools); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		for name, n := range c.Counters {
			if m.Counters == nil {
				m.Counters = map[string]int64{}
			}
			m.Counters[name] += n
		}
		m.Expires = now + int64(s.ttl)
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := sb.Put(keyMeta, b); err != nil {
			return err
		}

		if c.IdempotencyKey != "" {
			ib, err := sb.CreateBucketIfNotExists(bucketIdem)
			if err != nil {
				return err
			}
			r := idemRecord{Expires: now + int64(s.idemTTL), Hash: c.RequestHash, Response: c.Response}
			if err := ib.Put([]byte(c.IdempotencyKey), r.encode()); err != nil {
				return err
			}
		}
		if c.Release {
			if err := sb.Delete(keyLease); err != nil {
				return err
			}
		}
		version = m.Version
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("commit session %s at v%d: %w", c.ID, c.Version, err)
	}
	return version, nil
}

// SaveToolResult implements [session.ToolResultStore].
func (s *Store) SaveToolResult(ctx context.Context, id, token, toolUseID string, result []byte) error {
	if err := session.ValidStoreID(id); err != nil {
		return fmt.Errorf("save tool result %s of session %q: %w", toolUseID, id, err)
	}
	if toolUseID == "" {
		return fmt.Errorf("save tool result of session %s: empty tool_use id", id)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("save tool result %s of session %s: %w", toolUseID, id, err)
	}
	// The results of parallel calls arrive together: Batch writes them in
	// one transaction, with one fsync. It may run the function again,
	// which only puts the same value again.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSessions).Bucket([]byte(id))
		l, err := readLease(sb, time.Now().UnixNano())
		if err != nil {
			return err
		}
		if l == nil || l.Token != token {
			return session.ErrLeaseLost
		}
		tb, err := sb.CreateBucketIfNotExists(bucketTools)
		if err != nil {
			return err
		}
		return tb.Put([]byte(toolUseID), result)
	})
	if err != nil {
		return fmt.Errorf("save tool result %s of session %s: %w", toolUseID, id, err)
	}
	return nil
}

// Get implements [session.KV].
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	var out []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		kb := tx.Bucket(bucketKV)
		if kb == nil {
			return nil
		}
		b := kb.Get([]byte(key))
		if len(b) < 8 {
			return nil
		}
		if exp := int64(binary.BigEndian.Uint64(b)); exp != 0 && exp <= time.Now().UnixNano() {
			return nil
		}
		out = bytes.Clone(b[8:])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return out, nil
}

// Set implements [session.KV]. An expired value stays in the file, unseen,
// until the key is set again: the keys are few and fixed.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	var exp int64
	if ttl > 0 {
		exp = time.Now().Add(ttl).UnixNano()
	}
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(exp))
	b = append(b, value...)
	err := s.db.Update(func(tx *bolt.Tx) error {
		kb, err := tx.CreateBucketIfNotExists(bucketKV)
		if err != nil {
			return err
		}
		return kb.Put([]byte(key), b)
	})
	if err != nil {
		return fmt.Errorf("set %s: %w", key, err)
	}
	return nil
}

// Renew implements [session.Store.Renew].
func (s *Store) Renew(ctx context.Context, id, token string, ttl time.Duration) error {
	if err := session.ValidStoreID(id); err != nil {
		return fmt.Errorf("renew lease of session %q: %w", id, err)
	}
	if ttl <= 0 {
		return fmt.Errorf("renew lease of session %s: TTL %v is not positive", id, ttl)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("renew lease of session %s: %w", id, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		now := time.Now().UnixNano()
		sb := tx.Bucket(bucketSessions).Bucket([]byte(id))
		l, err := readLease(sb, now)
		if err != nil {
			return err
		}
		if l == nil || l.Token != token {
			return session.ErrLeaseLost
		}
		l.Expires = now + int64(ttl)
		b, err := json.Marshal(l)
		if err != nil {
			return err
		}
		return sb.Put(keyLease, b)
	})
	if err != nil {
		return fmt.Errorf("renew lease of session %s: %w", id, err)
	}
	return nil
}

// Release implements [session.Store.Release].
func (s *Store) Release(ctx context.Context, id, token string) error {
	if err := session.ValidStoreID(id); err != nil {
		return fmt.Errorf("release lease of session %q: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("release lease of session %s: %w", id, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSessions)
		sb := root.Bucket([]byte(id))
		l, err := readLease(sb, time.Now().UnixNano())
		if err != nil || l == nil || l.Token != token {
			return err
		}
		if err := sb.Delete(keyLease); err != nil {
			return err
		}
		return dropIfEmpty(root, sb, []byte(id))
	})
	if err != nil {
		return fmt.Errorf("release lease of session %s: %w", id, err)
	}
	return nil
}

// Load implements [session.Store.Load].
func (s *Store) Load(ctx context.Context, id string) (*session.State, error) {
	if err := session.ValidStoreID(id); err != nil {
		return nil, fmt.Errorf("load session %q: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("load session %s: %w", id, err)
	}
	var st *session.State
	err := s.db.View(func(tx *bolt.Tx) error {
		sb := tx.Bucket(bucketSessions).Bucket([]byte(id))
		m, err := readMeta(sb, time.Now().UnixNano())
		if err != nil {
			return err
		}
		st, err = readState(sb, m, false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load session %s: %w", id, err)
	}
	return st, nil
}

// Delete implements [session.Store.Delete].
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := session.ValidStoreID(id); err != nil {
		return fmt.Errorf("delete session %q: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := unindex(tx, id); err != nil {
			return err
		}
		err := tx.Bucket(bucketSessions).DeleteBucket([]byte(id))
		if errors.Is(err, bolterrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	return nil
}

// sweepEvery sweeps until ctx is done; a negative interval never sweeps.
func (s *Store) sweepEvery(ctx context.Context, interval time.Duration) {
	defer close(s.swept)
	if interval < 0 {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			// A failed sweep is tried again at the next tick; until then
			// expired data only takes space, since reads skip it.
			s.sweep(ctx, time.Now().UnixNano())
		}
	}
}

// sweepBatch bounds how many sessions one write transaction sweeps, so
// turns waiting for the writer are not held up long.
const sweepBatch = 256

// sweep removes expired sessions, leases and idempotency records. It
// finds them in a read transaction and removes them in small write
// transactions, deciding again in each.
func (s *Store) sweep(ctx context.Context, now int64) error {
	var ids [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		root := tx.Bucket(bucketSessions)
		return root.ForEachBucket(func(id []byte) error {
			if stale(root.Bucket(id), now) {
				ids = append(ids, bytes.Clone(id))
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("sweep session file: %w", err)
	}
	for batch := range slices.Chunk(ids, sweepBatch) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err := s.db.Update(func(tx *bolt.Tx) error {
			root := tx.Bucket(bucketSessions)
			for _, id := range batch {
				sb := root.Bucket(id)
				if sb == nil {
					continue
				}
				if err := expire(sb, now, true); err != nil {
					return fmt.Errorf("session %s: %w", id, err)
				}
				if err := dropIfEmpty(root, sb, id); err != nil {
					return fmt.Errorf("session %s: %w", id, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sweep session file: %w", err)
		}
	}
	return nil
}

// stale reports whether a session holds anything expired.
func stale(sb *bolt.Bucket, now int64) bool {
	if b := sb.Get(keyMeta); b != nil {
		if m, err := readMeta(sb, now); err == nil && m == nil {
			return true
		}
	}
	if b := sb.Get(keyLease); b != nil {
		if l, err := readLease(sb, now); err == nil && l == nil {
			return true
		}
	}
	if sb.Get(keyMeta) == nil && sb.Get(keyLease) == nil {
		return true
	}
	found := false
	if ib := sb.Bucket(bucketIdem); ib != nil {
		c := ib.Cursor()
		for k, v := c.First(); k != nil && !found; k, v = c.Next() {
			if r, err := decodeIdem(v); err == nil && r.Expires <= now {
				found = true
			}
		}
	}
	return found
}

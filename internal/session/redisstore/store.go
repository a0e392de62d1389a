// Package redisstore keeps sessions in Redis, for processes that share
// them: many Lambda instances, or several servers behind a balancer.
//
// Each session is a handful of keys under one Redis Cluster hash tag, so
// a session never spans slots:
//
//	<prefix>{<id>}:msgs        LIST of raw message JSON, appended with RPUSH
//	<prefix>{<id>}:meta        HASH: turns, c:<name> for each counter, and
//	                           pending (the mark of an unfinished turn), pinned
//	                           (Commit.Pinned of the first commit that had one)
//	<prefix>{<id>}:lease       HASH: t (token), k (idempotency key); PX expiry
//	<prefix>{<id>}:idem:<key>  HASH: h (request hash), r (response); own TTL
//	<prefix>{<id>}:idemkeys    ZSET of the idempotency keys, for Delete
//	<prefix>{<id>}:tools       HASH: tool_use id → tool result of the open
//	                           turn ([session.ToolResultStore]); dropped by
//	                           every commit
//	<prefix>kv:<key>           STRING: a value of [session.KV]
//
// and the catalog's keys ([session.Catalog], see catalog.go): a session's
// turn records, each tenant's index of sessions and the usage per day.
//
// Every method is one Lua script run with EVALSHA: one round trip, and
// atomic, so the lease check (a fencing token) and the version check
// cannot be split from the writes they guard. The history is a list
// rather than one JSON document so that a commit sends only its new
// messages: the bytes written per turn do not grow with the history.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/session"
)

// Defaults for a zero [Config].
const (
	DefaultPrefix         = "lambdagent:"
	DefaultTTL            = 7 * 24 * time.Hour
	DefaultIdempotencyTTL = 24 * time.Hour
)

// Config tunes a Store. A zero field means its default.
type Config struct {
	// Prefix starts every key, so several apps or tests can share one
	// Redis. It must not contain '{' or '}', which would move the hash
	// tag. Empty means DefaultPrefix.
	Prefix string
	// TTL is how long a session is kept after its last commit. Zero means
	// DefaultTTL (7 days).
	TTL time.Duration
	// IdempotencyTTL is how long a turn's answer stays available to
	// repeats of its request. Zero means DefaultIdempotencyTTL (24 hours).
	// It is capped at TTL: a forgotten session forgets its answers too.
	IdempotencyTTL time.Duration
}

// Store is a [session.Store] on Redis. It is safe for concurrent use, and
// any number of Stores, in any number of processes, may share one Redis
// with the same Prefix.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	idemTTL time.Duration
}

var _ session.Store = (*Store)(nil)

// New returns a Store that keeps sessions in rdb, which may be a
// standalone, Sentinel or Cluster client. It does no I/O.
func New(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: nil Redis client")
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("redisstore: prefix %q contains a brace, which would break the cluster hash tag", cfg.Prefix)
	}
	if cfg.TTL < 0 || cfg.IdempotencyTTL < 0 {
		return nil, fmt.Errorf("redisstore: negative TTL (TTL %v, IdempotencyTTL %v)", cfg.TTL, cfg.IdempotencyTTL)
	}
	s := &Store{rdb: rdb, prefix: cfg.Prefix, ttl: cfg.TTL, idemTTL: cfg.IdempotencyTTL}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.ttl == 0 {
		s.ttl = DefaultTTL
	}
	if s.idemTTL == 0 {
		s.idemTTL = DefaultIdempotencyTTL
	}
	s.idemTTL = min(s.idemTTL, s.ttl)
	return s, nil
}

// keys names the keys of one session.
type keys struct {
	msgs, meta, lease, idemKeys, tools string
	idemPrefix                         string // + idempotency key
}

func (s *Store) keys(id string) keys {
	base := s.prefix + "{" + id + "}:"
	return keys{
		msgs:       base + "msgs",
		meta:       base + "meta",
		lease:      base + "lease",
		idemKeys:   base + "idemkeys",
		tools:      base + "tools",
		idemPrefix: base + "idem:",
	}
}

// Begin implements [session.Store.Begin].
func (s *Store) Begin(ctx context.Context, req session.BeginRequest) (*session.State, error) {
	if err := session.ValidStoreID(req.ID); err != nil {
		return nil, fmt.Errorf("begin session %q: %w", req.ID, err)
	}
	if err := checkLease(req.LeaseToken, req.LeaseTTL); err != nil {
		return nil, fmt.Errorf("begin session %s: %w", req.ID, err)
	}
	k := s.keys(req.ID)
	ks := []string{k.msgs, k.meta, k.lease, k.tools}
	if req.IdempotencyKey != "" {
		ks = append(ks, k.idemPrefix+req.IdempotencyKey)
	}
	res, err := beginScript.Run(ctx, s.rdb, ks, req.LeaseToken, millis(req.LeaseTTL), req.IdempotencyKey, req.RequestHash).Slice()
	if err != nil {
		return nil, wrap(err, "begin session %s", req.ID)
	}
	bad := func() (*session.State, error) {
		return nil, fmt.Errorf("begin session %s: unexpected reply %v", req.ID, res)
	}
	switch status(res) {
	case "ok":
		if len(res) != 4 {
			return bad()
		}
		st, ok := parseState(res[1], res[2])
		if !ok {
			return bad()
		}
		if st.ToolResults, ok = parseToolResults(res[3]); !ok {
			return bad()
		}
		return st, nil
	case "replay":
		r, ok := res[1].(string)
		if !ok {
			return bad()
		}
		return &session.State{Replay: []byte(r)}, nil
	case "mismatch":
		return nil, fmt.Errorf("begin session %s with key %q: %w", req.ID, req.IdempotencyKey, session.ErrIdempotencyMismatch)
	case "busy":
		if len(res) != 3 {
			return bad()
		}
		pttl, _ := res[1].(int64)
		same, _ := res[2].(int64)
		return nil, &session.BusyError{RetryAfter: retryAfter(pttl), SameKey: same == 1}
	}
	return bad()
}

// retryAfter turns a lease's PTTL into BusyError.RetryAfter: -1 (no
// expiry, which the scripts never leave) is unknown, and a lease about to
// end has at least a millisecond left.
func retryAfter(pttl int64) time.Duration {
	if pttl < 0 {
		return 0
	}
	return time.Duration(max(pttl, 1)) * time.Millisecond
}

// Commit implements [session.Store.Commit].
func (s *Store) Commit(ctx context.Context, c session.Commit) (int64, error) {
	if err := session.ValidStoreID(c.ID); err != nil {
		return 0, fmt.Errorf("commit session %q at v%d: %w", c.ID, c.Version, err)
	}
	k := s.keys(c.ID)
	ks := []string{k.msgs, k.meta, k.lease, k.idemKeys, k.tools}
	if c.IdempotencyKey != "" {
		ks = append(ks, k.idemPrefix+c.IdempotencyKey)
	}
	release := "0"
	if c.Release {
		release = "1"
	}
	names := make([]string, 0, len(c.Counters))
	for name := range c.Counters {
		names = append(names, name)
	}
	slices.Sort(names) // the same commit is the same command, byte for byte
	args := make([]any, 0, 12+2*len(names)+len(c.Messages))
	args = append(args, c.LeaseToken, c.Version, c.Turns, release, millis(s.ttl), millis(s.idemTTL),
		c.IdempotencyKey, c.RequestHash, c.Response, c.Pending, c.Pinned, len(names))
	for _, name := range names {
		args = append(args, name, c.Counters[name])
	}
	for _, m := range c.Messages {
		args = append(args, []byte(m)) // go-redis writes []byte as is, but not json.RawMessage
	}
	res, err := s.commit(ctx, c, ks, args)
	if err != nil {
		return 0, wrap(err, "commit session %s at v%d", c.ID, c.Version)
	}
	switch status(res) {
	case "ok":
		if v, ok := res[1].(int64); ok && len(res) == 2 {
			return v, nil
		}
	case "lost":
		return 0, fmt.Errorf("commit session %s at v%d: %w", c.ID, c.Version, session.ErrLeaseLost)
	case "conflict":
		if v, ok := res[1].(int64); ok && len(res) == 2 {
			return 0, fmt.Errorf("commit session %s at v%d: %w (it is at v%d)", c.ID, c.Version, session.ErrConflict, v)
		}
	}
	return 0, fmt.Errorf("commit session %s at v%d: unexpected reply %v", c.ID, c.Version, res)
}

// Renew implements [session.Store.Renew].
func (s *Store) Renew(ctx context.Context, id, token string, ttl time.Duration) error {
	if err := session.ValidStoreID(id); err != nil {
		return fmt.Errorf("renew lease of session %q: %w", id, err)
	}
	if ttl <= 0 {
		return fmt.Errorf("renew lease of session %s: TTL %v is not positive", id, ttl)
	}
	n, err := renewScript.Run(ctx, s.rdb, []string{s.keys(id).lease}, token, millis(ttl)).Int64()
	if err != nil {
		return wrap(err, "renew lease of session %s", id)
	}
	if n != 1 {
		return fmt.Errorf("renew lease of session %s: %w", id, session.ErrLeaseLost)
	}
	return nil
}

// Release implements [session.Store.Release].
func (s *Store) Release(ctx context.Context, id, token string) error {
	if err := session.ValidStoreID(id); err != nil {
		return fmt.Errorf("release lease of session %q: %w", id, err)
	}
	if err := releaseScript.Run(ctx, s.rdb, []string{s.keys(id).lease}, token).Err(); err != nil {
		return wrap(err, "release lease of session %s", id)
	}
	return nil
}

// Load implements [session.Store.Load].
func (s *Store) Load(ctx context.Context, id string) (*session.State, error) {
	if err := session.ValidStoreID(id); err != nil {
		return nil, fmt.Errorf("load session %q: %w", id, err)
	}
	k := s.keys(id)
	res, err := loadScript.Run(ctx, s.rdb, []string{k.msgs, k.meta}).Slice()
	if err != nil {
		return nil, wrap(err, "load session %s", id)
	}
	if len(res) == 2 {
		if st, ok := parseState(res[0], res[1]); ok {
			return st, nil
		}
	}
	return nil, fmt.Errorf("load session %s: unexpected reply %v", id, res)
}

// Delete implements [session.Store.Delete].
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := session.ValidStoreID(id); err != nil {
		return fmt.Errorf("delete session %q: %w", id, err)
	}
	k := s.keys(id)
	ks := []string{k.msgs, k.meta, k.lease, k.idemKeys, k.tools}
	// The catalog's keys (see catalog.go) go in the same round trip: the
	// index is on another slot.
	tenant, sid := session.Unscope(id)
	pipe := s.rdb.Pipeline()
	del := deleteScript.EvalSha(ctx, pipe, ks, k.idemPrefix)
	pipe.Unlink(ctx, k.turns())
	pipe.ZRem(ctx, s.indexKey(tenant), sid)
	_, _ = pipe.Exec(ctx)
	err := del.Err()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		err = deleteScript.Eval(ctx, s.rdb, ks, k.idemPrefix).Err()
	}
	if err != nil {
		return wrap(err, "delete session %s", id)
	}
	return nil
}

// SaveToolResult implements [session.ToolResultStore].
func (s *Store) SaveToolResult(ctx context.Context, id, token, toolUseID string, result []byte) error {
	if err := session.ValidStoreID(id); err != nil {
		return fmt.Errorf("save tool result %s of session %q: %w", toolUseID, id, err)
	}
	if toolUseID == "" {
		return fmt.Errorf("save tool result of session %s: empty tool_use id", id)
	}
	k := s.keys(id)
	n, err := saveToolScript.Run(ctx, s.rdb, []string{k.lease, k.tools}, token, toolUseID, result, millis(s.ttl)).Int64()
	if err != nil {
		return wrap(err, "save tool result %s of session %s", toolUseID, id)
	}
	if n != 1 {
		return fmt.Errorf("save tool result %s of session %s: %w", toolUseID, id, session.ErrLeaseLost)
	}
	return nil
}

// Get implements [session.KV].
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	b, err := s.rdb.Get(ctx, s.prefix+"kv:"+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap(err, "get %s", key)
	}
	return b, nil
}

// Set implements [session.KV].
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	// go-redis reads a negative expiration as KEEPTTL: no expiry is 0.
	if err := s.rdb.Set(ctx, s.prefix+"kv:"+key, value, max(ttl, 0)).Err(); err != nil {
		return wrap(err, "set %s", key)
	}
	return nil
}

func checkLease(token string, ttl time.Duration) error {
	if token == "" {
		return errors.New("empty lease token")
	}
	if ttl <= 0 {
		return fmt.Errorf("lease TTL %v is not positive", ttl)
	}
	return nil
}

// millis rounds d up to whole milliseconds, at least one: PX and PEXPIRE
// take milliseconds, and zero would mean "expire now" or an error.
func millis(d time.Duration) int64 {
	return max(1, int64((d+time.Millisecond-1)/time.Millisecond))
}

func status(res []any) string {
	if len(res) == 0 {
		return ""
	}
	s, _ := res[0].(string)
	return s
}

// parseState builds a State from a script's LRANGE and HGETALL replies.
func parseState(msgs, meta any) (*session.State, bool) {
	ms, ok1 := msgs.([]any)
	fields, ok2 := meta.([]any)
	if !ok1 || !ok2 || len(fields)%2 != 0 {
		return nil, false
	}
	st := &session.State{Version: int64(len(ms))}
	if len(ms) > 0 {
		st.Messages = make([]json.RawMessage, len(ms))
	}
	for i, m := range ms {
		s, ok := m.(string)
		if !ok {
			return nil, false
		}
		st.Messages[i] = rawMessage(s)
	}
	for i := 0; i < len(fields); i += 2 {
		f, ok1 := fields[i].(string)
		v, ok2 := fields[i+1].(string)
		if ok1 && ok2 && f == "pending" {
			st.Pending = v
			continue
		}
		if ok1 && ok2 && f == "pinned" {
			st.Pinned = []byte(v)
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok1 || !ok2 || err != nil {
			return nil, false
		}
		switch {
		case f == "turns":
			st.Turns = n
		case strings.HasPrefix(f, "c:"):
			if st.Counters == nil {
				st.Counters = map[string]int64{}
			}
			st.Counters[f[len("c:"):]] = n
		}
	}
	return st, true
}

// parseToolResults builds State.ToolResults from a script's HGETALL
// reply: nil when there are none.
func parseToolResults(fields any) (map[string]json.RawMessage, bool) {
	fs, ok := fields.([]any)
	if !ok || len(fs)%2 != 0 {
		return nil, false
	}
	if len(fs) == 0 {
		return nil, true
	}
	out := make(map[string]json.RawMessage, len(fs)/2)
	for i := 0; i < len(fs); i += 2 {
		id, ok1 := fs[i].(string)
		r, ok2 := fs[i+1].(string)
		if !ok1 || !ok2 {
			return nil, false
		}
		out[id] = rawMessage(r)
	}
	return out, true
}

// wrap adds what was being done to err and marks it [session.ErrUnavailable]
// unless it is a reply that retrying will not change (a script error,
// WRONGTYPE) or the caller's own cancellation. Both stay visible to
// errors.Is.
func wrap(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, context.Canceled) || !transient(err) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w: %w", what, session.ErrUnavailable, err)
}

// transientReplies are the error replies of a server that cannot serve
// now but may soon: loading, failing over, out of memory, stuck in a
// script.
var transientReplies = []string{"LOADING", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "BUSY", "OOM", "NOREPLICAS", "MISCONF"}

func transient(err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) {
		return true // the network, a timeout, a closed pool
	}
	for _, p := range transientReplies {
		if redis.HasErrorPrefix(err, p+" ") {
			return true
		}
	}
	return false
}

// rawMessage views a reply string as a json.RawMessage without copying it.
// The history is the bulk of what a turn reads, and a copy of every message
// doubled the allocations of a deep session's turn. Safe because strings
// are immutable and State.Messages is read-only by contract.
func rawMessage(s string) json.RawMessage {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

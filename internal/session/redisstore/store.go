// Package redisstore keeps sessions in Redis, for processes that share
// them: many Lambda instances, or several servers behind a balancer.
//
// Each session is a handful of keys under one Redis Cluster hash tag, so
// a session never spans slots:
//
//	<prefix>{<id>}:hist        STRING: the history, message JSON joined by
//	                           commas, appended with APPEND
//	<prefix>{<id>}:hlen        STRING: each message's length in hist, 4
//	                           bytes big-endian, appended with APPEND; its
//	                           length / 4 is the version
//	<prefix>{<id>}:msgs        LIST of message JSON: the legacy history,
//	                           read as is and converted by the next commit
//	<prefix>{<id>}:meta        HASH: turns, c:<name> for each counter, and
//	                           pending (the mark of an unfinished turn), pinned
//	                           (Commit.Pinned of the first commit that had one),
//	                           cut, cutoff, cutstarts (the session's cut: the
//	                           index of the first message Begin reads, its
//	                           byte offset in hist, the turn starts before it;
//	                           see [session.Commit.Cut])
//	<prefix>{<id>}:lease       HASH: t (token), k (idempotency key); PX expiry
//	<prefix>{<id>}:idem:<key>  HASH: h (request hash), r (response); own TTL
//	<prefix>{<id>}:idemkeys    ZSET of the idempotency keys, for Delete
//	<prefix>{<id>}:tools       HASH: tool_use id → tool result of the open
//	                           turn ([session.ToolResultStore]); dropped by
//	                           every commit
//	<prefix>kv:<key>           STRING: a value of [session.KV]
//	<prefix>proc:<process id>  STRING: a live process's heartbeat; PX
//	                           expiry (Config.Liveness)
//
// A crashed process's leases do not block its sessions for the lease
// TTL (see #17): each Store is a process with a random id, which every
// lease it takes records, and one background loop per Store keeps the
// process's liveness key alive (SET PX Liveness every third of it). A
// Begin that finds a lease held by another process whose liveness key
// is gone takes the lease over, conditioned on the dead holder's token,
// so a session is free again within Liveness of its holder's death. That
// costs one EXISTS and a second script run, on the contention path only
// (a separate command: on Redis Cluster the liveness key is in another
// slot than the session). A turn's own cost is unchanged: the heartbeat
// is per process, not per lease. A live holder that stalls longer than
// Liveness loses its leases, and its commit fails with ErrLeaseLost (the
// lease token fences it): nothing is lost, the turn is retried.
//
// and the catalog's keys ([session.Catalog], see catalog.go): a session's
// turn records, each tenant's index of sessions and the usage per day.
//
// Every method is one Lua script run with EVALSHA: one round trip, and
// atomic, so the lease check (a fencing token) and the version check
// cannot be split from the writes they guard.
//
// The history is appended to, not rewritten, so that a commit sends only
// its new messages: the bytes written per turn do not grow with the
// history. It is read as two large values rather than one reply element
// per message, so a deep session's Begin costs a copy of its bytes, not
// an allocation per message: hist is the inside of the messages array as
// the agent sends it to the model (see [session.Joined]), and hlen's
// lengths cut it into State.Messages without parsing JSON. Begin reads
// both from the session's cut on ([session.Commit.Cut]; two GETRANGEs), so
// a session whose strategy sends only the end of its history costs a turn
// that end, not the whole (see #14); Load reads everything. Earlier
// versions kept the history in the LIST msgs; such a session reads as before and
// its next commit converts it inside Redis (see commitScript). Processes
// of the old version must not share a Redis with this one: they read
// neither hist nor hlen.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	DefaultLiveness       = 3 * time.Second
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
	// Liveness is how long the process's liveness key outlives its last
	// renewal (renewed every third of it): a session whose lease holder
	// died is free again within about this long. Zero means
	// DefaultLiveness (3 s); negative turns fast takeover off, and a dead
	// holder's lease then ends only with its TTL.
	Liveness time.Duration
	// WaitReplicas makes Commit wait, with WAIT, until this many replicas
	// have the commit, and fail with a [NotReplicatedError] (marked
	// [session.ErrUnavailable]) otherwise. Zero means no wait: a commit
	// is acknowledged once its master has it.
	WaitReplicas int
	// WaitTimeout bounds that wait. Zero means DefaultWaitTimeout.
	WaitTimeout time.Duration
}

// Store is a [session.Store] on Redis. It is safe for concurrent use, and
// any number of Stores, in any number of processes, may share one Redis
// with the same Prefix.
type Store struct {
	rdb     redis.UniversalClient
	prefix  string
	ttl     time.Duration
	idemTTL time.Duration

	proc         string        // this process's id, recorded in its leases
	liveness     time.Duration // 0: fast takeover off
	hb           heartbeat
	waitReplicas int
	waitTimeout  time.Duration
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
	if cfg.WaitReplicas < 0 || cfg.WaitTimeout < 0 {
		return nil, fmt.Errorf("redisstore: negative WaitReplicas %d or WaitTimeout %v", cfg.WaitReplicas, cfg.WaitTimeout)
	}
	s := &Store{rdb: rdb, prefix: cfg.Prefix, ttl: cfg.TTL, idemTTL: cfg.IdempotencyTTL,
		waitReplicas: cfg.WaitReplicas, waitTimeout: cfg.WaitTimeout}
	if s.waitTimeout == 0 {
		s.waitTimeout = DefaultWaitTimeout
	}
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
	switch {
	case cfg.Liveness == 0:
		s.liveness = DefaultLiveness
	case cfg.Liveness > 0:
		s.liveness = max(cfg.Liveness, 30*time.Millisecond)
	}
	s.proc = rand.Text()
	return s, nil
}

// keys names the keys of one session.
type keys struct {
	msgs, meta, lease, idemKeys, tools string
	hist, hlen                         string
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
		hist:       base + "hist",
		hlen:       base + "hlen",
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
	ks := []string{k.msgs, k.meta, k.lease, k.tools, k.hist, k.hlen}
	if req.IdempotencyKey != "" {
		ks = append(ks, k.idemPrefix+req.IdempotencyKey)
	}
	s.alive()
	res, err := beginScript.Run(ctx, s.rdb, ks, req.LeaseToken, millis(req.LeaseTTL), req.IdempotencyKey, req.RequestHash, s.proc, "").Slice()
	if err != nil {
		return nil, wrap(err, "begin session %s", req.ID)
	}
	if holder, ok := s.deadHolder(ctx, res); ok {
		// Its holder died: take the lease over, if it is still that one.
		res, err = beginScript.Run(ctx, s.rdb, ks, req.LeaseToken, millis(req.LeaseTTL), req.IdempotencyKey, req.RequestHash, s.proc, holder).Slice()
		if err != nil {
			return nil, wrap(err, "take over session %s", req.ID)
		}
	}
	bad := func() (*session.State, error) {
		return nil, fmt.Errorf("begin session %s: unexpected reply %v", req.ID, res)
	}
	switch status(res) {
	case "ok":
		if len(res) < 4 {
			return bad()
		}
		st, ok := parseState(res[1], res[3:])
		if !ok {
			return bad()
		}
		if st.ToolResults, ok = parseToolResults(res[2]); !ok {
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
		if len(res) != 6 {
			return bad()
		}
		pttl, _ := res[1].(int64)
		same, _ := res[2].(int64)
		ra := retryAfter(pttl)
		if s.liveness > 0 && (ra == 0 || ra > s.liveness) {
			// A dead holder's lease is taken over within Liveness: come
			// back then, not when its TTL ends.
			ra = s.liveness
		}
		return nil, &session.BusyError{RetryAfter: ra, SameKey: same == 1}
	}
	return bad()
}

// deadHolder reports, for a busy reply, whether the lease's holder is
// another process whose liveness key is gone, and returns the holder's
// token to take over. A lease younger than a third of Liveness is left
// alone whatever its holder's key says: a process that just started (or
// thawed, on Lambda) takes leases while its first heartbeat is on the
// way. A failed check says alive: the lease's TTL is the backstop.
func (s *Store) deadHolder(ctx context.Context, res []any) (token string, dead bool) {
	if s.liveness == 0 || status(res) != "busy" || len(res) != 6 {
		return "", false
	}
	proc, _ := res[3].(string)
	age, _ := res[4].(int64)
	token, _ = res[5].(string)
	if proc == "" || proc == s.proc || token == "" || age < s.liveness.Milliseconds()/3 {
		return "", false
	}
	n, err := s.rdb.Exists(ctx, s.procKey(proc)).Result()
	return token, err == nil && n == 0
}

func (s *Store) procKey(proc string) string { return s.prefix + "proc:" + proc }

// heartbeat is the Store's liveness loop, started by the first Begin.
type heartbeat struct {
	once  sync.Once
	kick  chan struct{} // beat now
	stop  chan struct{}
	done  chan struct{}
	last  atomic.Int64 // unix ns of the last beat that succeeded
	close sync.Once
}

// alive makes sure this process's liveness key is kept: it starts the
// loop on first use, and kicks it when the last beat is older than two
// of its periods (after a Lambda freeze, or Redis errors). It does no I/O itself,
// so a turn costs no round trip for it.
func (s *Store) alive() {
	if s.liveness == 0 {
		return
	}
	s.hb.once.Do(func() {
		s.hb.kick, s.hb.stop, s.hb.done = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
		go s.beat()
	})
	if s.hb.kick == nil {
		return // closed before it started
	}
	if time.Since(time.Unix(0, s.hb.last.Load())) > 2*s.liveness/3 {
		select {
		case s.hb.kick <- struct{}{}:
		default:
		}
	}
}

// beat renews the liveness key at once and then every third of Liveness
// until Close.
func (s *Store) beat() {
	defer close(s.hb.done)
	period := s.liveness / 3
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), period)
		if err := s.rdb.Set(ctx, s.procKey(s.proc), "1", s.liveness).Err(); err == nil {
			s.hb.last.Store(time.Now().UnixNano())
		}
		cancel()
		select {
		case <-s.hb.stop:
			return
		case <-t.C:
		case <-s.hb.kick:
		}
	}
}

// Close stops the liveness loop, the one goroutine a Store runs (from its
// first Begin on, unless Config.Liveness is negative), and deletes the
// process's liveness key,
// so that the leases this Store still holds (turns it will not finish)
// are taken over by the next Begin rather than after Liveness. It does
// not close the Redis client. Use no Store method after Close.
func (s *Store) Close() error {
	var err error
	s.hb.close.Do(func() {
		started := true
		s.hb.once.Do(func() { started = false }) // never started: keep it so
		if !started {
			return
		}
		close(s.hb.stop)
		<-s.hb.done
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if e := s.rdb.Del(ctx, s.procKey(s.proc)).Err(); e != nil {
			err = wrap(e, "delete liveness key of process %s", s.proc)
		}
	})
	return err
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
	ks := []string{k.msgs, k.meta, k.lease, k.idemKeys, k.tools, k.hist, k.hlen}
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
	joined, lens, err := appendable(c.Messages)
	if err != nil {
		return 0, fmt.Errorf("commit session %s at v%d: %w", c.ID, c.Version, err)
	}
	var cutIndex, cutStarts any = "", 0
	if c.Cut != nil {
		cutIndex, cutStarts = c.Cut.Index, c.Cut.Starts
	}
	args := make([]any, 0, 16+2*len(names))
	args = append(args, c.LeaseToken, c.Version, c.Turns, release, millis(s.ttl), millis(s.idemTTL),
		c.IdempotencyKey, c.RequestHash, c.Response, c.Pending, c.Pinned, joined, lens, cutIndex, cutStarts, len(names))
	for _, name := range names {
		args = append(args, name, c.Counters[name])
	}
	res, err := s.runCommit(ctx, c, ks, args)
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
	res, err := loadScript.Run(ctx, s.rdb, []string{k.msgs, k.meta, k.hist, k.hlen}).Slice()
	if err != nil {
		return nil, wrap(err, "load session %s", id)
	}
	if len(res) >= 2 {
		if st, ok := parseState(res[0], res[1:]); ok {
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
	ks := []string{k.msgs, k.meta, k.lease, k.idemKeys, k.tools, k.hist, k.hlen}
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

// parseState builds a State from a script's HGETALL reply of meta and
// its history (see readHistory).
func parseState(meta any, history []any) (*session.State, bool) {
	fields, ok := meta.([]any)
	if !ok || len(fields)%2 != 0 {
		return nil, false
	}
	var st *session.State
	if len(history) == 5 {
		msgs, first, starts, size, ok := readTail(history)
		if !ok {
			return nil, false
		}
		st = &session.State{Version: first + int64(len(msgs)), Messages: msgs, First: first, FirstStarts: starts, HistoryBytes: size}
	} else {
		msgs, ok := readHistory(history)
		if !ok {
			return nil, false
		}
		st = &session.State{Version: int64(len(msgs)), Messages: msgs}
		for _, m := range msgs {
			st.HistoryBytes += int64(len(m))
		}
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

// readHistory cuts a script's history reply into messages: hist and hlen
// as two strings, the messages are views of hist (no copy); a legacy
// LIST as one array of strings, they are joined once into one buffer, so
// that the agent's request still costs one copy of the history (see
// [session.Joined]). It reports false for anything else, or lengths that
// do not add up to hist.
func readHistory(history []any) ([]json.RawMessage, bool) {
	switch len(history) {
	case 1:
		list, ok := history[0].([]any)
		if !ok {
			return nil, false
		}
		ms := make([][]byte, len(list))
		for i, m := range list {
			s, ok := m.(string)
			if !ok {
				return nil, false
			}
			ms[i] = rawMessage(s)
		}
		return session.JoinMessages(ms), true
	case 2:
		hist, ok1 := history[0].(string)
		hlen, ok2 := history[1].(string)
		if !ok1 || !ok2 || len(hlen)%4 != 0 {
			return nil, false
		}
		n := len(hlen) / 4
		if n == 0 {
			return nil, hist == ""
		}
		buf := rawMessage(hist)
		msgs := make([]json.RawMessage, n)
		at := 0
		for i := range n {
			l := int(hlen[4*i])<<24 | int(hlen[4*i+1])<<16 | int(hlen[4*i+2])<<8 | int(hlen[4*i+3])
			if i > 0 {
				if at >= len(buf) || buf[at] != ',' {
					return nil, false
				}
				at++
			}
			if l == 0 || at+l > len(buf) {
				return nil, false
			}
			msgs[i] = buf[at : at+l]
			at += l
		}
		return msgs, at == len(buf)
	}
	return nil, false
}

// readTail cuts beginScript's history reply, the history from the cut on,
// into messages as readHistory does, and returns with them the cut's index
// and turn starts and the whole history's size, the sum of its messages'
// lengths (hist's length less its commas). It reports false for anything
// that does not add up: a cut without messages after it, or a hist too
// short to hold the tail and, before it, first messages of a byte and
// their commas.
func readTail(history []any) (msgs []json.RawMessage, first, starts, size int64, ok bool) {
	first, ok1 := history[2].(int64)
	starts, ok2 := history[3].(int64)
	histLen, ok3 := history[4].(int64)
	tail, ok4 := history[0].(string)
	if !ok1 || !ok2 || !ok3 || !ok4 || first < 0 || starts < 0 || starts > first || histLen < int64(len(tail))+2*first {
		return nil, 0, 0, 0, false
	}
	if msgs, ok = readHistory(history[:2]); !ok {
		return nil, 0, 0, 0, false
	}
	switch version := first + int64(len(msgs)); {
	case first > 0 && len(msgs) == 0, first == 0 && histLen != int64(len(tail)):
		return nil, 0, 0, 0, false
	case version > 0:
		size = histLen - (version - 1)
	}
	if size < 0 {
		return nil, 0, 0, 0, false
	}
	return msgs, first, starts, size, true
}

// appendable renders a commit's messages as commitScript appends them:
// comma-joined, and their lengths 4 bytes each. A message must be
// non-empty JSON; one of 4 GiB or more cannot be stored (Redis caps a
// value at 512 MB anyway).
func appendable(msgs []json.RawMessage) (joined, lens []byte, err error) {
	if len(msgs) == 0 {
		return nil, nil, nil
	}
	if j, ok := session.Joined(msgs); ok {
		joined = j
	}
	n := len(msgs) - 1
	for i, m := range msgs {
		if len(m) == 0 || len(m) > math.MaxUint32 {
			return nil, nil, fmt.Errorf("message %d of %d bytes cannot be stored", i, len(m))
		}
		n += len(m)
	}
	lens = make([]byte, 0, 4*len(msgs))
	if joined == nil {
		joined = make([]byte, 0, n)
		for i, m := range msgs {
			if i > 0 {
				joined = append(joined, ',')
			}
			joined = append(joined, m...)
		}
	}
	for _, m := range msgs {
		lens = binary.BigEndian.AppendUint32(lens, uint32(len(m)))
	}
	return joined, lens, nil
}

// rawMessage views a reply string as a json.RawMessage without copying it.
// The history is the bulk of what a turn reads, and a copy of every message
// doubled the allocations of a deep session's turn. Safe because strings
// are immutable and State.Messages is read-only by contract.
func rawMessage(s string) json.RawMessage {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

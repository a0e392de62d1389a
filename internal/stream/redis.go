package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of a zero [RedisConfig].
const (
	DefaultPrefix = "lambdagent:"
	DefaultTTL    = 10 * time.Minute
	DefaultMaxLen = 50000
)

// readBatch is the most events one Read returns.
const readBatch = 512

// RedisConfig tunes a [Redis] log. A zero field means its default.
type RedisConfig struct {
	// Prefix starts every key, as the session store's does; it must not
	// contain a brace. Empty means DefaultPrefix.
	Prefix string
	// TTL is how long a stream is kept after its last write. Zero means
	// DefaultTTL (10 minutes): long enough to reconnect, short enough that
	// streams cost little memory.
	TTL time.Duration
	// MaxLen caps the events kept per stream (approximately, XADD MAXLEN
	// ~). Zero means DefaultMaxLen.
	MaxLen int64
}

// Redis is a [Log] on Redis Streams. A stream is two keys under one hash
// tag, its store id, so they share a Cluster slot:
//
//	<prefix>stream:{<id>}        STREAM: one entry per event, entry id 0-<Seq>,
//	                             fields n (name) and d (data); TTL refreshed
//	                             by every write
//	<prefix>stream:{<id>}:alive  STRING: the producer's liveness mark (PX)
//
// Entry ids are the events' own sequence numbers, so a write repeated
// after a lost reply is refused by Redis as a duplicate rather than
// stored twice, and a reader resumes with XREAD from 0-<Last-Event-ID>.
type Redis struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
	maxLen int64
}

var _ Log = (*Redis)(nil)

// NewRedis returns a Log in rdb. It does no I/O.
func NewRedis(rdb redis.UniversalClient, cfg RedisConfig) (*Redis, error) {
	if rdb == nil {
		return nil, errors.New("stream: nil Redis client")
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("stream: prefix %q contains a brace, which would break the cluster hash tag", cfg.Prefix)
	}
	r := &Redis{rdb: rdb, prefix: cfg.Prefix, ttl: cfg.TTL, maxLen: cfg.MaxLen}
	if r.prefix == "" {
		r.prefix = DefaultPrefix
	}
	if r.ttl <= 0 {
		r.ttl = DefaultTTL
	}
	if r.maxLen <= 0 {
		r.maxLen = DefaultMaxLen
	}
	return r, nil
}

func (r *Redis) keys(id string) (events, alive string) {
	k := r.prefix + "stream:{" + id + "}"
	return k, k + ":alive"
}

// Append implements [Log.Append] as one pipeline.
func (r *Redis) Append(ctx context.Context, id string, events []Event, alive time.Duration) error {
	ek, ak := r.keys(id)
	cmds, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ev := range events {
			p.XAdd(ctx, &redis.XAddArgs{Stream: ek, MaxLen: r.maxLen, Approx: true,
				ID: "0-" + strconv.FormatInt(ev.Seq, 10), Values: []any{"n", ev.Name, "d", ev.Data}})
		}
		if alive > 0 {
			p.Set(ctx, ak, "1", alive)
		} else {
			p.Del(ctx, ak)
		}
		p.PExpire(ctx, ek, r.ttl)
		return nil
	})
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		// A repeated write of an event already stored (its reply was
		// lost) is refused as not greater than the last id: it is there.
		if e := c.Err(); e != nil && !strings.Contains(e.Error(), "equal or smaller") {
			return fmt.Errorf("append to stream %s: %w", id, e)
		}
	}
	return nil
}

// Read implements [Log.Read] with XREAD (BLOCK when wait > 0).
func (r *Redis) Read(ctx context.Context, id string, after int64, wait time.Duration) ([]Event, error) {
	ek, _ := r.keys(id)
	block := time.Duration(-1) // no BLOCK: go-redis sends BLOCK only for >= 0, and BLOCK 0 waits forever
	if wait > 0 {
		block = max(wait, time.Millisecond)
	}
	res, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{ek, "0-" + strconv.FormatInt(after, 10)}, Count: readBatch, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", id, err)
	}
	var out []Event
	for _, s := range res {
		for _, m := range s.Messages {
			ev, err := parseEntry(m)
			if err != nil {
				return nil, fmt.Errorf("read stream %s: %w", id, err)
			}
			out = append(out, ev)
		}
	}
	return out, nil
}

// State implements [Log.State]: the last entry and the mark, in one
// pipeline.
func (r *Redis) State(ctx context.Context, id string) (int64, bool, error) {
	ek, ak := r.keys(id)
	var last *redis.XMessageSliceCmd
	var mark *redis.IntCmd
	_, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		last = p.XRevRangeN(ctx, ek, "+", "-", 1)
		mark = p.Exists(ctx, ak)
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("read state of stream %s: %w", id, err)
	}
	msgs := last.Val()
	if len(msgs) == 0 {
		return 0, false, ErrNotFound
	}
	seq, err := parseSeq(msgs[0].ID)
	if err != nil {
		return 0, false, fmt.Errorf("read state of stream %s: %w", id, err)
	}
	return seq, mark.Val() == 1, nil
}

func parseSeq(entryID string) (int64, error) {
	s, ok := strings.CutPrefix(entryID, "0-")
	if !ok {
		return 0, fmt.Errorf("entry id %q is not 0-<seq>", entryID)
	}
	return strconv.ParseInt(s, 10, 64)
}

func parseEntry(m redis.XMessage) (Event, error) {
	seq, err := parseSeq(m.ID)
	if err != nil {
		return Event{}, err
	}
	name, _ := m.Values["n"].(string)
	data, _ := m.Values["d"].(string)
	if name == "" {
		return Event{}, fmt.Errorf("entry %s has no event name", m.ID)
	}
	return Event{Seq: seq, Name: name, Data: []byte(data)}, nil
}

package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/session"
)

// The catalog (see #18) lives beside the sessions:
//
//	<prefix>{<id>}:turns       LIST of the session's turn records
//	                           (Commit.Record), oldest first
//	<prefix>idx:<tenant>       ZSET of the tenant's session ids scored by
//	                           creation (unix µs)
//	<prefix>usage:<day>        HASH: <tenant>/<counter> → the day's sum
//
// The index and the usage keys are on other Cluster slots than a
// session's keys, so no session script may touch them: Commit and Delete
// send them in the same pipeline as their script, one round trip still.
// A commit's counters count in the day's usage even when the commit
// loses (the tokens were spent); a session enters the index at its first
// commit (version 0).

var _ session.Catalog = (*Store)(nil)

// usageTTL keeps a day's usage a little over a year.
const usageTTL = 400 * 24 * time.Hour

// listBudget bounds the index entries one List reads on the server while
// it looks for ids with the prefix.
const listBudget = 10000

func (s *Store) indexKey(tenant string) string {
	if tenant == "" {
		tenant = session.DefaultTenant
	}
	return s.prefix + "idx:" + tenant
}

func (s *Store) usageKey(day string) string { return s.prefix + "usage:" + day }

func (k keys) turns() string { return strings.TrimSuffix(k.msgs, "msgs") + "turns" }

// recordScript appends a turn record if the commit pipelined before it
// succeeded: the session is at the version that commit produced and the
// commit released the lease (a commit that lost on the version keeps
// it). Only a final commit (Release) carries a record.
//
//	KEYS: hlen, turns, lease; ARGV: version, record, session TTL ms, token → 1 | 0
var recordScript = redis.NewScript(`
if redis.call('STRLEN', KEYS[1]) / 4 ~= tonumber(ARGV[1]) then return 0 end
if redis.call('HGET', KEYS[3], 't') == ARGV[4] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`)

// listScript reads one page of an index, newest first, on the server:
// entries after the cursor whose id has the prefix, at most limit+1 (the
// extra one says there is a next page), reading at most budget entries.
//
//	KEYS: idx; ARGV: max score, cursor id ('' none), prefix, limit, budget
//	→ {id, score, id, score, …}
var listScript = redis.NewScript(`
local max, cid, prefix = ARGV[1], ARGV[2], ARGV[3]
local want, budget = tonumber(ARGV[4]) + 1, tonumber(ARGV[5])
local out, offset = {}, 0
while offset < budget do
  local batch = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'WITHSCORES', 'LIMIT', offset, 200)
  if #batch == 0 then break end
  for i = 1, #batch, 2 do
    local id, score = batch[i], batch[i + 1]
    local seen = cid ~= '' and score == max and id >= cid
    if not seen and (prefix == '' or string.sub(id, 1, #prefix) == prefix) then
      out[#out + 1] = id
      out[#out + 1] = score
      if #out >= 2 * want then return out end
    end
  end
  offset = offset + 200
end
return out
`)

// commit runs the commit script and, in the same pipeline (the same
// round trip), the catalog's writes: the turn record, the index entry of a
// new session and the day's usage, whose keys are on other slots.
func (s *Store) commit(ctx context.Context, c session.Commit, ks []string, args []any) ([]any, error) {
	pipe := s.rdb.Pipeline()
	cmd := commitScript.EvalSha(ctx, pipe, ks, args...)
	record := s.catalogWrites(ctx, pipe, c)
	_, _ = pipe.Exec(ctx) // each command's error is its own
	res, err := cmd.Slice()
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The server lost its script cache: send the scripts themselves.
		res, err = commitScript.Eval(ctx, s.rdb, ks, args...).Slice()
	}
	if err == nil {
		record(ctx)
	}
	return res, err
}

// catalogWrites queues the catalog's writes of commit c on pipe and
// returns what to call once the pipeline ran: it sends the record script
// itself when the server had lost it from its cache.
func (s *Store) catalogWrites(ctx context.Context, pipe redis.Pipeliner, c session.Commit) func(context.Context) {
	k := s.keys(c.ID)
	var rec *redis.Cmd
	recKeys := []string{k.hlen, k.turns(), k.lease}
	recArgs := []any{c.Version + int64(len(c.Messages)), c.Record, millis(s.ttl), c.LeaseToken}
	if len(c.Record) > 0 && c.Release {
		rec = recordScript.EvalSha(ctx, pipe, recKeys, recArgs...)
	}
	tenant, id := session.Unscope(c.ID)
	if c.Version == 0 {
		pipe.ZAddNX(ctx, s.indexKey(tenant), redis.Z{Score: float64(time.Now().UnixMicro()), Member: id})
	}
	if len(c.Counters) > 0 {
		day := s.usageKey(session.DayKey(time.Now()))
		for name, n := range c.Counters {
			if n != 0 {
				pipe.HIncrBy(ctx, day, tenant+"/"+name, n)
			}
		}
		pipe.PExpire(ctx, day, usageTTL)
	}
	return func(ctx context.Context) {
		if rec != nil && redis.HasErrorPrefix(rec.Err(), "NOSCRIPT") {
			recordScript.Eval(ctx, s.rdb, recKeys, recArgs...)
		}
	}
}

// List implements [session.Catalog.List]. One round trip reads the page
// from the index, a second (pipelined) the sessions' turns and counters;
// ids whose session expired are dropped from the index on the way.
func (s *Store) List(ctx context.Context, tenant string, q session.ListQuery) (*session.ListPage, error) {
	q = q.Normalize()
	maxScore, cid := "+inf", ""
	if q.Cursor != "" {
		score, id, ok := strings.Cut(q.Cursor, ":")
		if _, err := strconv.ParseInt(score, 10, 64); !ok || err != nil || session.ValidID(id) != nil {
			return nil, session.ErrBadCursor
		}
		maxScore, cid = score, id
	}
	idx := s.indexKey(tenant)
	res, err := listScript.Run(ctx, s.rdb, []string{idx}, maxScore, cid, q.Prefix, q.Limit, listBudget).StringSlice()
	if err != nil {
		return nil, wrap(err, "list sessions of %s", tenant)
	}
	page := &session.ListPage{}
	if len(res) > 2*q.Limit {
		res = res[:2*q.Limit]
		page.Next = res[len(res)-1] + ":" + res[len(res)-2]
	}
	fields := []string{"turns", "c:input_tokens", "c:output_tokens", "c:cache_read_input_tokens", "c:cache_creation_input_tokens", "c:cost_micro_usd"}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, 0, len(res)/2)
	for i := 0; i < len(res); i += 2 {
		cmds = append(cmds, pipe.HMGet(ctx, s.keys(session.Scope(tenant, res[i])).meta, fields...))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, wrap(err, "list sessions of %s", tenant)
	}
	var gone []any
	for i, cmd := range cmds {
		id := res[2*i]
		vals := cmd.Val()
		if len(vals) != len(fields) || vals[0] == nil {
			gone = append(gone, id)
			continue
		}
		us, _ := strconv.ParseInt(res[2*i+1], 10, 64)
		sum := session.Summary{ID: id, Created: time.UnixMicro(us).UTC(), Counters: map[string]int64{}}
		for j, v := range vals {
			str, _ := v.(string)
			n, _ := strconv.ParseInt(str, 10, 64)
			if j == 0 {
				sum.Turns = n
			} else if v != nil {
				sum.Counters[fields[j][2:]] = n
			}
		}
		page.Sessions = append(page.Sessions, sum)
	}
	if len(gone) > 0 {
		// Expired: their keys are gone, the index forgets them.
		s.rdb.ZRem(ctx, idx, gone...)
	}
	return page, nil
}

// Records implements [session.Catalog.Records].
func (s *Store) Records(ctx context.Context, id string) ([]json.RawMessage, error) {
	if err := session.ValidStoreID(id); err != nil {
		return nil, fmt.Errorf("read turn records of session %q: %w", id, err)
	}
	res, err := s.rdb.LRange(ctx, s.keys(id).turns(), 0, -1).Result()
	if err != nil {
		return nil, wrap(err, "read turn records of session %s", id)
	}
	var out []json.RawMessage
	for _, r := range res {
		out = append(out, json.RawMessage(r))
	}
	return out, nil
}

// Usage implements [session.Catalog.Usage]: one pipelined HGETALL per day.
func (s *Store) Usage(ctx context.Context, from, to time.Time) ([]session.DayUsage, error) {
	days := dayRange(from, to)
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(days))
	for i, d := range days {
		cmds[i] = pipe.HGetAll(ctx, s.usageKey(session.DayKey(d)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, wrap(err, "read usage")
	}
	var out []session.DayUsage
	for i, cmd := range cmds {
		du := session.DayUsage{Day: days[i], Tenants: map[string]map[string]int64{}}
		for f, v := range cmd.Val() {
			tenant, name, ok := strings.Cut(f, "/")
			n, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				continue
			}
			if du.Tenants[tenant] == nil {
				du.Tenants[tenant] = map[string]int64{}
			}
			du.Tenants[tenant][name] = n
		}
		if len(du.Tenants) > 0 {
			out = append(out, du)
		}
	}
	return out, nil
}

// maxUsageDays bounds the days one Usage call reads.
const maxUsageDays = 400

// dayRange returns midnight UTC of each day from from to to, at most
// maxUsageDays of them (the latest).
func dayRange(from, to time.Time) []time.Time {
	from = from.UTC().Truncate(24 * time.Hour)
	to = to.UTC().Truncate(24 * time.Hour)
	if from.Before(to.AddDate(0, 0, -maxUsageDays+1)) {
		from = to.AddDate(0, 0, -maxUsageDays+1)
	}
	var out []time.Time
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		out = append(out, d)
	}
	return out
}

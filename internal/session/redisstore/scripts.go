package redisstore

import "github.com/redis/go-redis/v9"

// The scripts below are the whole protocol. Each runs atomically on the
// server, so a check and the writes it guards cannot be split by another
// client, and each is one round trip (EVALSHA; go-redis falls back to
// EVAL once after the server lost its script cache).
//
// Every key a script touches carries the session's hash tag, so in Redis
// Cluster they all live in one slot. deleteScript reaches idempotency keys
// it was not passed as KEYS; that is allowed because they share the slot.
//
// Replies are arrays whose first element names the outcome; store.go maps
// them to the session package's errors.

// beginScript checks the idempotency record, then the lease, then takes
// the lease and reads the session, with the tool results saved by an
// unfinished turn (usually none: HGETALL of a missing key).
//
//	KEYS: msgs, meta, lease, tools, hist, hlen[, idem record when ARGV[3] is set]
//	ARGV: 1 lease token, 2 lease TTL in ms, 3 idempotency key, 4 request
//	      hash, 5 this process's id, 6 the token of a lease to take over
//	      ('' for none)
//	→ {"replay", response} | {"mismatch"}
//	  | {"busy", lease PTTL, same key 0/1, holder's process id, lease age ms, holder's token}
//	  | {"ok", meta as field/value pairs, tools as id/result pairs, history}
//
// history is, from the session's cut on (meta's cut, cutoff and cutstarts
// fields, see commitScript; 0 without one), five elements: hist from the
// cut's byte offset, hlen from the cut's index, the cut's index and turn
// starts, and hist's whole length (readTail): two GETRANGEs, whose cost is
// that of the tail, not of the history. For a session written before hist
// and hlen existed it is the legacy msgs list as one array (readHistory),
// read whole. A lease held with the caller's own token is taken
// again: that Begin is a retry of one whose reply was lost. A lease held
// with ARGV[6] is taken over: the caller found its holder dead (see
// Store.Begin); if the lease changed hands since, ARGV[6] no longer
// matches and the answer is busy again. The lease records its holder's
// process id (p) and when it was taken (s, ms of the server's clock), an
// age that lease renewals leave alone. An age of -1 is unknown (a lease
// of an earlier version).
var beginScript = redis.NewScript(`
if ARGV[3] ~= '' then
  local rec = redis.call('HMGET', KEYS[7], 'h', 'r')
  if rec[1] then
    if rec[1] ~= ARGV[4] then return {'mismatch'} end
    return {'replay', rec[2]}
  end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('HMGET', KEYS[3], 't', 'k', 'p', 's')
if held[1] and held[1] ~= ARGV[1] and held[1] ~= ARGV[6] then
  local same = 0
  if ARGV[3] ~= '' and held[2] == ARGV[3] then same = 1 end
  local age = -1
  if held[4] then age = now - tonumber(held[4]) end
  return {'busy', redis.call('PTTL', KEYS[3]), same, held[3] or '', age, held[1]}
end
redis.call('HSET', KEYS[3], 't', ARGV[1], 'k', ARGV[3], 'p', ARGV[5], 's', now)
redis.call('PEXPIRE', KEYS[3], ARGV[2])
local meta, tools = redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[4])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'ok', meta, tools, redis.call('LRANGE', KEYS[1], 0, -1)}
end
local cut = redis.call('HMGET', KEYS[2], 'cut', 'cutoff', 'cutstarts')
local ci, co = tonumber(cut[1] or '0'), tonumber(cut[2] or '0')
return {'ok', meta, tools, redis.call('GETRANGE', KEYS[5], co, -1), redis.call('GETRANGE', KEYS[6], ci * 4, -1),
  ci, tonumber(cut[3] or '0'), redis.call('STRLEN', KEYS[5])}
`)

// commitScript checks the lease token (fencing) and the version, then
// appends, adds to the sums, stores the idempotency record, refreshes the
// TTL and maybe ends the lease. It writes only the new messages, so the
// bytes sent per turn do not grow with the history: two APPENDs, of the
// messages (comma-joined by the client) to hist and of their lengths to
// hlen. All checks come before the first write: Redis does not roll a
// script back.
//
// A session written before hist existed has its history in the msgs list;
// its first commit here converts it (once, inside Redis: nothing more
// crosses the network) before the version check, which the conversion
// does not change. Then it appends as usual.
//
// It also drops the saved tool results (now in the history, or the turn
// is over) and keeps the pending mark in meta's "pending" field: cleared
// by a release, set by a checkpoint that carries one. A pinned value goes
// into meta's "pinned" field unless one is there already (HSETNX).
//
// A cut (session.Commit.Cut) that lies past the stored one and before the
// history's end goes into meta as cut (the message index), cutoff (its
// byte offset in hist) and cutstarts (turn starts before it). The offset
// is the stored cut's plus the lengths of the messages between the two
// cuts, one GETRANGE of hlen over just them: a commit's cost does not
// grow with the history.
//
//	KEYS: msgs, meta, lease, idemkeys, tools, hist, hlen[, idem record when ARGV[7] is set]
//	ARGV: 1 lease token, 2 version, 3 turns, 4 release "1"/"0",
//	      5 session TTL ms, 6 idempotency TTL ms, 7 idempotency key,
//	      8 request hash, 9 response, 10 pending mark, 11 pinned,
//	      12 the new messages comma-joined, 13 their lengths (4 bytes
//	      each, big-endian), 14 the cut's index ('' for none), 15 its
//	      turn starts, 16 counter count n, 17…16+2n counter name/delta
//	      pairs
//	→ {"lost"} | {"conflict", current version} | {"ok", new version}
//
// idemkeys is a sorted set of the session's idempotency keys scored by
// their expiry in ms, so Delete finds them without SCAN and a commit
// drops the expired ones.
var commitScript = redis.NewScript(`
if redis.call('HGET', KEYS[3], 't') ~= ARGV[1] then return {'lost'} end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local m = redis.call('LRANGE', KEYS[1], 0, -1)
  local lens = {}
  for i, v in ipairs(m) do lens[i] = struct.pack('>I4', #v) end
  redis.call('SET', KEYS[6], table.concat(m, ','))
  redis.call('SET', KEYS[7], table.concat(lens))
  redis.call('DEL', KEYS[1])
end
local len = math.floor(redis.call('STRLEN', KEYS[7]) / 4)
if len ~= tonumber(ARGV[2]) then return {'conflict', len} end
if ARGV[12] ~= '' then
  if len > 0 then redis.call('APPEND', KEYS[6], ',') end
  redis.call('APPEND', KEYS[6], ARGV[12])
  len = math.floor(redis.call('APPEND', KEYS[7], ARGV[13]) / 4)
end
if ARGV[14] ~= '' then
  local ci, old = tonumber(ARGV[14]), tonumber(redis.call('HGET', KEYS[2], 'cut') or '0')
  if ci > old and ci < len then
    local off = tonumber(redis.call('HGET', KEYS[2], 'cutoff') or '0')
    local lens = redis.call('GETRANGE', KEYS[7], old * 4, ci * 4 - 1)
    for i = 1, #lens, 4 do off = off + struct.unpack('>I4', lens, i) + 1 end
    redis.call('HSET', KEYS[2], 'cut', ci, 'cutoff', off, 'cutstarts', ARGV[15])
  end
end
redis.call('HINCRBY', KEYS[2], 'turns', ARGV[3])
local first = 17 + 2 * tonumber(ARGV[16])
for i = 17, first - 1, 2 do
  redis.call('HINCRBY', KEYS[2], 'c:' .. ARGV[i], ARGV[i + 1])
end
if ARGV[11] ~= '' then redis.call('HSETNX', KEYS[2], 'pinned', ARGV[11]) end
redis.call('DEL', KEYS[5])
if ARGV[4] == '1' then
  redis.call('HDEL', KEYS[2], 'pending')
elseif ARGV[10] ~= '' then
  redis.call('HSET', KEYS[2], 'pending', ARGV[10])
end
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[8], 'h', ARGV[8], 'r', ARGV[9])
  redis.call('PEXPIRE', KEYS[8], ARGV[6])
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[6]), ARGV[7])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  redis.call('PEXPIRE', KEYS[4], ARGV[5])
end
redis.call('PEXPIRE', KEYS[6], ARGV[5])
redis.call('PEXPIRE', KEYS[7], ARGV[5])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if ARGV[4] == '1' then redis.call('DEL', KEYS[3]) end
return {'ok', len}
`)

// saveToolScript saves one tool result of the open turn if the token
// holds the lease (fencing: a turn that lost the session must not write
// into the next one), with the session's TTL.
//
//	KEYS: lease, tools; ARGV: token, tool_use id, result, session TTL ms
//	→ 1 saved | 0 not held
var saveToolScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
`)

// renewScript extends the lease if the token holds it.
//
//	KEYS: lease; ARGV: token, TTL ms → 1 renewed | 0 not held
var renewScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseScript ends the lease if the token holds it.
//
//	KEYS: lease; ARGV: token → 1 released | 0 not held
var releaseScript = redis.NewScript(`
if redis.call('HGET', KEYS[1], 't') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`)

// loadScript reads meta and the history in one consistent snapshot,
// which a pipeline would not give; the history as beginScript returns it.
//
//	KEYS: msgs, meta, hist, hlen → {meta as field/value pairs, history}
var loadScript = redis.NewScript(`
local meta = redis.call('HGETALL', KEYS[2])
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {meta, redis.call('LRANGE', KEYS[1], 0, -1)}
end
return {meta, redis.call('GET', KEYS[3]) or '', redis.call('GET', KEYS[4]) or ''}
`)

// deleteScript removes every key of a session. UNLINK frees a long
// history in the background.
//
//	KEYS: msgs, meta, lease, idemkeys, tools, hist, hlen
//	ARGV: idempotency key prefix → 1
var deleteScript = redis.NewScript(`
for _, k in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  redis.call('UNLINK', ARGV[1] .. k)
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])
return 1
`)

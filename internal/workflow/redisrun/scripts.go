package redisrun

import "github.com/redis/go-redis/v9"

// The scripts are the protocol: each is atomic and one round trip, so
// the lease check (the fencing token) cannot be split from the writes it
// guards. All checks come before the first write: Redis does not roll a
// script back.

// createScript stores a run unless the idempotency key names one.
//
// The run also gets an entry in the lease-expiry set, due a grace
// period after its creation: a worker that pops it from the queue and
// dies before taking its lease does not lose it.
//
//	KEYS: run, idem, index, ready, active
//	ARGV: store id, idempotency key, idempotency TTL ms, created ms,
//	      requeue at ms, field/value pairs…
//	→ {"created"} | {"exists", store id}
var createScript = redis.NewScript(`
if ARGV[2] ~= '' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return {'exists', prev} end
end
local f = {}
for i = 6, #ARGV do f[#f+1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(f))
if ARGV[2] ~= '' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3]) end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[1])
return {'created'}
`)

// acquireScript takes the lease and reads the run. A busy run's
// lease-expiry entry is refreshed, so that it is looked at again if its
// holder dies.
//
//	KEYS: run, lease, steps, events, active
//	ARGV: token, TTL ms, lease expiry ms, store id
//	→ {"notfound"} | {"busy", PTTL} | {"ok", run fields, step records, events}
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return {'notfound'} end
local held = redis.call('GET', KEYS[2])
if held and held ~= ARGV[1] then
  local ttl = redis.call('PTTL', KEYS[2])
  redis.call('ZADD', KEYS[5], ARGV[3], ARGV[4])
  return {'busy', ttl}
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'sleeping' or st == 'waiting' then redis.call('HSET', KEYS[1], 'status', 'running') end
redis.call('ZADD', KEYS[5], ARGV[3], ARGV[4])
return {'ok', redis.call('HGETALL', KEYS[1]), redis.call('HVALS', KEYS[3]), redis.call('HGETALL', KEYS[4])}
`)

// renewScript extends a held lease.
//
//	KEYS: lease, active
//	ARGV: token, TTL ms, lease expiry ms, store id
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 'lost' end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 'ok'
`)

// commitScript writes step records and maybe the run's status, under the
// lease. Only the records passed are sent: the bytes of a commit do not
// grow with the run's history.
//
//	KEYS: run, lease, steps, events, active, timers, ready
//	ARGV: 1 token, 2 store id, 3 status, 4 output, 5 error, 6 release 1/0,
//	      7 due ms or "", 8 event to consume, 9 now ms, 10 known events,
//	      11… key/record pairs
//	→ "ok" | "lost" | "canceled"
var commitScript = redis.NewScript(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 'lost' end
if redis.call('HGET', KEYS[1], 'status') == 'canceled' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[5], ARGV[2])
  redis.call('ZREM', KEYS[6], ARGV[2])
  return 'canceled'
end
if #ARGV >= 12 then
  local f = {}
  for i = 11, #ARGV do f[#f+1] = ARGV[i] end
  redis.call('HSET', KEYS[3], unpack(f))
end
if ARGV[8] ~= '' then redis.call('HDEL', KEYS[4], ARGV[8]) end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'status', ARGV[3], 'output', ARGV[4], 'error', ARGV[5], 'updated', ARGV[9])
end
if ARGV[7] ~= '' then
  redis.call('ZADD', KEYS[6], ARGV[7], ARGV[2])
elseif ARGV[6] == '1' then
  redis.call('ZREM', KEYS[6], ARGV[2])
end
if ARGV[6] == '1' then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[5], ARGV[2])
  if ARGV[3] == 'waiting' and redis.call('HLEN', KEYS[4]) > tonumber(ARGV[10]) then
    redis.call('RPUSH', KEYS[7], ARGV[2])
  end
end
return 'ok'
`)

// signalScript keeps an event and wakes a waiting run.
//
//	KEYS: run, events, ready
//	ARGV: store id, event, body
//	→ "ok" | "notfound" | final status
var signalScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'notfound' end
if st == 'completed' or st == 'failed' or st == 'canceled' then return st end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if st == 'waiting' then redis.call('RPUSH', KEYS[3], ARGV[1]) end
return 'ok'
`)

// cancelScript marks a run canceled; its advancer stops at its next
// commit.
//
//	KEYS: run, timers
//	ARGV: store id, now ms
var cancelScript = redis.NewScript(`
local st = redis.call('HGET', KEYS[1], 'status')
if not st then return 'notfound' end
if st == 'completed' or st == 'failed' or st == 'canceled' then return st end
redis.call('HSET', KEYS[1], 'status', 'canceled', 'error', 'canceled', 'updated', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return 'ok'
`)

// fireScript moves due timers and expired leases to the ready queue. A
// fired timer leaves a lease-expiry entry a grace period ahead, as
// createScript does, so that the run is not lost to a worker that pops
// it and dies.
//
//	KEYS: timers, active, ready
//	ARGV: now ms, most to move per set, requeue at ms
var fireScript = redis.NewScript(`
local n = 0
for _, k in ipairs({KEYS[1], KEYS[2]}) do
  local ids = redis.call('ZRANGEBYSCORE', k, '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
  for _, id in ipairs(ids) do
    redis.call('ZREM', k, id)
    redis.call('RPUSH', KEYS[3], id)
    if k == KEYS[1] then redis.call('ZADD', KEYS[2], ARGV[3], id) end
    n = n + 1
  end
end
return n
`)

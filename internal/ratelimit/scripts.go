package ratelimit

import "github.com/redis/go-redis/v9"

// The scripts below are the whole protocol. Each runs atomically on the
// server, so checking a limit and taking from it cannot be split by
// another instance, and each is one round trip (EVALSHA).
//
// Times are passed in by the caller as decimal strings (µs for windows,
// ms for slots) and used as strings wherever Redis stores them: Lua
// formats numbers with 14 significant digits, which would round a
// timestamp in µs.
//
// A rate window is a sliding-window log per scope (a model, a tenant
// on a model, or an API key on all models): a sorted set of reservation ids scored by time, and a hash
// holding each reservation's "input output" token amounts plus the sums
// "#i" and "#o". The request count is the set's size. Entries older than
// the window are swept before each check, so a check costs O(expired)
// amortized, plus O(entries) only when the window is full (to compute the
// wait).

// luaWindow holds the functions reserveScript and settleScript share.
const luaWindow = `
local function amounts(v)
  if not v then return 0, 0 end
  local a, b = string.match(v, '^(%d+) (%d+)$')
  return tonumber(a), tonumber(b)
end

-- sweep drops the entries scored at or before cutoff.
local function sweep(z, h, cutoff)
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, 500)
    if #old == 0 then return end
    local vals = redis.call('HMGET', h, unpack(old))
    local si, so = 0, 0
    for i = 1, #vals do
      local a, b = amounts(vals[i])
      si, so = si + a, so + b
    end
    redis.call('HINCRBY', h, '#i', 0 - si) -- not -si: Lua writes -0, which Redis rejects
    redis.call('HINCRBY', h, '#o', 0 - so)
    redis.call('HDEL', h, unpack(old))
    redis.call('ZREM', z, unpack(old))
    if #old < 500 then return end
  end
end
`

// reserveScript checks the kill switches, the day's budgets, the shared
// slowdown and the rate windows, in that order, and takes from the
// windows only if everything allows the call.
//
//	KEYS: 1 stop:session, 2 stop:tenant, 3 usage of the session today,
//	      4 usage of the tenant today, 5 slowdown of the model,
//	      6 model window set, 7 model window hash,
//	      8 tenant window set, 9 tenant window hash,
//	      10 API key window set, 11 API key window hash
//	ARGV: 1 now µs, 2 window µs, 3 cutoff µs (now − window), 4 id,
//	      5 input, 6 output, 7–9 model limits (requests, input, output),
//	      10–12 tenant limits, 13 session token budget,
//	      14 session µUSD budget, 15 tenant token budget,
//	      16 tenant µUSD budget, 17 key TTL ms, 18 "1" if there is a session,
//	      19–21 API key limits
//	→ {"ok"} | {"stopped", scope} | {"budget", scope, unit, spent, limit}
//	  | {"wait", µs, scope, kind}
//
// A limit or budget of 0 is no limit. Budgets count input, cache write
// and output tokens ("in", "cw", "out" of the usage hash) and µUSD ("usd").
var reserveScript = redis.NewScript(luaWindow + `
local now, win = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[18] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {'stopped', 'session'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'stopped', 'tenant'} end

local function budget(key, tokens, usd, scope)
  if tokens <= 0 and usd <= 0 then return nil end
  local v = redis.call('HMGET', key, 'in', 'cw', 'out', 'usd')
  local t = (tonumber(v[1]) or 0) + (tonumber(v[2]) or 0) + (tonumber(v[3]) or 0)
  local u = tonumber(v[4]) or 0
  if tokens > 0 and t >= tokens then return {'budget', scope, 'tokens', t, tokens} end
  if usd > 0 and u >= usd then return {'budget', scope, 'usd', u, usd} end
  return nil
end
local b
if ARGV[18] == '1' then b = budget(KEYS[3], tonumber(ARGV[13]), tonumber(ARGV[14]), 'session') end
b = b or budget(KEYS[4], tonumber(ARGV[15]), tonumber(ARGV[16]), 'tenant')
if b then return b end

local slow = tonumber(redis.call('GET', KEYS[5]) or '0')
if slow > now then return {'wait', slow - now, 'model', 'slowdown'} end

local ai, ao = tonumber(ARGV[5]), tonumber(ARGV[6])

-- check returns nil if the call fits the window, else the µs until it
-- does and the limit in the way.
local function check(z, h, lr, li, lo)
  sweep(z, h, ARGV[3])
  local n = redis.call('ZCARD', z)
  local t = redis.call('HMGET', h, '#i', '#o')
  local ti, to = tonumber(t[1]) or 0, tonumber(t[2]) or 0
  local function fits()
    return (lr <= 0 or n + 1 <= lr) and (li <= 0 or ti + ai <= li) and (lo <= 0 or to + ao <= lo)
  end
  if fits() then return nil end
  local kind = 'output_tokens'
  if lr > 0 and n + 1 > lr then kind = 'requests' elseif li > 0 and ti + ai > li then kind = 'input_tokens' end
  local start = 0
  while true do
    local es = redis.call('ZRANGE', z, start, start + 99, 'WITHSCORES')
    if #es == 0 then return win, kind end
    local ids = {}
    for i = 1, #es, 2 do ids[#ids + 1] = es[i] end
    local vals = redis.call('HMGET', h, unpack(ids))
    for j = 1, #ids do
      local a, o = amounts(vals[j])
      n, ti, to = n - 1, ti - a, to - o
      if fits() then return tonumber(es[2 * j]) + win - now, kind end
    end
    start = start + 100
  end
end

local function limits(i)
  return tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
end
local function on(lr, li, lo) return lr > 0 or li > 0 or lo > 0 end

local mr, mi, mo = limits(7)
local tr, ti_, to_ = limits(10)
local kr, ki, ko = limits(19)
if on(mr, mi, mo) then
  local w, kind = check(KEYS[6], KEYS[7], mr, mi, mo)
  if w then return {'wait', w, 'model', kind} end
end
if on(tr, ti_, to_) then
  local w, kind = check(KEYS[8], KEYS[9], tr, ti_, to_)
  if w then return {'wait', w, 'tenant', kind} end
end
if on(kr, ki, ko) then
  local w, kind = check(KEYS[10], KEYS[11], kr, ki, ko)
  if w then return {'wait', w, 'key', kind} end
end

local function add(z, h)
  redis.call('ZADD', z, ARGV[1], ARGV[4])
  redis.call('HSET', h, ARGV[4], ARGV[5] .. ' ' .. ARGV[6])
  redis.call('HINCRBY', h, '#i', ARGV[5])
  redis.call('HINCRBY', h, '#o', ARGV[6])
  redis.call('PEXPIRE', z, ARGV[17])
  redis.call('PEXPIRE', h, ARGV[17])
end
if on(mr, mi, mo) then add(KEYS[6], KEYS[7]) end
if on(tr, ti_, to_) then add(KEYS[8], KEYS[9]) end
if on(kr, ki, ko) then add(KEYS[10], KEYS[11]) end
return {'ok'}
`)

// settleScript ends a reservation: it replaces the estimate with the
// tokens actually counted and moves the entry to now, so that it stays in
// the window until a full window after the call ended (however long the
// call took, what reached the API in any window fits the limit). It then
// adds the call's usage to the day's sums and may raise the model's shared
// slowdown.
//
//	KEYS: 1 model window set, 2 model window hash, 3 tenant window set,
//	      4 tenant window hash, 5 usage of the session today,
//	      6 usage of the tenant today, 7 slowdown of the model,
//	      8 API key window set, 9 API key window hash
//	ARGV: 1 now µs, 2 id, 3 input, 4 output, 5 key TTL ms,
//	      6 "1" if the model window is on, 7 likewise the tenant window,
//	      8 "1" to record usage, 9 "1" if there is a session,
//	      10 usage TTL ms, 11 slow down until µs ("0": no), 12 its TTL ms,
//	      13 "1" if the API key window is on,
//	      14… usage field/increment pairs
//	→ 1
var settleScript = redis.NewScript(luaWindow + `
local function settle(z, h)
  local oi, oo = amounts(redis.call('HGET', h, ARGV[2]))
  redis.call('HSET', h, ARGV[2], ARGV[3] .. ' ' .. ARGV[4])
  redis.call('HINCRBY', h, '#i', tonumber(ARGV[3]) - oi)
  redis.call('HINCRBY', h, '#o', tonumber(ARGV[4]) - oo)
  redis.call('ZADD', z, ARGV[1], ARGV[2])
  redis.call('PEXPIRE', z, ARGV[5])
  redis.call('PEXPIRE', h, ARGV[5])
end
if ARGV[6] == '1' then settle(KEYS[1], KEYS[2]) end
if ARGV[7] == '1' then settle(KEYS[3], KEYS[4]) end
if ARGV[13] == '1' then settle(KEYS[8], KEYS[9]) end

local function record(key)
  for i = 14, #ARGV, 2 do
    redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
  end
  redis.call('PEXPIRE', key, ARGV[10])
end
if ARGV[8] == '1' then
  if ARGV[9] == '1' then record(KEYS[5]) end
  record(KEYS[6])
end

if ARGV[11] ~= '0' then
  local cur = redis.call('GET', KEYS[7])
  if not cur or tonumber(cur) < tonumber(ARGV[11]) then
    redis.call('SET', KEYS[7], ARGV[11], 'PX', ARGV[12])
  end
end
return 1
`)

// acquireScript takes a concurrency slot: a member of a sorted set scored
// by its expiry, so that a slot whose holder died (and stopped renewing)
// frees itself. It checks the kill switches first, so a stopped session
// or tenant is refused before its turn loads anything.
//
//	KEYS: 1 stop:session, 2 stop:tenant, 3 global slots, 4 tenant slots
//	ARGV: 1 now ms, 2 expiry ms, 3 slot id, 4 global limit,
//	      5 tenant limit, 6 key TTL ms
//	→ {"ok"} | {"stopped", scope} | {"busy", scope, ms until a slot expires}
var acquireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return {'stopped', 'session'} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'stopped', 'tenant'} end
local now = tonumber(ARGV[1])
local function full(key, limit)
  if limit <= 0 then return nil end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  if redis.call('ZCARD', key) < limit then return nil end
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tonumber(first[2]) - now
end
local w = full(KEYS[3], tonumber(ARGV[4]))
if w then return {'busy', 'global', w} end
w = full(KEYS[4], tonumber(ARGV[5]))
if w then return {'busy', 'tenant', w} end
for i, key in ipairs({KEYS[3], KEYS[4]}) do
  if tonumber(ARGV[3 + i]) > 0 then
    redis.call('ZADD', key, ARGV[2], ARGV[3])
    redis.call('PEXPIRE', key, ARGV[6])
  end
end
return {'ok'}
`)

// renewScript pushes a slot's expiry forward, or frees it when ARGV[1] is
// "0".
//
//	KEYS: 1 global slots, 2 tenant slots
//	ARGV: 1 new expiry ms ("0": release), 2 slot id, 3 key TTL ms,
//	      4 "1" if the global set is on, 5 likewise the tenant set
var renewScript = redis.NewScript(`
for i, key in ipairs(KEYS) do
  if ARGV[3 + i] == '1' then
    if ARGV[1] == '0' then
      redis.call('ZREM', key, ARGV[2])
    else
      redis.call('ZADD', key, ARGV[1], ARGV[2])
      redis.call('PEXPIRE', key, ARGV[3])
    end
  end
end
return 1
`)

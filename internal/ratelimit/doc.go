// Package ratelimit keeps every instance of lambdagent, together, inside
// Claude's rate limits and the operator's budgets, through one Redis.
//
// It composes by decoration, leaving the turn (internal/agent) untouched:
// [WrapModel] puts each model call through a [Limiter] and [WrapTurner]
// puts each turn through a concurrency slot. Per model call it costs two
// Redis round trips, one Lua script before ([Limiter.Reserve]) and one
// after ([Reservation.Reconcile]), whatever the number of limits:
//
//   - Before: the kill switches of the session and tenant, their budgets
//     for today, the model's shared slowdown, and the rate windows of the
//     model (all tenants) and of the tenant on that model: requests, input
//     tokens and output tokens per Config.Window. The input tokens are
//     estimated from the body's size (bytes/4; no count_tokens call), the
//     output tokens from max_tokens. Over a limit, [Limiter.Wait] waits if
//     the wait fits the deadline, else returns a [*LimitError] (HTTP 429
//     with Retry-After).
//   - After: the estimate is replaced by the usage the API counts against
//     its limits (input plus cache writes; cache reads do not count), the
//     usage and its cost (claude.Usage.CostUSD, priced once by the
//     model client) are added to the session's and
//     tenant's sums for the UTC day, and the reply's
//     anthropic-ratelimit-*-{limit,remaining,reset} headers are learnt
//     from: when one shows less than Config.SlowBelow of a limit left,
//     every instance holds back until it has refilled to that fraction,
//     before the API answers 429.
//
// # Windows
//
// A rate window is a sliding-window log: a sorted set of reservations by
// time, and a hash of their amounts with running sums. A reservation is
// counted from when it is made and, once reconciled, from when the call
// ended, for a full window. Since a request reaches the API between the
// two, what reaches the API in any window of Config.Window stays under the
// limit, however long calls take and however many instances share it,
// provided that estimates are not below what the API counts (bytes/4 of
// the JSON body is above it for prose and code; a call whose outcome is
// unknown keeps its estimate) and that a request reaches the API within a
// window of its reservation. A token bucket or GCRA would let up to twice
// the limit through in some window. Instances pass their own clocks, so
// these must agree (NTP) to well within a window.
//
// The estimate counts the whole body, cached prefix included, so a long
// cached conversation reserves far more than it will be charged for; the
// difference is given back when the call ends, but calls in flight hold
// it. Set the input limit with that in mind.
//
// # Budgets and the kill switch
//
// Budgets are per session and per tenant, in tokens (input, cache write
// and output) and in USD, per UTC day; usage sums live in a hash per day
// with a TTL (Config.UsageTTL). A call is refused once the day's sum has
// reached the budget, with a [*BudgetError] (HTTP 402 budget_exceeded: a
// 429 would invite automatic retries that cannot succeed before
// midnight). The call that crosses the budget is let through, so a budget
// can be overshot by the calls in flight when it is reached.
//
// [Limiter.Stop] sets a session's or tenant's kill switch; the check is a
// key read folded into the reservation script, so it costs no round trip,
// applies on every instance at once, and stops a turn in flight at its
// next model call ([*StoppedError], HTTP 403 stopped).
//
// [Limiter.Admin] serves operators over HTTP, behind a bearer token:
// POST /v1/admin/stop and /v1/admin/resume, and GET /v1/usage for a
// session's or tenant's usage, cost, budget and kill switch on a day. A
// session is named by its tenant and id (?tenant=T&session_id=S); a
// session id alone names the default tenant's.
//
// # Concurrency
//
// [Limiter.Acquire] takes a slot in sorted sets scored by expiry (one
// global, one per tenant); a holder renews it every third of
// Config.SlotTTL, so a dead instance's slots free themselves.
//
// # Keys
//
// Every key starts with Config.Prefix and "rl:{rl}:" (R below). The hash
// tag {rl} puts them in one Redis Cluster slot, as the scripts, which
// touch model, tenant and session keys together, require:
//
//	R winz:model:<model>                 ZSET reservation ids by time (µs)
//	R winh:model:<model>                 HASH id → "input output"; #i, #o sums
//	R winz|winh:tenant:<model>:<tenant>  the same per tenant
//	R slow:<model>                       slow down until (µs); PX
//	R stop:session:<id>, R stop:tenant:<tenant>
//	R use:<YYYY-MM-DD>:session:<id>, R use:<YYYY-MM-DD>:tenant:<tenant>
//	                                     HASH calls in out cw cw1h cr usd (µUSD)
//	R conc:global, R conc:tenant:<tenant>  ZSET slot ids by expiry (ms)
//
// Model names are query-escaped. Tenants are validated names
// (auth.ValidTenant: letters, digits, "-_.", at most 64 bytes), refused
// otherwise with [ErrInvalidKey], so a caller cannot grow a key or reach
// another's. A session's <id> is its store id, session.Scope of its
// tenant and its id ("acme/s1"; the default tenant's sessions keep their
// bare id, so keys written before tenants still count): two tenants'
// sessions of the same id have separate budgets, usage and kill switches
// (see #13). If Redis cannot be reached, calls are refused with
// [ErrUnavailable] rather than let through unlimited.
package ratelimit

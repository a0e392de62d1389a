package ratelimit

import (
	"fmt"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// ErrUnavailable means Redis could not be reached, so no limit could be
// checked; the call was refused rather than let through unchecked. The
// caller may retry later: it is a 503 store_unavailable with Retry-After.
var ErrUnavailable = apierr.Sentinel("ratelimit: redis unavailable", apierr.Error{
	Kind: apierr.StoreUnavailable, Message: "the session store is unavailable; nothing was saved, retry", RetryAfter: time.Second})

// ErrInvalidKey means a tenant or a session id that cannot be part of a
// key: a tenant failing auth.ValidTenant, or a session id failing
// session.ValidStoreID. Nothing was read or written. It is a 400; its
// client message is the error's own text, which names what is wrong.
var ErrInvalidKey = apierr.Sentinel("ratelimit: invalid tenant or session id", apierr.Error{Kind: apierr.InvalidRequest})

// A Scope names whom a budget, a kill switch or a limit applies to.
type Scope string

// Scopes.
const (
	ScopeSession Scope = "session"
	ScopeTenant  Scope = "tenant"
	ScopeModel   Scope = "model"  // rate limits shared by every tenant of a model
	ScopeGlobal  Scope = "global" // concurrency across all tenants
	// ScopeKey is an API key's own rate limits (auth.Key.Limits), on
	// all models together; a LimitError's Name is the key's public id.
	ScopeKey Scope = "key"
)

// Kinds of [LimitError].
const (
	KindRequests     = "requests"
	KindInputTokens  = "input_tokens"
	KindOutputTokens = "output_tokens"
	// KindSlowdown means the API's anthropic-ratelimit-* headers showed a
	// limit nearly used up, and every instance holds back until it refills.
	KindSlowdown = "slowdown"
	// KindConcurrency means too many turns are in flight.
	KindConcurrency = "concurrency"
)

// A LimitError means a call or a turn was refused because a limit was
// reached and waiting for room would outlast the caller's deadline (or
// Config.MaxWait). HTTP maps it to 429 with Retry-After.
type LimitError struct {
	// Kind is the limit reached: KindRequests, KindInputTokens,
	// KindOutputTokens, KindSlowdown or KindConcurrency.
	Kind string
	// Scope is ScopeModel, ScopeTenant, ScopeKey or ScopeGlobal.
	Scope Scope
	// Name is the model, the tenant or the API key's public id (never
	// its secret); empty for ScopeGlobal.
	Name string
	// RetryAfter is when the call would fit, as far as the limiter knows.
	RetryAfter time.Duration
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("ratelimit: %s limit of %s %s reached; retry in %v", e.Kind, e.Scope, e.Name, e.RetryAfter.Round(time.Millisecond))
}

// A BudgetError means a session or tenant has spent its daily budget.
// HTTP maps it to 402: retrying soon cannot help.
type BudgetError struct {
	// Scope is ScopeSession or ScopeTenant, and ID the session or tenant.
	Scope Scope
	ID    string
	// Unit is "tokens" or "usd"; Spent and Limit are in that unit.
	Unit         string
	Spent, Limit float64
	// RetryAfter is the time until the budget renews (00:00 UTC).
	RetryAfter time.Duration
}

// APIError makes a LimitError a 429 with Retry-After (at least a second):
// too_many_turns for KindConcurrency, rate_limited for the others.
func (e *LimitError) APIError() *apierr.Error {
	if e.Kind == KindConcurrency {
		return &apierr.Error{Kind: apierr.TooManyTurns, Message: "too many turns are in progress; nothing was saved, retry later",
			RetryAfter: max(e.RetryAfter, time.Second)}
	}
	return &apierr.Error{Kind: apierr.RateLimited, Message: "the " + e.Kind + " limit of this " + string(e.Scope) + " is reached; nothing was saved, retry later",
		RetryAfter: max(e.RetryAfter, time.Second)}
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("ratelimit: %s %s spent %v of its daily budget of %v %s", e.Scope, e.ID, e.Spent, e.Limit, e.Unit)
}

// A StoppedError means an operator stopped the session or tenant with
// [Limiter.Stop]; it stays refused until [Limiter.Resume].
type StoppedError struct {
	Scope Scope
	ID    string
}

// APIError makes a BudgetError a 402 budget_exceeded, with Retry-After
// until the budget renews.
func (e *BudgetError) APIError() *apierr.Error {
	return &apierr.Error{Kind: apierr.BudgetExceeded, RetryAfter: e.RetryAfter,
		Message: "the daily budget of this " + string(e.Scope) + " is spent; it renews at 00:00 UTC"}
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("ratelimit: %s %s is stopped by an operator", e.Scope, e.ID)
}

// APIError makes a StoppedError a 403 stopped.
func (e *StoppedError) APIError() *apierr.Error {
	return &apierr.Error{Kind: apierr.Stopped, Message: "this " + string(e.Scope) + " has been stopped by an operator"}
}

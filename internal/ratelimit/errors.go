package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// ErrUnavailable means Redis could not be reached, so no limit could be
// checked; the call was refused rather than let through unchecked. The
// caller may retry later.
var ErrUnavailable = errors.New("ratelimit: redis unavailable")

// A Scope names whom a budget, a kill switch or a limit applies to.
type Scope string

// Scopes.
const (
	ScopeSession Scope = "session"
	ScopeTenant  Scope = "tenant"
	ScopeModel   Scope = "model"  // rate limits shared by every tenant of a model
	ScopeGlobal  Scope = "global" // concurrency across all tenants
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
	// Scope is ScopeModel, ScopeTenant or ScopeGlobal.
	Scope Scope
	// Name is the model or tenant; empty for ScopeGlobal.
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

func (e *BudgetError) Error() string {
	return fmt.Sprintf("ratelimit: %s %s spent %v of its daily budget of %v %s", e.Scope, e.ID, e.Spent, e.Limit, e.Unit)
}

// A StoppedError means an operator stopped the session or tenant with
// [Limiter.Stop]; it stays refused until [Limiter.Resume].
type StoppedError struct {
	Scope Scope
	ID    string
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("ratelimit: %s %s is stopped by an operator", e.Scope, e.ID)
}

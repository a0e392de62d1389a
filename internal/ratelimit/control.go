package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/lambdagent/lambdagent/internal/session"
)

// Stop sets the kill switch of a session or tenant (scope ScopeSession or
// ScopeTenant): every instance refuses its next model call, and its next
// turn, with a *StoppedError until [Limiter.Resume]. A turn in flight
// fails at its next model call. A session is named by its store id
// (session.Scope of its tenant and id), a tenant by its name.
func (l *Limiter) Stop(ctx context.Context, scope Scope, id string) error {
	if err := checkScope(scope, id); err != nil {
		return err
	}
	if err := l.rdb.Set(ctx, l.stopKey(scope, id), l.now().UTC().Format(time.RFC3339), 0).Err(); err != nil {
		return l.redisErr(ctx, fmt.Sprintf("stop %s %s", scope, id), err)
	}
	return nil
}

// Resume clears the kill switch that [Limiter.Stop] set. Resuming what is
// not stopped does nothing.
func (l *Limiter) Resume(ctx context.Context, scope Scope, id string) error {
	if err := checkScope(scope, id); err != nil {
		return err
	}
	if err := l.rdb.Del(ctx, l.stopKey(scope, id)).Err(); err != nil {
		return l.redisErr(ctx, fmt.Sprintf("resume %s %s", scope, id), err)
	}
	return nil
}

// Stopped reports whether the session or tenant is stopped.
func (l *Limiter) Stopped(ctx context.Context, scope Scope, id string) (bool, error) {
	if err := checkScope(scope, id); err != nil {
		return false, err
	}
	n, err := l.rdb.Exists(ctx, l.stopKey(scope, id)).Result()
	if err != nil {
		return false, l.redisErr(ctx, fmt.Sprintf("read the kill switch of %s %s", scope, id), err)
	}
	return n == 1, nil
}

// checkScope rejects an unknown scope, and an id that is not a valid
// session store id or tenant (wrapping [ErrInvalidKey]).
func checkScope(scope Scope, id string) error {
	switch scope {
	case ScopeSession:
		if id == "" {
			return fmt.Errorf("%w: empty session id", ErrInvalidKey)
		}
		return checkKey(DefaultTenant, id)
	case ScopeTenant:
		return checkKey(id, "")
	}
	return fmt.Errorf("ratelimit: scope %q is not %q or %q", scope, ScopeSession, ScopeTenant)
}

// DayUsage is what a session or tenant used on one UTC day.
type DayUsage struct {
	Scope Scope `json:"scope"`
	// ID is the session's id as its client knows it (without the tenant),
	// or the tenant.
	ID string `json:"id"`
	// Tenant is the tenant: the session's, or ID itself.
	Tenant string `json:"tenant"`
	// Day is the UTC date, YYYY-MM-DD.
	Day                      string `json:"day"`
	ModelCalls               int64  `json:"model_calls"`
	InputTokens              int64  `json:"input_tokens"`
	OutputTokens             int64  `json:"output_tokens"`
	CacheCreationInputTokens int64  `json:"cache_creation_input_tokens"`
	// CacheCreation1hInputTokens is the part of CacheCreationInputTokens
	// written for an hour.
	CacheCreation1hInputTokens int64 `json:"cache_creation_1h_input_tokens"`
	CacheReadInputTokens       int64 `json:"cache_read_input_tokens"`
	// CostUSD is the cost of the calls as the model client priced them
	// (claude.Usage.CostUSD), summed per call in µUSD.
	CostUSD float64 `json:"cost_usd"`
}

// Usage returns what the session or tenant used on the UTC day of t. A
// session is named by its store id, as for [Limiter.Stop]. Nothing
// recorded is all zeros, not an error.
func (l *Limiter) Usage(ctx context.Context, scope Scope, id string, t time.Time) (DayUsage, error) {
	u := DayUsage{Scope: scope, ID: id, Tenant: id, Day: day(t)}
	if scope == ScopeSession {
		u.Tenant, u.ID = session.Unscope(id)
	}
	if err := checkScope(scope, id); err != nil {
		return u, err
	}
	vals, err := l.rdb.HMGet(ctx, l.usageKey(u.Day, scope, id), "calls", "in", "out", "cw", "cw1h", "cr", "usd").Result()
	if err != nil {
		return u, l.redisErr(ctx, fmt.Sprintf("read the usage of %s %s", scope, id), err)
	}
	var usd int64
	for i, dst := range []*int64{&u.ModelCalls, &u.InputTokens, &u.OutputTokens, &u.CacheCreationInputTokens, &u.CacheCreation1hInputTokens, &u.CacheReadInputTokens, &usd} {
		if s, ok := vals[i].(string); ok {
			*dst, _ = strconv.ParseInt(s, 10, 64)
		}
	}
	u.CostUSD = float64(usd) / 1e6
	return u, nil
}

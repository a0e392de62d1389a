package ratelimit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/session"
)

// Defaults for a zero [Config].
const (
	DefaultPrefix        = "lambdagent:"
	DefaultWindow        = time.Minute
	DefaultMaxWait       = time.Minute
	DefaultTenant        = "default"
	DefaultBytesPerToken = 4.0
	DefaultSlowBelow     = 0.1
	DefaultSlotTTL       = 30 * time.Second
	DefaultUsageTTL      = 35 * 24 * time.Hour
)

// Limits caps what one scope may send to the API per window. A zero field
// is no limit.
type Limits struct {
	Requests     int64
	InputTokens  int64
	OutputTokens int64
}

func (l Limits) on() bool { return l.Requests > 0 || l.InputTokens > 0 || l.OutputTokens > 0 }

// A Budget caps what a session or tenant may spend per UTC day. A zero
// field is no limit.
type Budget struct {
	// TokensPerDay counts input, cache write and output tokens; cache
	// reads are not counted (they are what the USD budget is for).
	TokensPerDay int64
	USDPerDay    float64
}

// Config tunes a [Limiter]. A zero field means its default.
type Config struct {
	// Prefix starts every key; the limiter's keys go on with "rl:{rl}:",
	// so they never meet a session store's (redisstore's keys go on with
	// "{"), and it may be the same prefix. It must not contain '{' or '}':
	// every key carries the hash tag {rl}, so that the scripts, which
	// touch model, tenant and session keys at once, work on Redis Cluster
	// (one slot holds all of them). Empty means DefaultPrefix.
	Prefix string

	// Window is the span the rate limits count over. Zero means
	// DefaultWindow (a minute, the API's). Tests shorten it.
	Window time.Duration
	// Model limits each model, all tenants together (set it under the
	// API's limits of your organization). Models overrides it for the
	// models it names.
	Model  Limits
	Models map[string]Limits
	// Tenant limits each tenant on each model.
	Tenant Limits
	// MaxWait bounds how long a call waits for room in a window (or a
	// turn for a concurrency slot) even when its deadline allows more;
	// past it the call fails with a *LimitError. Zero means
	// DefaultMaxWait.
	MaxWait time.Duration

	// BytesPerToken turns a request body's size into its estimated input
	// tokens. Zero means DefaultBytesPerToken (4, the documented rough
	// rule; the JSON framing makes it an overestimate for prose).
	BytesPerToken float64
	// OutputEstimate is the output tokens reserved per call before the
	// reply says how many it used. Zero means the request's max_tokens.
	OutputEstimate int64
	// SlowBelow is the fraction of an API limit (from the
	// anthropic-ratelimit-* headers) below which every instance holds
	// back until it refills to that fraction. Zero means
	// DefaultSlowBelow; negative turns learning off.
	SlowBelow float64

	// SessionBudget and TenantBudget cap each session's and each
	// tenant's daily spend.
	SessionBudget Budget
	TenantBudget  Budget
	// UsageTTL is how long a day's usage sums are kept. Zero means
	// DefaultUsageTTL (35 days).
	UsageTTL time.Duration

	// MaxTurns caps turns in flight across all instances, and
	// MaxTurnsPerTenant those of each tenant. Zero is no limit.
	MaxTurns          int
	MaxTurnsPerTenant int
	// SlotTTL is how long a concurrency slot outlives an instance that
	// died holding it; a live holder renews it every third of it. Zero
	// means DefaultSlotTTL.
	SlotTTL time.Duration

	// DefaultTenant names the tenant of a turn that names none. Empty
	// means DefaultTenant ("default").
	DefaultTenant string
	// Now is the clock. Every instance passes its own time to Redis, so
	// instances' clocks must agree (NTP) to well within Window. Nil means
	// time.Now.
	Now func() time.Time
	// Logger receives what cannot be returned (a failed reconcile after a
	// successful call). Nil means slog.Default().
	Logger *slog.Logger
}

// A Limiter enforces rate limits, budgets, concurrency limits and kill
// switches shared by every instance through one Redis. It is safe for
// concurrent use; build one per process.
type Limiter struct {
	rdb    redis.UniversalClient
	cfg    Config
	prefix string // Prefix + "rl:{rl}:"
	now    func() time.Time
	log    *slog.Logger
}

// New returns a Limiter on rdb, which may be a standalone, Sentinel or
// Cluster client. It does no I/O.
func New(rdb redis.UniversalClient, cfg Config) (*Limiter, error) {
	if rdb == nil {
		return nil, errors.New("ratelimit: nil Redis client")
	}
	if strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, fmt.Errorf("ratelimit: prefix %q contains a brace, which would break the cluster hash tag", cfg.Prefix)
	}
	negative := func(name string, v float64) error {
		if v < 0 || math.IsNaN(v) {
			return fmt.Errorf("ratelimit: negative %s %v", name, v)
		}
		return nil
	}
	for _, c := range []struct {
		name string
		v    float64
	}{
		{"Window", float64(cfg.Window)}, {"MaxWait", float64(cfg.MaxWait)}, {"BytesPerToken", cfg.BytesPerToken},
		{"OutputEstimate", float64(cfg.OutputEstimate)}, {"UsageTTL", float64(cfg.UsageTTL)}, {"SlotTTL", float64(cfg.SlotTTL)},
		{"MaxTurns", float64(cfg.MaxTurns)}, {"MaxTurnsPerTenant", float64(cfg.MaxTurnsPerTenant)},
		{"SessionBudget.TokensPerDay", float64(cfg.SessionBudget.TokensPerDay)}, {"SessionBudget.USDPerDay", cfg.SessionBudget.USDPerDay},
		{"TenantBudget.TokensPerDay", float64(cfg.TenantBudget.TokensPerDay)}, {"TenantBudget.USDPerDay", cfg.TenantBudget.USDPerDay},
	} {
		if err := negative(c.name, c.v); err != nil {
			return nil, err
		}
	}
	for name, l := range allLimits(cfg) {
		if l.Requests < 0 || l.InputTokens < 0 || l.OutputTokens < 0 {
			return nil, fmt.Errorf("ratelimit: negative %s limits %+v", name, l)
		}
	}
	if cfg.SlowBelow >= 1 {
		return nil, fmt.Errorf("ratelimit: SlowBelow %v is not below 1", cfg.SlowBelow)
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.Window < time.Millisecond {
		return nil, fmt.Errorf("ratelimit: Window %v is under a millisecond", cfg.Window)
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.BytesPerToken == 0 {
		cfg.BytesPerToken = DefaultBytesPerToken
	}
	if cfg.SlowBelow == 0 {
		cfg.SlowBelow = DefaultSlowBelow
	}
	if cfg.UsageTTL == 0 {
		cfg.UsageTTL = DefaultUsageTTL
	}
	if cfg.SlotTTL == 0 {
		cfg.SlotTTL = DefaultSlotTTL
	}
	if cfg.SlotTTL < 3*time.Millisecond {
		return nil, fmt.Errorf("ratelimit: SlotTTL %v is too short to renew", cfg.SlotTTL)
	}
	if cfg.DefaultTenant == "" {
		cfg.DefaultTenant = DefaultTenant
	}
	if err := auth.ValidTenant(cfg.DefaultTenant); err != nil {
		return nil, fmt.Errorf("ratelimit: DefaultTenant: %w", err)
	}
	l := &Limiter{rdb: rdb, cfg: cfg, prefix: cfg.Prefix + "rl:{rl}:", now: cfg.Now, log: cfg.Logger}
	if l.now == nil {
		l.now = time.Now
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	return l, nil
}

func allLimits(cfg Config) map[string]Limits {
	m := map[string]Limits{"Model": cfg.Model, "Tenant": cfg.Tenant}
	for name, l := range cfg.Models {
		m["Models["+name+"]"] = l
	}
	return m
}

// Config returns the limiter's configuration with defaults applied.
func (l *Limiter) Config() Config { return l.cfg }

// A Key names whose call a reservation is for.
type Key struct {
	// Model is the Messages API model; each has its own windows.
	Model string
	// Tenant is whose call it is; empty means Config.DefaultTenant. It
	// must pass auth.ValidTenant.
	Tenant string
	// SessionID, if set, subjects the call to the session's kill switch
	// and budget. It is the session's store id (agent.Request.StoreID,
	// session.Scope of the tenant and the client's id), so each tenant's
	// sessions have their own budget, usage and kill switch even when two
	// tenants use the same id (see #13).
	SessionID string
	// KeyID is the API key the call is made with (auth.Principal.KeyID),
	// and KeyLimits that key's own limits per window, across all models.
	// They are passed per call, not configured, because they live with
	// the key in the key registry. With zero KeyLimits the key's window
	// is neither read nor written; KeyID alone does nothing.
	KeyID     string
	KeyLimits Limits
}

// KeyLimits converts an API key's own limits (auth.Key.Limits, per
// minute) into the limiter's, which count per Config.Window.
func KeyLimits(l auth.Limits) Limits {
	return Limits{Requests: int64(l.RPM), InputTokens: int64(l.ITPM), OutputTokens: int64(l.OTPM)}
}

// checkKey rejects a tenant or session store id that could not be part
// of a key: the kill switch, budget and usage keys are built from them.
func checkKey(tenant, sessionID string) error {
	if err := auth.ValidTenant(tenant); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	if sessionID != "" {
		if err := session.ValidStoreID(sessionID); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidKey, err)
		}
	}
	return nil
}

// Tokens are token amounts of one call.
type Tokens struct {
	Input  int64
	Output int64
}

// EstimateInput estimates the input tokens of a request body from its
// size: ceil(bytes / Config.BytesPerToken). It calls nothing.
func (l *Limiter) EstimateInput(body []byte) int64 {
	return int64(math.Ceil(float64(len(body)) / l.cfg.BytesPerToken))
}

// modelLimits returns the limits of model.
func (l *Limiter) modelLimits(model string) Limits {
	if m, ok := l.cfg.Models[model]; ok {
		return m
	}
	return l.cfg.Model
}

// keys of one call.
type callKeys struct {
	stopSession, stopTenant string
	useSession, useTenant   string
	slow                    string
	modelZ, modelH          string
	tenantZ, tenantH        string
	keyZ, keyH              string
}

func esc(s string) string { return url.QueryEscape(s) }

func (l *Limiter) stopKey(scope Scope, id string) string {
	if scope == ScopeTenant {
		id = esc(id)
	}
	return l.prefix + "stop:" + string(scope) + ":" + id
}

func (l *Limiter) usageKey(day string, scope Scope, id string) string {
	if scope == ScopeTenant {
		id = esc(id)
	}
	return l.prefix + "use:" + day + ":" + string(scope) + ":" + id
}

func (l *Limiter) callKeys(k Key, day string) callKeys {
	m, t := esc(k.Model), esc(k.Tenant)
	return callKeys{
		stopSession: l.stopKey(ScopeSession, k.SessionID),
		stopTenant:  l.stopKey(ScopeTenant, k.Tenant),
		useSession:  l.usageKey(day, ScopeSession, k.SessionID),
		useTenant:   l.usageKey(day, ScopeTenant, k.Tenant),
		slow:        l.prefix + "slow:" + m,
		modelZ:      l.prefix + "winz:model:" + m,
		modelH:      l.prefix + "winh:model:" + m,
		tenantZ:     l.prefix + "winz:tenant:" + m + ":" + t,
		tenantH:     l.prefix + "winh:tenant:" + m + ":" + t,
		keyZ:        l.prefix + "winz:key:" + esc(k.KeyID),
		keyH:        l.prefix + "winh:key:" + esc(k.KeyID),
	}
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

// untilTomorrow is the time from t to the next 00:00 UTC.
func untilTomorrow(t time.Time) time.Duration {
	u := t.UTC()
	return time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC).Sub(u)
}

func (l *Limiter) keyTTL() int64 { return (l.cfg.Window + time.Hour).Milliseconds() }

func b01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func microUSD(usd float64) int64 { return int64(math.Round(usd * 1e6)) }

// budgetMicroUSD is a USD budget in µUSD, the unit the usage sums keep; a
// positive budget stays positive (zero would mean none).
func budgetMicroUSD(usd float64) int64 {
	if usd <= 0 {
		return 0
	}
	return max(microUSD(usd), 1)
}

// A Reservation is room taken in the rate windows for one call. End it
// with exactly one of [Reservation.Reconcile], [Reservation.Cancel] or
// [Reservation.Hold]; an unended one counts its estimate until it leaves
// the window.
type Reservation struct {
	l       *Limiter
	key     Key
	id      string
	est     Tokens
	model   bool // the model window is on
	tenant  bool // the tenant window is on
	keyWin  bool // the API key's window is on
	session bool
}

// Reserve checks, in one round trip, the kill switches of the session and
// tenant, their budgets for today, the model's shared slowdown and the
// model's and tenant's rate windows; if all allow it, it takes est from
// the windows. It does not wait:
//
//   - admitted: it returns the Reservation;
//   - over a rate limit or slowed down: it returns a *LimitError and how
//     long until the call would fit;
//   - stopped or over budget: a *StoppedError or *BudgetError;
//   - an invalid tenant or session id: an error wrapping ErrInvalidKey;
//   - Redis unreachable: an error wrapping ErrUnavailable.
//
// An estimate above a limit is cut to the limit, so a call larger than a
// whole window runs alone in one rather than never.
func (l *Limiter) Reserve(ctx context.Context, k Key, est Tokens) (*Reservation, time.Duration, error) {
	if k.Tenant == "" {
		k.Tenant = l.cfg.DefaultTenant
	}
	if err := checkKey(k.Tenant, k.SessionID); err != nil {
		return nil, 0, err
	}
	kl := k.KeyLimits
	if kl.Requests < 0 || kl.InputTokens < 0 || kl.OutputTokens < 0 {
		return nil, 0, fmt.Errorf("%w: negative limits of key %.32q", ErrInvalidKey, k.KeyID)
	}
	if kl.on() && k.KeyID == "" {
		return nil, 0, fmt.Errorf("%w: key limits without a key id", ErrInvalidKey)
	}
	ml, tl := l.modelLimits(k.Model), l.cfg.Tenant
	est.Input = clamp(max(est.Input, 0), ml.InputTokens, tl.InputTokens, kl.InputTokens)
	est.Output = clamp(max(est.Output, 0), ml.OutputTokens, tl.OutputTokens, kl.OutputTokens)
	now := l.now()
	nowUS := now.UnixMicro()
	win := l.cfg.Window.Microseconds()
	ks := l.callKeys(k, day(now))
	r := &Reservation{l: l, key: k, id: newID(), est: est, model: ml.on(), tenant: tl.on(), keyWin: kl.on(), session: k.SessionID != ""}
	sb, tb := l.cfg.SessionBudget, l.cfg.TenantBudget
	res, err := reserveScript.Run(ctx, l.rdb,
		[]string{ks.stopSession, ks.stopTenant, ks.useSession, ks.useTenant, ks.slow, ks.modelZ, ks.modelH, ks.tenantZ, ks.tenantH, ks.keyZ, ks.keyH},
		nowUS, win, nowUS-win, r.id, est.Input, est.Output,
		ml.Requests, ml.InputTokens, ml.OutputTokens, tl.Requests, tl.InputTokens, tl.OutputTokens,
		sb.TokensPerDay, budgetMicroUSD(sb.USDPerDay), tb.TokensPerDay, budgetMicroUSD(tb.USDPerDay),
		l.keyTTL(), b01(r.session), kl.Requests, kl.InputTokens, kl.OutputTokens).Slice()
	if err != nil {
		return nil, 0, l.redisErr(ctx, "reserve for tenant "+k.Tenant, err)
	}
	switch res[0] {
	case "ok":
		return r, 0, nil
	case "stopped":
		scope := Scope(res[1].(string))
		return nil, 0, &StoppedError{Scope: scope, ID: k.id(scope)}
	case "budget":
		scope, unit := Scope(res[1].(string)), res[2].(string)
		spent, limit := float64(res[3].(int64)), float64(res[4].(int64))
		if unit == "usd" {
			spent, limit = spent/1e6, limit/1e6
		}
		return nil, 0, &BudgetError{Scope: scope, ID: k.id(scope), Unit: unit, Spent: spent, Limit: limit, RetryAfter: untilTomorrow(now)}
	case "wait":
		wait := time.Duration(res[1].(int64)) * time.Microsecond
		scope := Scope(res[2].(string))
		name := k.Model
		switch scope {
		case ScopeTenant:
			name = k.Tenant
		case ScopeKey:
			name = k.KeyID
		}
		return nil, wait, &LimitError{Kind: res[3].(string), Scope: scope, Name: name, RetryAfter: wait}
	}
	return nil, 0, fmt.Errorf("ratelimit: reserve: unexpected reply %v", res)
}

func (k Key) id(s Scope) string {
	if s == ScopeSession {
		return k.SessionID
	}
	return k.Tenant
}

// clamp cuts v to the positive limits among ls.
func clamp(v int64, ls ...int64) int64 {
	for _, l := range ls {
		if l > 0 && v > l {
			v = l
		}
	}
	return v
}

// Wait is [Limiter.Reserve] that waits for room: while over a rate limit
// it sleeps (with a little jitter, so waiting instances do not wake
// together) and tries again, as long as the wait ends before ctx's
// deadline and within Config.MaxWait of the first try. Otherwise it
// returns the *LimitError, whose RetryAfter says when to come back.
func (l *Limiter) Wait(ctx context.Context, k Key, est Tokens) (*Reservation, error) {
	give := l.now().Add(l.cfg.MaxWait)
	for {
		r, wait, err := l.Reserve(ctx, k, est)
		var le *LimitError
		if !errors.As(err, &le) {
			return r, err
		}
		end := l.now().Add(wait)
		dl, ok := ctx.Deadline()
		if (ok && end.After(dl)) || end.After(give) {
			return nil, err
		}
		j := jitter(wait)
		if ok {
			j = min(j, dl.Sub(end))
		}
		t := time.NewTimer(wait + j)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for %s limit of %s %s: %w", le.Kind, le.Scope, le.Name, ctx.Err())
		case <-t.C:
		}
	}
}

// jitter is a random extra wait in [0, d/8 + 2ms).
func jitter(d time.Duration) time.Duration {
	return mrand.N(d/8 + 2*time.Millisecond)
}

// Reconcile ends the reservation of a call that succeeded with usage u:
// the windows count the input tokens the API counts (input plus cache
// writes; cache reads do not count against its limits) and u's output
// tokens, from now until a window from now. It adds u and its cost
// (u.CostUSD, as the model client priced the reply) to the session's and
// tenant's sums for today, and learns from the reply's
// anthropic-ratelimit-* headers h (see Config.SlowBelow).
func (r *Reservation) Reconcile(ctx context.Context, u claude.Usage, h http.Header) error {
	actual := Tokens{Input: u.InputTokens + u.CacheCreationInputTokens, Output: u.OutputTokens}
	return r.settle(ctx, actual, &u, h)
}

// Cancel ends the reservation of a call the API refused (any error
// status): its tokens are released, the request still counts. h, the
// error's headers, are learnt from.
func (r *Reservation) Cancel(ctx context.Context, h http.Header) error {
	return r.settle(ctx, Tokens{}, nil, h)
}

// Hold ends the reservation of a call whose outcome is unknown (the
// connection broke, the deadline passed): the API may have counted it, so
// the estimate stays, counted from now.
func (r *Reservation) Hold(ctx context.Context) error {
	return r.settle(ctx, r.est, nil, nil)
}

func (r *Reservation) settle(ctx context.Context, actual Tokens, u *claude.Usage, h http.Header) error {
	l := r.l
	now := l.now()
	ks := l.callKeys(r.key, day(now))
	slowUntil, slowTTL := int64(0), int64(0)
	if until := l.slowUntil(h, now); until.After(now) {
		slowUntil, slowTTL = until.UnixMicro(), until.Sub(now).Milliseconds()+1
	}
	args := []any{now.UnixMicro(), r.id, max(actual.Input, 0), max(actual.Output, 0), l.keyTTL(),
		b01(r.model), b01(r.tenant), b01(u != nil), b01(r.session), l.cfg.UsageTTL.Milliseconds(), slowUntil, slowTTL, b01(r.keyWin)}
	if u != nil {
		args = append(args,
			"in", u.InputTokens, "out", u.OutputTokens, "cw", u.CacheCreationInputTokens,
			"cw1h", u.CacheCreation.Ephemeral1hInputTokens, "cr", u.CacheReadInputTokens,
			"calls", 1, "usd", microUSD(u.CostUSD))
	}
	err := settleScript.Run(ctx, l.rdb,
		[]string{ks.modelZ, ks.modelH, ks.tenantZ, ks.tenantH, ks.useSession, ks.useTenant, ks.slow, ks.keyZ, ks.keyH}, args...).Err()
	if err != nil {
		return l.redisErr(ctx, "settle reservation of tenant "+r.key.Tenant, err)
	}
	return nil
}

// redisErr wraps a Redis failure: context errors stay themselves, others
// wrap ErrUnavailable.
func (l *Limiter) redisErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

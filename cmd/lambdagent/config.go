package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/pricing"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// config is every setting lambdagent reads from the environment, read and
// validated once at startup (see the README's Configuration table).
type config struct {
	Addr string // LAMBDAGENT_ADDR, or :$PORT

	RedisURL    string        // REDIS_URL; empty means the embedded store
	RedisPrefix string        // LAMBDAGENT_REDIS_PREFIX
	DBPath      string        // LAMBDAGENT_DB
	SessionTTL  time.Duration // LAMBDAGENT_SESSION_TTL
	IdemTTL     time.Duration // LAMBDAGENT_IDEMPOTENCY_TTL

	APIKey  string        // ANTHROPIC_API_KEY
	BaseURL string        // ANTHROPIC_BASE_URL
	Prices  pricing.Table // LAMBDAGENT_PRICES: the Claude client prices each reply

	Agent        agent.Config
	MaxBodyBytes int64  // LAMBDAGENT_MAX_BODY_BYTES
	MCPConfig    string // LAMBDAGENT_MCP_CONFIG (path or inline JSON)

	LogFormat string // LAMBDAGENT_LOG_FORMAT: text or json
	LogLevel  string // LAMBDAGENT_LOG_LEVEL

	SimLatency time.Duration // LAMBDAGENT_SIM_LATENCY (dev and sim modes)

	DeadlineMargin time.Duration // LAMBDAGENT_DEADLINE_MARGIN (Lambda)
	TenantHeader   string        // LAMBDAGENT_TENANT_HEADER

	// Observability (internal/telemetry).
	Metrics       string // LAMBDAGENT_METRICS: emf, prometheus, both, off
	TenantMetrics bool   // LAMBDAGENT_TENANT_METRICS
	Tracing       bool   // OTEL_*: see telemetry.TracingFromEnv
	Function      string // AWS_LAMBDA_FUNCTION_NAME: the EMF Function dimension

	// Limits, budgets, kill switch (internal/ratelimit; need Redis).
	Limits     ratelimit.Config
	AdminToken string // LAMBDAGENT_ADMIN_TOKEN
	onLambda   bool   // AWS_LAMBDA_RUNTIME_API is set: logs are JSON
}

// env reads variables for config, remembering the first bad one.
type env struct {
	get func(string) string
	err error
}

func (e *env) str(name, def string) string {
	if v := strings.TrimSpace(e.get(name)); v != "" {
		return v
	}
	return def
}

func (e *env) dur(name string, def time.Duration) time.Duration {
	v := e.get(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative")
	}
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("%s=%q: want a duration such as 30s or 5m: %v", name, v, err)
	}
	return d
}

func (e *env) int(name string, def int64) int64 {
	v := e.get(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if (err != nil || n < 0) && e.err == nil {
		e.err = fmt.Errorf("%s=%q: want a non-negative whole number", name, v)
	}
	return n
}

func (e *env) float(name string, def float64) float64 {
	v := e.get(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if (err != nil || math.IsNaN(f) || math.IsInf(f, 0)) && e.err == nil {
		e.err = fmt.Errorf("%s=%q: want a number", name, v)
	}
	return f
}

func (e *env) oneOf(name, def string, allowed ...string) string {
	v := e.str(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	if e.err == nil {
		e.err = fmt.Errorf("%s=%q: want one of %s", name, v, strings.Join(allowed, ", "))
	}
	return v
}

// loadConfig reads the environment through get (os.Getenv in main).
func loadConfig(get func(string) string) (config, error) {
	e := &env{get: get}
	var c config
	c.Addr = e.str("LAMBDAGENT_ADDR", "")
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
		if p := e.str("PORT", ""); p != "" {
			if _, err := strconv.ParseUint(p, 10, 16); err != nil && e.err == nil {
				e.err = fmt.Errorf("PORT=%q: want a port number", p)
			}
			c.Addr = ":" + p
		}
	}
	c.RedisURL = e.str("REDIS_URL", "")
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") && e.err == nil {
		e.err = fmt.Errorf("REDIS_URL: want redis://… or rediss://… (TLS), got %q", redact(c.RedisURL))
	}
	c.RedisPrefix = e.str("LAMBDAGENT_REDIS_PREFIX", "lambdagent:")
	c.DBPath = e.str("LAMBDAGENT_DB", "lambdagent.db")
	c.SessionTTL = e.dur("LAMBDAGENT_SESSION_TTL", 7*24*time.Hour)
	c.IdemTTL = e.dur("LAMBDAGENT_IDEMPOTENCY_TTL", 24*time.Hour)
	c.APIKey = e.str("ANTHROPIC_API_KEY", "")
	c.BaseURL = e.str("ANTHROPIC_BASE_URL", "")
	c.Agent = agent.Config{
		Model:         e.str("LAMBDAGENT_MODEL", agent.DefaultModel),
		MaxTokens:     int(e.int("LAMBDAGENT_MAX_TOKENS", agent.DefaultMaxTokens)),
		System:        e.get("LAMBDAGENT_SYSTEM_PROMPT"),
		Busy:          agent.BusyPolicy(e.oneOf("LAMBDAGENT_BUSY_POLICY", "queue", "queue", "reject")),
		QueueWait:     e.dur("LAMBDAGENT_QUEUE_WAIT", agent.DefaultQueueWait),
		LeaseTTL:      e.dur("LAMBDAGENT_LEASE_TTL", agent.DefaultLeaseTTL),
		MaxModelCalls: int(e.int("LAMBDAGENT_MAX_MODEL_CALLS", agent.DefaultMaxModelCalls)),
		TurnTimeout:   e.dur("LAMBDAGENT_TURN_TIMEOUT", agent.DefaultTurnTimeout),
		PromptCache:   e.oneOf("LAMBDAGENT_PROMPT_CACHE", "5m", "5m", "1h", "off"),
	}
	c.MaxBodyBytes = e.int("LAMBDAGENT_MAX_BODY_BYTES", 1<<20)
	c.MCPConfig = e.str("LAMBDAGENT_MCP_CONFIG", "")
	c.LogFormat = e.oneOf("LAMBDAGENT_LOG_FORMAT", "text", "text", "json")
	c.LogLevel = e.oneOf("LAMBDAGENT_LOG_LEVEL", "info", "debug", "info", "warn", "error")
	c.SimLatency = e.dur("LAMBDAGENT_SIM_LATENCY", 0)
	c.DeadlineMargin = e.dur("LAMBDAGENT_DEADLINE_MARGIN", 0)
	c.onLambda = get("AWS_LAMBDA_RUNTIME_API") != ""
	c.TenantHeader = e.str("LAMBDAGENT_TENANT_HEADER", "")
	metrics := "prometheus"
	if c.onLambda {
		metrics = "emf"
	}
	c.Metrics = e.oneOf("LAMBDAGENT_METRICS", metrics, "emf", "prometheus", "both", "off")
	c.TenantMetrics = e.oneOf("LAMBDAGENT_TENANT_METRICS", "false", "true", "false") == "true"
	c.Function = e.str("AWS_LAMBDA_FUNCTION_NAME", "")
	if tracing, err := telemetry.TracingFromEnv(get); err != nil {
		if e.err == nil {
			e.err = err
		}
	} else {
		c.Tracing = tracing
	}
	c.Limits = ratelimit.Config{
		Window:            e.dur("LAMBDAGENT_RATE_WINDOW", ratelimit.DefaultWindow),
		Model:             ratelimit.Limits{Requests: e.int("LAMBDAGENT_RPM", 0), InputTokens: e.int("LAMBDAGENT_ITPM", 0), OutputTokens: e.int("LAMBDAGENT_OTPM", 0)},
		Tenant:            ratelimit.Limits{Requests: e.int("LAMBDAGENT_TENANT_RPM", 0), InputTokens: e.int("LAMBDAGENT_TENANT_ITPM", 0), OutputTokens: e.int("LAMBDAGENT_TENANT_OTPM", 0)},
		MaxWait:           e.dur("LAMBDAGENT_RATE_MAX_WAIT", ratelimit.DefaultMaxWait),
		OutputEstimate:    e.int("LAMBDAGENT_OUTPUT_ESTIMATE", 0),
		SlowBelow:         e.float("LAMBDAGENT_SLOW_BELOW", ratelimit.DefaultSlowBelow),
		MaxTurns:          int(e.int("LAMBDAGENT_MAX_TURNS", 0)),
		MaxTurnsPerTenant: int(e.int("LAMBDAGENT_MAX_TURNS_PER_TENANT", 0)),
		SessionBudget:     ratelimit.Budget{TokensPerDay: e.int("LAMBDAGENT_SESSION_BUDGET_TOKENS", 0), USDPerDay: e.float("LAMBDAGENT_SESSION_BUDGET_USD", 0)},
		TenantBudget:      ratelimit.Budget{TokensPerDay: e.int("LAMBDAGENT_TENANT_BUDGET_TOKENS", 0), USDPerDay: e.float("LAMBDAGENT_TENANT_BUDGET_USD", 0)},
		UsageTTL:          e.dur("LAMBDAGENT_USAGE_TTL", ratelimit.DefaultUsageTTL),
	}
	c.AdminToken = e.str("LAMBDAGENT_ADMIN_TOKEN", "")
	prices := e.get("LAMBDAGENT_PRICES")
	if e.err != nil {
		return c, e.err
	}
	var err error
	if c.Prices, err = pricing.Parse(prices); err != nil {
		return c, fmt.Errorf("LAMBDAGENT_PRICES: %w", err)
	}
	switch l := c.Limits; {
	case l.SlowBelow >= 1:
		return c, fmt.Errorf("LAMBDAGENT_SLOW_BELOW=%v: want a fraction below 1 (negative: off)", l.SlowBelow)
	case l.SessionBudget.USDPerDay < 0:
		return c, fmt.Errorf("LAMBDAGENT_SESSION_BUDGET_USD=%v: want ≥ 0", l.SessionBudget.USDPerDay)
	case l.TenantBudget.USDPerDay < 0:
		return c, fmt.Errorf("LAMBDAGENT_TENANT_BUDGET_USD=%v: want ≥ 0", l.TenantBudget.USDPerDay)
	case l.Window > 0 && l.Window < time.Second:
		return c, fmt.Errorf("LAMBDAGENT_RATE_WINDOW=%v: want at least 1s", l.Window)
	}
	if _, ok := c.Prices.Lookup(c.Agent.Model); !ok && (c.Limits.SessionBudget.USDPerDay > 0 || c.Limits.TenantBudget.USDPerDay > 0) {
		return c, fmt.Errorf("LAMBDAGENT_MODEL=%q has no price, so USD budgets cannot work: add it to LAMBDAGENT_PRICES", c.Agent.Model)
	}
	if c.Agent.LeaseTTL > 0 && c.Agent.LeaseTTL < 300*time.Millisecond {
		return c, fmt.Errorf("LAMBDAGENT_LEASE_TTL=%v: want at least 300ms", c.Agent.LeaseTTL)
	}
	return c, nil
}

// limitsSet reports whether any limit, budget or the admin API is asked
// for: they keep their state in Redis, and turn the limiter on.
func (c config) limitsSet() bool {
	l := c.Limits
	return l.Model != (ratelimit.Limits{}) || l.Tenant != (ratelimit.Limits{}) || l.MaxTurns > 0 || l.MaxTurnsPerTenant > 0 ||
		l.SessionBudget != (ratelimit.Budget{}) || l.TenantBudget != (ratelimit.Budget{}) || c.AdminToken != ""
}

// redact hides the password in a URL for error messages.
func redact(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 {
		return u
	}
	return u[:scheme+3] + "…@" + u[at+1:]
}

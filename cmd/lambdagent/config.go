package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
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

	APIKey  string // ANTHROPIC_API_KEY
	BaseURL string // ANTHROPIC_BASE_URL

	Agent        agent.Config
	MaxBodyBytes int64  // LAMBDAGENT_MAX_BODY_BYTES
	MCPConfig    string // LAMBDAGENT_MCP_CONFIG (path or inline JSON)

	LogFormat string // LAMBDAGENT_LOG_FORMAT: text or json
	LogLevel  string // LAMBDAGENT_LOG_LEVEL

	SimLatency time.Duration // LAMBDAGENT_SIM_LATENCY (dev and sim modes)

	DeadlineMargin time.Duration // LAMBDAGENT_DEADLINE_MARGIN (Lambda)
	onLambda       bool          // AWS_LAMBDA_RUNTIME_API is set: logs are JSON
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
	if e.err != nil {
		return c, e.err
	}
	if c.Agent.LeaseTTL > 0 && c.Agent.LeaseTTL < 300*time.Millisecond {
		return c, fmt.Errorf("LAMBDAGENT_LEASE_TTL=%v: want at least 300ms", c.Agent.LeaseTTL)
	}
	return c, nil
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

package lambdagent

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent/internal/redact"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// OptionsFromEnv reads Options from the environment variables the
// lambdagent binary documents, through getenv (os.Getenv). It validates
// every value it reads and names the first bad variable in its error,
// without its value when that may hold a secret. Defaults that depend on
// where the process runs follow the environment: on Lambda
// (AWS_LAMBDA_RUNTIME_API set) metrics default to "emf".
func OptionsFromEnv(getenv func(string) string) (Options, error) {
	e := &env{get: getenv}
	var o Options
	o.APIKey = e.str("ANTHROPIC_API_KEY")
	o.BaseURL = e.str("ANTHROPIC_BASE_URL")
	if u, err := url.Parse(o.BaseURL); o.BaseURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		e.fail(fmt.Errorf("ANTHROPIC_BASE_URL: want an absolute http(s) URL, got %q", redact.URL(o.BaseURL)))
	}
	o.Model = e.str("LAMBDAGENT_MODEL")
	o.MaxTokens = int(e.int("LAMBDAGENT_MAX_TOKENS"))
	o.System = getenv("LAMBDAGENT_SYSTEM_PROMPT")
	o.DropBoundThinking = e.oneOf("LAMBDAGENT_DROP_BOUND_THINKING", "true", "false") == "true"
	o.PromptCache = e.oneOf("LAMBDAGENT_PROMPT_CACHE", "5m", "1h", "off")
	o.Prices = getenv("LAMBDAGENT_PRICES")
	o.History = e.oneOf("LAMBDAGENT_HISTORY", "full", "compact", "clear_tool_uses", "window")
	o.HistoryWindowTurns = int(e.int("LAMBDAGENT_HISTORY_WINDOW_TURNS"))
	o.HistoryTriggerTokens = int(e.int("LAMBDAGENT_HISTORY_TRIGGER_TOKENS"))
	o.CompactInstructions = getenv("LAMBDAGENT_COMPACT_INSTRUCTIONS")

	o.RedisURL = e.str("REDIS_URL")
	if u := o.RedisURL; u != "" && !strings.HasPrefix(u, "redis://") && !strings.HasPrefix(u, "rediss://") {
		e.fail(fmt.Errorf("REDIS_URL: want redis://… or rediss://… (TLS), got %q", redact.URL(u)))
	}
	o.RedisPrefix = e.str("LAMBDAGENT_REDIS_PREFIX")
	o.DBPath = e.str("LAMBDAGENT_DB")
	o.SessionTTL = e.dur("LAMBDAGENT_SESSION_TTL")
	o.IdempotencyTTL = e.dur("LAMBDAGENT_IDEMPOTENCY_TTL")
	o.RedisCA = e.str("LAMBDAGENT_REDIS_CA")
	o.RedisWaitReplicas = int(e.int("LAMBDAGENT_REDIS_WAIT_REPLICAS"))
	o.RedisWaitTimeout = e.dur("LAMBDAGENT_REDIS_WAIT_TIMEOUT")

	o.BusyPolicy = e.oneOf("LAMBDAGENT_BUSY_POLICY", "queue", "reject")
	o.QueueWait = e.dur("LAMBDAGENT_QUEUE_WAIT")
	o.LeaseTTL = e.dur("LAMBDAGENT_LEASE_TTL")
	o.TurnTimeout = e.dur("LAMBDAGENT_TURN_TIMEOUT")
	o.MaxModelCalls = int(e.int("LAMBDAGENT_MAX_MODEL_CALLS"))

	o.MCPConfig = e.str("LAMBDAGENT_MCP_CONFIG")
	o.Workflows = e.str("LAMBDAGENT_WORKFLOWS")
	o.WorkflowWorkers = int(e.int("LAMBDAGENT_WORKFLOW_WORKERS"))
	o.MaxBodyBytes = e.int("LAMBDAGENT_MAX_BODY_BYTES")
	o.ReadTimeout = e.dur("LAMBDAGENT_READ_TIMEOUT")
	o.WriteTimeout = e.dur("LAMBDAGENT_WRITE_TIMEOUT")
	o.IdleTimeout = e.dur("LAMBDAGENT_IDLE_TIMEOUT")
	o.ShutdownGrace = e.dur("LAMBDAGENT_SHUTDOWN_GRACE")
	o.MaxHeaderBytes = int(e.int("LAMBDAGENT_MAX_HEADER_BYTES"))
	o.AllowedHosts = e.list("LAMBDAGENT_ALLOWED_HOSTS")
	o.MaxMessageBytes = int(e.int("LAMBDAGENT_MAX_MESSAGE_BYTES"))
	o.MaxSessionBytes = int(e.int("LAMBDAGENT_MAX_SESSION_BYTES"))
	o.MaxToolResultBytes = int(e.int("LAMBDAGENT_MAX_TOOL_RESULT_BYTES"))
	o.TenantHeader = e.str("LAMBDAGENT_TENANT_HEADER")
	o.Auth = e.oneOf("LAMBDAGENT_AUTH", "key", "jwt", "apigw", "none")
	o.APIKeysFile = e.str("LAMBDAGENT_API_KEYS")
	o.JWT = JWT{
		JWKSURL:     e.str("LAMBDAGENT_JWT_JWKS_URL"),
		Issuer:      e.str("LAMBDAGENT_JWT_ISSUER"),
		Audience:    e.str("LAMBDAGENT_JWT_AUDIENCE"),
		TenantClaim: e.str("LAMBDAGENT_JWT_TENANT_CLAIM"),
	}
	o.DefaultTenant = e.str("LAMBDAGENT_DEFAULT_TENANT")
	o.OpsAuth = e.oneOf("LAMBDAGENT_OPS_AUTH", "open", "admin")

	o.Limits = Limits{
		Window:             e.dur("LAMBDAGENT_RATE_WINDOW"),
		Requests:           e.int("LAMBDAGENT_RPM"),
		InputTokens:        e.int("LAMBDAGENT_ITPM"),
		OutputTokens:       e.int("LAMBDAGENT_OTPM"),
		TenantRequests:     e.int("LAMBDAGENT_TENANT_RPM"),
		TenantInputTokens:  e.int("LAMBDAGENT_TENANT_ITPM"),
		TenantOutputTokens: e.int("LAMBDAGENT_TENANT_OTPM"),
		MaxWait:            e.dur("LAMBDAGENT_RATE_MAX_WAIT"),
		OutputEstimate:     e.int("LAMBDAGENT_OUTPUT_ESTIMATE"),
		SlowBelow:          e.float("LAMBDAGENT_SLOW_BELOW"),
		MaxTurns:           int(e.int("LAMBDAGENT_MAX_TURNS")),
		MaxTurnsPerTenant:  int(e.int("LAMBDAGENT_MAX_TURNS_PER_TENANT")),
		SessionBudget:      Budget{TokensPerDay: e.int("LAMBDAGENT_SESSION_BUDGET_TOKENS"), USDPerDay: e.float("LAMBDAGENT_SESSION_BUDGET_USD")},
		TenantBudget:       Budget{TokensPerDay: e.int("LAMBDAGENT_TENANT_BUDGET_TOKENS"), USDPerDay: e.float("LAMBDAGENT_TENANT_BUDGET_USD")},
		UsageTTL:           e.dur("LAMBDAGENT_USAGE_TTL"),
	}
	o.AdminToken = e.str("LAMBDAGENT_ADMIN_TOKEN")

	metrics := "prometheus"
	if getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		metrics = "emf"
	}
	o.Metrics = e.oneOf("LAMBDAGENT_METRICS", "emf", "prometheus", "both", "off")
	if o.Metrics == "" {
		o.Metrics = metrics
	}
	o.TenantMetrics = e.oneOf("LAMBDAGENT_TENANT_METRICS", "true", "false") == "true"
	o.FunctionName = e.str("AWS_LAMBDA_FUNCTION_NAME")
	tracing, err := telemetry.TracingFromEnv(getenv)
	if err != nil {
		e.fail(err)
	}
	o.Tracing = tracing
	o.DeadlineMargin = e.dur("LAMBDAGENT_DEADLINE_MARGIN")
	o.DLQURL = e.str("LAMBDAGENT_DLQ_URL")
	o.FunctionURLStreaming = e.oneOf("LAMBDAGENT_FUNCTION_URL_STREAMING", "true", "false") == "true"
	o.StreamThinking = e.oneOf("LAMBDAGENT_STREAM_THINKING", "true", "false") == "true"
	o.WorkflowQueueURL = e.str("LAMBDAGENT_WORKFLOW_QUEUE_URL")
	if e.err != nil {
		return Options{}, e.err
	}
	// Check what only the whole can tell (a bad lease, a budget without a
	// price) now, so a bad deployment stops at start naming the variable.
	if _, err := o.resolve(); err != nil {
		return Options{}, err
	}
	return o, nil
}

// env reads variables, remembering the first bad one. An unset or blank
// variable reads as the zero value, which Options takes as its default.
type env struct {
	get func(string) string
	err error
}

func (e *env) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *env) str(name string) string { return strings.TrimSpace(e.get(name)) }

func (e *env) dur(name string) time.Duration {
	v := e.str(name)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err == nil && d < 0 {
		err = fmt.Errorf("negative")
	}
	if err != nil {
		e.fail(fmt.Errorf("%s=%q: want a duration such as 30s or 5m: %v", name, v, err))
	}
	return d
}

func (e *env) int(name string) int64 {
	v := e.str(name)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		e.fail(fmt.Errorf("%s=%q: want a non-negative whole number", name, v))
	}
	return n
}

func (e *env) float(name string) float64 {
	v := e.str(name)
	if v == "" {
		return 0
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		e.fail(fmt.Errorf("%s=%q: want a number", name, v))
	}
	return f
}

// list reads a comma-separated variable; blank items are dropped.
func (e *env) list(name string) []string {
	var out []string
	for _, v := range strings.Split(e.str(name), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// oneOf reads a variable that must be one of allowed; unset reads as "".
func (e *env) oneOf(name string, allowed ...string) string {
	v := e.str(name)
	if v == "" {
		return ""
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.fail(fmt.Errorf("%s=%q: want one of %s", name, v, strings.Join(allowed, ", ")))
	return v
}

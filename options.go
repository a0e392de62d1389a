package lambdagent

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/pricing"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
)

// Defaults of a zero [Options] field.
const (
	DefaultModel       = agent.DefaultModel
	DefaultMaxTokens   = agent.DefaultMaxTokens
	DefaultRedisPrefix = "lambdagent:"
	DefaultDBPath      = "lambdagent.db"
	// DefaultWorkflowWorkers is the background workers of a zero
	// Options.WorkflowWorkers.
	DefaultWorkflowWorkers = 4
	DefaultSessionTTL      = 7 * 24 * time.Hour
	DefaultIdempotencyTTL  = 24 * time.Hour
	DefaultMaxBodyBytes    = 1 << 20
	// DefaultRedisWaitTimeout bounds a commit's WAIT for its replicas.
	DefaultRedisWaitTimeout = 500 * time.Millisecond
	// DefaultShutdownGrace is how long Serve lets turns finish on SIGTERM.
	DefaultShutdownGrace = 10 * time.Second
)

// Options configures a [Runtime]. A zero field means its default; every
// field matches one environment variable of the lambdagent binary, named
// in its comment (see [OptionsFromEnv] and the README).
type Options struct {
	// APIKey is the Claude API key (ANTHROPIC_API_KEY). Required.
	APIKey string
	// BaseURL points the Claude client elsewhere, such as at a simulator
	// (ANTHROPIC_BASE_URL). Empty means the API's.
	BaseURL string
	// Model is the model of every request (LAMBDAGENT_MODEL). Zero means
	// DefaultModel.
	Model string
	// MaxTokens caps each reply (LAMBDAGENT_MAX_TOKENS). Zero means
	// DefaultMaxTokens.
	MaxTokens int
	// System is the system prompt (LAMBDAGENT_SYSTEM_PROMPT).
	System string
	// DropBoundThinking asks the API to drop, instead of rejecting with a
	// 400, a thinking block bound to a system prompt or tool list that
	// has since changed (thinking.block_binding.prefix_mismatch_behavior
	// "drop_block", with its beta header), to recover sessions broken
	// before they were pinned (LAMBDAGENT_DROP_BOUND_THINKING=true; see
	// #14). Each dropped block is logged and counted in
	// lambdagent_input_transformations_total. Off by default.
	DropBoundThinking bool
	// PromptCache is the prompt-cache lifetime: "5m", "1h" or "off"
	// (LAMBDAGENT_PROMPT_CACHE). Zero means "5m".
	PromptCache string
	// History is the history strategy of new sessions: "full",
	// "compact", "clear_tool_uses" or "window" (LAMBDAGENT_HISTORY); a
	// turn may name another for a new session ("history" in its body).
	// Zero means "full". See the README's "History strategies".
	History string
	// HistoryWindowTurns is how many turns "window" sends at most
	// (LAMBDAGENT_HISTORY_WINDOW_TURNS). Zero means
	// agent.DefaultHistoryWindowTurns.
	HistoryWindowTurns int
	// HistoryTriggerTokens is the prompt size, in tokens, past which the
	// API compacts ("compact") or clears old tool results
	// ("clear_tool_uses") (LAMBDAGENT_HISTORY_TRIGGER_TOKENS). Zero means
	// the API's defaults, 150,000 and 100,000.
	HistoryTriggerTokens int
	// CompactInstructions are added to the API's summarising prompt under
	// "compact" (LAMBDAGENT_COMPACT_INSTRUCTIONS).
	CompactInstructions string
	// Prices overrides list prices, as JSON in USD per million tokens
	// (LAMBDAGENT_PRICES), e.g.
	// {"claude-sonnet-5-5":{"input":2,"output":10}}. Empty means list
	// prices.
	Prices string

	// RedisURL names the Redis store, redis:// or rediss:// (REDIS_URL).
	// Empty means the embedded file store at DBPath, for one process.
	RedisURL string
	// RedisPrefix starts every Redis key (LAMBDAGENT_REDIS_PREFIX). Zero
	// means DefaultRedisPrefix.
	RedisPrefix string
	// DBPath is the embedded store's file (LAMBDAGENT_DB). Zero means
	// DefaultDBPath.
	DBPath string
	// SessionTTL forgets a session untouched this long
	// (LAMBDAGENT_SESSION_TTL). Zero means DefaultSessionTTL.
	SessionTTL time.Duration
	// IdempotencyTTL keeps stored answers for repeats this long
	// (LAMBDAGENT_IDEMPOTENCY_TTL). Zero means DefaultIdempotencyTTL.
	IdempotencyTTL time.Duration
	// RedisCA is the PEM of the CA that signs Redis's TLS certificate, or
	// the path of a file holding it (LAMBDAGENT_REDIS_CA): a value that
	// contains "-----BEGIN" is PEM. Empty means the system's roots. Only
	// with a rediss:// RedisURL.
	RedisCA string
	// RedisWaitReplicas makes every commit wait, with Redis's WAIT, until
	// this many replicas have it before the turn is answered
	// (LAMBDAGENT_REDIS_WAIT_REPLICAS), so that a failover cannot lose an
	// acknowledged turn. Zero means no wait. See the README's Scale-out.
	RedisWaitReplicas int
	// RedisWaitTimeout bounds that wait (LAMBDAGENT_REDIS_WAIT_TIMEOUT); a
	// commit not replicated in time answers 503. Zero means
	// DefaultRedisWaitTimeout.
	RedisWaitTimeout time.Duration

	// BusyPolicy says what a turn does while another turn of its session
	// runs: "queue" (wait, then run) or "reject" (409)
	// (LAMBDAGENT_BUSY_POLICY). Zero means "queue".
	BusyPolicy string
	// QueueWait bounds the wait under "queue" (LAMBDAGENT_QUEUE_WAIT).
	QueueWait time.Duration
	// LeaseTTL is the session lease (LAMBDAGENT_LEASE_TTL): a crashed
	// process blocks its sessions at most this long. At least 300ms.
	LeaseTTL time.Duration
	// TurnTimeout bounds a turn once it runs (LAMBDAGENT_TURN_TIMEOUT).
	TurnTimeout time.Duration
	// MaxModelCalls bounds the model calls of one turn
	// (LAMBDAGENT_MAX_MODEL_CALLS).
	MaxModelCalls int

	// Workflows is a workflow definition file, or a directory of them
	// (LAMBDAGENT_WORKFLOWS): YAML or JSON, checked at startup (see the
	// README's Workflows section). Runs are kept in Redis with RedisURL,
	// else in a file next to DBPath. Empty serves no workflows.
	Workflows string
	// WorkflowWorkers is how many runs Serve advances at once in the
	// background (LAMBDAGENT_WORKFLOW_WORKERS). Zero means
	// DefaultWorkflowWorkers.
	WorkflowWorkers int

	// MCPConfig lists MCP servers, as a file path or the JSON itself, in
	// Claude Desktop's "mcpServers" form (LAMBDAGENT_MCP_CONFIG).
	MCPConfig string
	// Servers are in-process MCP servers with the program's own Go tools,
	// by name; the name prefixes a tool's name only when another server
	// has a tool of the same name, as for a configured server. The runtime connects to each over the SDK's
	// in-memory transport when it is built.
	Servers map[string]*mcp.Server

	// MaxBodyBytes limits a request body, /mcp's included
	// (LAMBDAGENT_MAX_BODY_BYTES). Zero means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ReadTimeout bounds reading a whole request, body included
	// (LAMBDAGENT_READ_TIMEOUT). Zero means 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from its headers to the end of its
	// answer, so it must outlast a turn (LAMBDAGENT_WRITE_TIMEOUT). Zero
	// means TurnTimeout + QueueWait (or their defaults) + 1m.
	WriteTimeout time.Duration
	// ShutdownGrace is how long Serve lets turns in flight finish after
	// its context ends (SIGTERM) before it cancels them; a cancelled turn
	// releases its lease and writes nothing (LAMBDAGENT_SHUTDOWN_GRACE).
	// Zero means DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// IdleTimeout bounds an idle keep-alive connection
	// (LAMBDAGENT_IDLE_TIMEOUT). Zero means 60s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers (LAMBDAGENT_MAX_HEADER_BYTES).
	// Zero means 64 KiB.
	MaxHeaderBytes int
	// AllowedHosts are Host names accepted on a loopback listener besides
	// localhost and loopback addresses, such as the public name a reverse
	// proxy on the same machine passes on (LAMBDAGENT_ALLOWED_HOSTS,
	// comma-separated). Other Hosts get 403 there (DNS rebinding).
	AllowedHosts []string
	// MaxMessageBytes caps a turn's message (LAMBDAGENT_MAX_MESSAGE_BYTES):
	// 413 beyond. Zero means agent.DefaultMaxMessageBytes.
	MaxMessageBytes int
	// MaxSessionBytes caps a session's stored history
	// (LAMBDAGENT_MAX_SESSION_BYTES): a turn that would pass it is refused
	// (413 session_too_large). Zero means agent.DefaultMaxSessionBytes.
	MaxSessionBytes int
	// MaxToolResultBytes caps a tool result (LAMBDAGENT_MAX_TOOL_RESULT_BYTES):
	// a larger one is cut, with a note to Claude, before it is saved or
	// sent. Zero means agent.DefaultMaxToolResultBytes.
	MaxToolResultBytes int
	// TenantHeader names the request header that names a turn's tenant
	// (LAMBDAGENT_TENANT_HEADER), for a deployment whose gateway
	// authenticates callers. Only with Auth "none": with any other mode the
	// tenant comes from the credential and New refuses the header. Empty
	// means one tenant.
	TenantHeader string

	// Auth says how data-plane requests (POST /agent, /v1/sessions/…,
	// /mcp) are authenticated (LAMBDAGENT_AUTH): "key" (API keys,
	// Authorization: Bearer lga_…), "jwt" (JWTs checked against JWT's
	// JWKS), "apigw" (on Lambda, API Gateway's authorizer context) or
	// "none" (nobody; every request is DefaultTenant's, or TenantHeader's,
	// and a warning is logged at every start). Zero means "key", and New
	// fails when there is no key at all: see the README, "Authentication
	// and tenants".
	Auth string
	// APIKeysFile holds API keys as hashes, one JSON line per key, for a
	// deployment without a writable store (LAMBDAGENT_API_KEYS): a file
	// path, or the lines themselves when it starts with '{'. `lambdagent
	// keys create -file` prints a key's line. Keys in the store work too.
	APIKeysFile string
	// JWT configures Auth "jwt".
	JWT JWT
	// DefaultTenant is the tenant of SQS, EventBridge and direct Lambda
	// invocations that name none in a "tenant" field
	// (LAMBDAGENT_DEFAULT_TENANT). Zero means "default", the tenant of
	// data written before tenants existed.
	DefaultTenant string
	// OpsAuth puts /metrics and /readyz behind AdminToken when "admin"
	// (LAMBDAGENT_OPS_AUTH). Zero means "open": they answer anyone, as
	// load balancers and Prometheus scrapers expect; keep them off the
	// internet some other way then.
	OpsAuth string

	// Limits are rate limits, concurrency limits and daily budgets, shared
	// by every instance through Redis.
	Limits Limits
	// AdminToken is the bearer token of the admin API (kill switch, usage)
	// (LAMBDAGENT_ADMIN_TOKEN). Empty means no admin API.
	AdminToken string

	// Logger receives the runtime's logs. Nil means slog.Default().
	Logger *slog.Logger
	// Metrics is "prometheus" (GET /metrics), "emf" (CloudWatch Embedded
	// Metric Format on EMFWriter), "both" or "off" (LAMBDAGENT_METRICS).
	// Zero means "prometheus".
	Metrics string
	// EMFWriter receives EMF records. Nil means os.Stdout, where Lambda's
	// logs read them.
	EMFWriter io.Writer
	// TenantMetrics adds a tenant label to metrics
	// (LAMBDAGENT_TENANT_METRICS).
	TenantMetrics bool
	// Tracing exports OpenTelemetry traces over OTLP/HTTP, configured by
	// the standard OTEL_* variables.
	Tracing bool
	// FunctionName is the EMF Function dimension (AWS_LAMBDA_FUNCTION_NAME).
	FunctionName string

	// DeadlineMargin, on Lambda, stops a turn this long before the
	// invocation's deadline (LAMBDAGENT_DEADLINE_MARGIN). Zero means 500ms.
	DeadlineMargin time.Duration
	// DLQURL, on Lambda, is the SQS queue a poison SQS record (one that can
	// never succeed) is sent to with its error, before it is deleted from
	// its queue (LAMBDAGENT_DLQ_URL). Empty means none: such a record is
	// redelivered until the queue's redrive policy moves it.
	DLQURL string
	// FunctionURLStreaming, on Lambda, answers Function URL requests as
	// response streams (LAMBDAGENT_FUNCTION_URL_STREAMING): streamed turns
	// reach the client as they run. Set it exactly when the Function
	// URL's InvokeMode is RESPONSE_STREAM; a BUFFERED URL cannot read a
	// streamed answer, and the event does not say which mode it has.
	FunctionURLStreaming bool

	// StreamThinking sends Claude's thinking to streaming clients as
	// "thinking" events (LAMBDAGENT_STREAM_THINKING). Off by default: a
	// deployment decides whether its users see it.
	StreamThinking bool

	// WorkflowQueueURL, on Lambda, is the function's own SQS queue: a
	// workflow run the invocation's deadline cut, or one sleeping under
	// 15 minutes, is handed on to it (LAMBDAGENT_WORKFLOW_QUEUE_URL).
	// Empty means such runs wait for the scheduled timers event.
	WorkflowQueueURL string
}

// JWT says which JWTs Auth "jwt" accepts: signed (RS256 or ES256) by a
// key of JWKSURL, from Issuer, for Audience. All three are required.
type JWT struct {
	// JWKSURL is where the IdP publishes its keys, https
	// (LAMBDAGENT_JWT_JWKS_URL).
	JWKSURL string
	// Issuer must equal the token's iss (LAMBDAGENT_JWT_ISSUER).
	Issuer string
	// Audience must be in the token's aud, or be its client_id
	// (LAMBDAGENT_JWT_AUDIENCE).
	Audience string
	// TenantClaim names the claim holding the tenant
	// (LAMBDAGENT_JWT_TENANT_CLAIM). Zero means "tenant". In mode apigw it
	// names the authorizer context field instead.
	TenantClaim string
}

// Limits are the limits and budgets of a [Runtime]. They keep their state
// in Redis, so they need Options.RedisURL. Zero means off, field by field.
type Limits struct {
	// Window is the span rate limits count over (LAMBDAGENT_RATE_WINDOW).
	// Zero means a minute.
	Window time.Duration
	// Requests, InputTokens and OutputTokens per window per model, all
	// tenants together (LAMBDAGENT_RPM, _ITPM, _OTPM).
	Requests, InputTokens, OutputTokens int64
	// TenantRequests, TenantInputTokens and TenantOutputTokens per window
	// per tenant (LAMBDAGENT_TENANT_RPM, _ITPM, _OTPM).
	TenantRequests, TenantInputTokens, TenantOutputTokens int64
	// MaxWait bounds the wait for room under a limit
	// (LAMBDAGENT_RATE_MAX_WAIT). Zero means a minute.
	MaxWait time.Duration
	// OutputEstimate is the output tokens reserved per call
	// (LAMBDAGENT_OUTPUT_ESTIMATE). Zero means max_tokens.
	OutputEstimate int64
	// SlowBelow holds every instance back when the API's remaining limit
	// falls below this fraction (LAMBDAGENT_SLOW_BELOW). Zero means 0.1;
	// negative turns it off.
	SlowBelow float64
	// MaxTurns and MaxTurnsPerTenant cap turns in flight across all
	// instances (LAMBDAGENT_MAX_TURNS, _PER_TENANT).
	MaxTurns, MaxTurnsPerTenant int
	// SessionBudget and TenantBudget cap daily spend, in UTC days.
	SessionBudget, TenantBudget Budget
	// UsageTTL keeps daily usage sums this long (LAMBDAGENT_USAGE_TTL).
	// Zero means 35 days.
	UsageTTL time.Duration
}

// Budget is a daily ceiling. Zero means none.
type Budget struct {
	TokensPerDay int64
	USDPerDay    float64
}

// set reports whether any limit or budget is asked for.
func (l Limits) set() bool {
	return l.Requests > 0 || l.InputTokens > 0 || l.OutputTokens > 0 ||
		l.TenantRequests > 0 || l.TenantInputTokens > 0 || l.TenantOutputTokens > 0 ||
		l.MaxTurns > 0 || l.MaxTurnsPerTenant > 0 ||
		l.SessionBudget != (Budget{}) || l.TenantBudget != (Budget{})
}

// resolved is Options with defaults applied and turned into the internal
// packages' configurations, once.
type resolved struct {
	Options
	authMode auth.Method
	jwt      auth.JWTConfig
	agent    agent.Config
	limits   ratelimit.Config
	prices   pricing.Table
}

// resolve applies defaults and validates o. Its errors name the field and
// its environment variable, and never hold a secret.
func (o Options) resolve() (resolved, error) {
	r := resolved{Options: o}
	if r.Model == "" {
		r.Model = DefaultModel
	}
	if r.MaxTokens == 0 {
		r.MaxTokens = DefaultMaxTokens
	}
	if r.RedisPrefix == "" {
		r.RedisPrefix = DefaultRedisPrefix
	}
	if r.DBPath == "" {
		r.DBPath = DefaultDBPath
	}
	if r.WorkflowWorkers == 0 {
		r.WorkflowWorkers = DefaultWorkflowWorkers
	}
	if r.WorkflowWorkers < 0 {
		return r, errors.New("option WorkflowWorkers (LAMBDAGENT_WORKFLOW_WORKERS): must not be negative")
	}
	if r.SessionTTL == 0 {
		r.SessionTTL = DefaultSessionTTL
	}
	if r.IdempotencyTTL == 0 {
		r.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if r.MaxBodyBytes == 0 {
		r.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if r.RedisWaitTimeout == 0 {
		r.RedisWaitTimeout = DefaultRedisWaitTimeout
	}
	if r.ShutdownGrace == 0 {
		r.ShutdownGrace = DefaultShutdownGrace
	}
	if r.Metrics == "" {
		r.Metrics = "prometheus"
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	if r.Auth == "" {
		r.Auth = string(auth.MethodKey)
	}
	if r.DefaultTenant == "" {
		r.DefaultTenant = auth.DefaultTenant
	}
	if r.OpsAuth == "" {
		r.OpsAuth = "open"
	}
	if err := r.resolveAuth(); err != nil {
		return r, err
	}
	switch {
	case r.RedisWaitReplicas < 0:
		return r, fmt.Errorf("RedisWaitReplicas (LAMBDAGENT_REDIS_WAIT_REPLICAS) = %d: want ≥ 0", r.RedisWaitReplicas)
	case r.RedisWaitTimeout < 0:
		return r, fmt.Errorf("RedisWaitTimeout (LAMBDAGENT_REDIS_WAIT_TIMEOUT) = %v: want > 0", r.RedisWaitTimeout)
	case r.ShutdownGrace < 0:
		return r, fmt.Errorf("ShutdownGrace (LAMBDAGENT_SHUTDOWN_GRACE) = %v: want > 0", r.ShutdownGrace)
	case (r.RedisCA != "" || r.RedisWaitReplicas > 0) && r.RedisURL == "":
		return r, errors.New("RedisCA and RedisWaitReplicas (LAMBDAGENT_REDIS_CA, _WAIT_REPLICAS) are for Redis: set RedisURL (REDIS_URL)")
	case r.MaxTokens < 0:
		return r, fmt.Errorf("MaxTokens (LAMBDAGENT_MAX_TOKENS) = %d: want > 0", r.MaxTokens)
	case r.MaxBodyBytes < 0:
		return r, fmt.Errorf("MaxBodyBytes (LAMBDAGENT_MAX_BODY_BYTES) = %d: want > 0", r.MaxBodyBytes)
	case r.MaxHeaderBytes < 0:
		return r, fmt.Errorf("MaxHeaderBytes (LAMBDAGENT_MAX_HEADER_BYTES) = %d: want > 0", r.MaxHeaderBytes)
	case r.MaxMessageBytes < 0:
		return r, fmt.Errorf("MaxMessageBytes (LAMBDAGENT_MAX_MESSAGE_BYTES) = %d: want > 0", r.MaxMessageBytes)
	case r.MaxSessionBytes < 0:
		return r, fmt.Errorf("MaxSessionBytes (LAMBDAGENT_MAX_SESSION_BYTES) = %d: want > 0", r.MaxSessionBytes)
	case r.MaxToolResultBytes < 0:
		return r, fmt.Errorf("MaxToolResultBytes (LAMBDAGENT_MAX_TOOL_RESULT_BYTES) = %d: want > 0", r.MaxToolResultBytes)
	case r.HistoryWindowTurns < 0:
		return r, fmt.Errorf("HistoryWindowTurns (LAMBDAGENT_HISTORY_WINDOW_TURNS) = %d: want > 0", r.HistoryWindowTurns)
	case r.HistoryTriggerTokens < 0:
		return r, fmt.Errorf("HistoryTriggerTokens (LAMBDAGENT_HISTORY_TRIGGER_TOKENS) = %d: want > 0", r.HistoryTriggerTokens)
	case r.MaxToolResultBytes > 0 && r.MaxToolResultBytes < agent.MinMaxToolResultBytes:
		return r, fmt.Errorf("MaxToolResultBytes (LAMBDAGENT_MAX_TOOL_RESULT_BYTES) = %d: want at least %d, room for the note on a cut result", r.MaxToolResultBytes, agent.MinMaxToolResultBytes)
	case r.LeaseTTL != 0 && r.LeaseTTL < 300*time.Millisecond:
		return r, fmt.Errorf("LeaseTTL (LAMBDAGENT_LEASE_TTL) = %v: want at least 300ms", r.LeaseTTL)
	case r.Limits.SlowBelow >= 1:
		return r, fmt.Errorf("Limits.SlowBelow (LAMBDAGENT_SLOW_BELOW) = %v: want a fraction below 1 (negative: off)", r.Limits.SlowBelow)
	case r.Limits.SessionBudget.USDPerDay < 0:
		return r, fmt.Errorf("Limits.SessionBudget.USDPerDay (LAMBDAGENT_SESSION_BUDGET_USD) = %v: want ≥ 0", r.Limits.SessionBudget.USDPerDay)
	case r.Limits.TenantBudget.USDPerDay < 0:
		return r, fmt.Errorf("Limits.TenantBudget.USDPerDay (LAMBDAGENT_TENANT_BUDGET_USD) = %v: want ≥ 0", r.Limits.TenantBudget.USDPerDay)
	case r.Limits.Window > 0 && r.Limits.Window < time.Second:
		return r, fmt.Errorf("Limits.Window (LAMBDAGENT_RATE_WINDOW) = %v: want at least 1s", r.Limits.Window)
	}
	switch r.Metrics {
	case "prometheus", "emf", "both", "off":
	default:
		return r, fmt.Errorf("option Metrics (LAMBDAGENT_METRICS) = %q: want prometheus, emf, both or off", r.Metrics)
	}
	for name, s := range r.Servers {
		if s == nil {
			return r, fmt.Errorf("option Servers[%q] is nil", name)
		}
	}
	var err error
	if r.prices, err = pricing.Parse(r.Prices); err != nil {
		return r, fmt.Errorf("option Prices (LAMBDAGENT_PRICES): %w", err)
	}
	if _, ok := r.prices.Lookup(r.Model); !ok && (r.Limits.SessionBudget.USDPerDay > 0 || r.Limits.TenantBudget.USDPerDay > 0) {
		return r, fmt.Errorf("option Model (LAMBDAGENT_MODEL) = %q has no price, so USD budgets cannot work: add it to Prices (LAMBDAGENT_PRICES)", r.Model)
	}
	r.agent = agent.Config{
		Model:         r.Model,
		MaxTokens:     r.MaxTokens,
		System:        r.System,
		Busy:          agent.BusyPolicy(r.BusyPolicy),
		QueueWait:     r.QueueWait,
		LeaseTTL:      r.LeaseTTL,
		MaxModelCalls: r.MaxModelCalls,
		TurnTimeout:   r.TurnTimeout,
		PromptCache:   r.PromptCache,

		MaxMessageBytes:    r.MaxMessageBytes,
		MaxSessionBytes:    r.MaxSessionBytes,
		MaxToolResultBytes: r.MaxToolResultBytes,

		History:              agent.History(r.History),
		HistoryWindowTurns:   r.HistoryWindowTurns,
		HistoryTriggerTokens: r.HistoryTriggerTokens,
		CompactInstructions:  r.CompactInstructions,
		DropBoundThinking:    r.DropBoundThinking,
	}
	if _, err := agent.ParseHistory(r.History); err != nil {
		return r, fmt.Errorf("option History (LAMBDAGENT_HISTORY) = %.32q: want full, compact, clear_tool_uses or window", r.History)
	}
	if r.WriteTimeout == 0 {
		// Long enough for a turn: net/http counts it from the request's
		// headers, and a turn runs in the handler (see internal/httpserver).
		r.WriteTimeout = or(r.TurnTimeout, agent.DefaultTurnTimeout) + or(r.QueueWait, agent.DefaultQueueWait) + time.Minute
	}
	l := r.Limits
	r.limits = ratelimit.Config{
		Prefix:            r.RedisPrefix, // limiter keys go on with "rl:{rl}:"
		Logger:            r.Logger,
		Window:            l.Window,
		Model:             ratelimit.Limits{Requests: l.Requests, InputTokens: l.InputTokens, OutputTokens: l.OutputTokens},
		Tenant:            ratelimit.Limits{Requests: l.TenantRequests, InputTokens: l.TenantInputTokens, OutputTokens: l.TenantOutputTokens},
		MaxWait:           l.MaxWait,
		OutputEstimate:    l.OutputEstimate,
		SlowBelow:         l.SlowBelow,
		MaxTurns:          l.MaxTurns,
		MaxTurnsPerTenant: l.MaxTurnsPerTenant,
		SessionBudget:     ratelimit.Budget{TokensPerDay: l.SessionBudget.TokensPerDay, USDPerDay: l.SessionBudget.USDPerDay},
		TenantBudget:      ratelimit.Budget{TokensPerDay: l.TenantBudget.TokensPerDay, USDPerDay: l.TenantBudget.USDPerDay},
		UsageTTL:          l.UsageTTL,
	}
	return r, nil
}

// resolveAuth checks the authentication settings that do not need the
// store (New checks that mode key has a key).
func (r *resolved) resolveAuth() error {
	m, err := auth.ParseMode(r.Auth)
	if err != nil {
		return fmt.Errorf("option Auth (LAMBDAGENT_AUTH) = %.32q: want key, jwt, apigw or none", r.Auth)
	}
	r.authMode = m
	if err := auth.ValidTenant(r.DefaultTenant); err != nil {
		return fmt.Errorf("DefaultTenant (LAMBDAGENT_DEFAULT_TENANT): %w", err)
	}
	if r.TenantHeader != "" && m != auth.MethodNone {
		return fmt.Errorf("TenantHeader (LAMBDAGENT_TENANT_HEADER) = %q works only with Auth (LAMBDAGENT_AUTH) none: with %s the tenant comes from the credential, so a client cannot pick another tenant's budget or sessions; unset it", r.TenantHeader, m)
	}
	switch r.OpsAuth {
	case "open":
	case "admin":
		if r.AdminToken == "" {
			return errors.New("OpsAuth (LAMBDAGENT_OPS_AUTH) admin needs AdminToken (LAMBDAGENT_ADMIN_TOKEN)")
		}
	default:
		return fmt.Errorf("OpsAuth (LAMBDAGENT_OPS_AUTH) = %q: want open or admin", r.OpsAuth)
	}
	if m == auth.MethodJWT {
		j := r.JWT
		if j.JWKSURL == "" || j.Issuer == "" || j.Audience == "" {
			return errors.New("option Auth (LAMBDAGENT_AUTH) jwt needs JWT.JWKSURL, JWT.Issuer and JWT.Audience (LAMBDAGENT_JWT_JWKS_URL, LAMBDAGENT_JWT_ISSUER, LAMBDAGENT_JWT_AUDIENCE)")
		}
		r.jwt = auth.JWTConfig{JWKSURL: j.JWKSURL, Issuer: j.Issuer, Audience: j.Audience, TenantClaim: j.TenantClaim}
		if _, err := auth.NewJWTVerifier(r.jwt); err != nil { // checks the URL; no I/O
			return fmt.Errorf("JWT (LAMBDAGENT_JWT_*): %w", err)
		}
	}
	if r.JWT.TenantClaim != "" && m != auth.MethodJWT && m != auth.MethodAPIGateway {
		return fmt.Errorf("JWT.TenantClaim (LAMBDAGENT_JWT_TENANT_CLAIM) is for Auth jwt or apigw, not %s", m)
	}
	return nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

package lambdagent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/httpserver"
	"github.com/lambdagent/lambdagent/internal/mcptools"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redact"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// A Runtime is everything a process builds once and reuses across
// requests: the store's connections, the Claude client, the MCP
// connections, the limits, the telemetry and the HTTP handler. It is safe
// for concurrent use. Build one per process with [New] and Close it at
// exit.
type Runtime struct {
	opts    resolved
	tel     *telemetry.Telemetry
	handler http.Handler
	closers []func() error
}

// New builds a Runtime. It connects to the store and to every MCP server
// (configured and in-process) before it returns; ctx bounds that.
//
// Its errors and everything it logs have the secrets of o (the API key,
// the admin token, the passwords of RedisURL and BaseURL) and of the
// OTEL_EXPORTER_OTLP_* variables cut out, whatever library printed them
// (see #13).
func New(ctx context.Context, o Options) (*Runtime, error) {
	secrets := redact.Env(os.Getenv)
	secrets.Add(o.APIKey, o.AdminToken, o.RedisURL, o.BaseURL)
	opts, err := o.resolve()
	if err != nil {
		return nil, secrets.Error(fmt.Errorf("lambdagent: %w", err))
	}
	opts.Logger = slog.New(redact.Handler(opts.Logger.Handler(), secrets.String))
	r := &Runtime{opts: opts}
	if err := r.build(ctx); err != nil {
		r.Close()
		return nil, secrets.Error(fmt.Errorf("lambdagent: %w", err))
	}
	return r, nil
}

// Handler returns the HTTP API: POST /agent, the /v1/sessions routes,
// /healthz, /readyz, /metrics, /mcp and the admin routes. See the README.
func (r *Runtime) Handler() http.Handler { return r.handler }

// Close releases what New opened: MCP connections, the store, and the
// telemetry exporters (last, so that their final spans are sent).
func (r *Runtime) Close() error {
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i]())
	}
	r.closers = nil
	return errors.Join(errs...)
}

// Serve serves the HTTP API on ln until ctx ends, then lets turns in
// flight finish (and commit) for up to 30 s.
func (r *Runtime) Serve(ctx context.Context, ln net.Listener) error {
	o := r.opts
	return httpserver.Serve(ctx, ln, r.handler, httpserver.Config{
		Logger:       o.Logger,
		ReadTimeout:  o.ReadTimeout,
		WriteTimeout: o.WriteTimeout,
		IdleTimeout:  o.IdleTimeout,
		// MaxHeaderBytes bounds every header a handler or a log sees (a
		// tenant or a session id in a path among them).
		MaxHeaderBytes: o.MaxHeaderBytes,
		AllowedHosts:   o.AllowedHosts,
	})
}

func (r *Runtime) build(ctx context.Context) error {
	o := r.opts
	log := o.Logger
	if o.APIKey == "" {
		return errors.New("no Claude API key: set Options.APIKey (ANTHROPIC_API_KEY)")
	}
	client, err := claude.New(claude.Config{APIKey: o.APIKey, BaseURL: o.BaseURL, Prices: o.prices})
	if err != nil {
		return err
	}
	if r.tel, err = r.newTelemetry(); err != nil {
		return err
	}
	r.closers = append(r.closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return r.tel.Shutdown(ctx) // exports the spans still queued
	})
	st, rdb, closeStore, err := openStore(o)
	if err != nil {
		return err
	}
	r.closers = append(r.closers, closeStore)
	// Before the MCP servers: a deployment that cannot authenticate
	// anyone stops here, quickly.
	authn, err := newAuthenticator(ctx, o, st)
	if err != nil {
		return err
	}
	tools, err := openTools(ctx, o, st)
	if err != nil {
		return err
	}
	var agentTools agent.Tools
	if tools != nil {
		r.closers = append(r.closers, tools.Close)
		agentTools = telemetry.WrapTools(tools, r.tel)
	}
	var model agent.Model = client
	var lim *ratelimit.Limiter
	// The limiter costs two Redis round trips per model call (reserve and
	// settle), so it runs only when something asks for it: a limit, a
	// budget or the admin API (kill switch, usage). Otherwise a turn stays
	// at the store's two round trips (see #4).
	limits := o.Limits.set() || o.AdminToken != ""
	switch {
	case limits && rdb == nil:
		return errors.New("options Limits and AdminToken (LAMBDAGENT_RPM/ITPM/…/BUDGET/ADMIN_TOKEN) keep their state in Redis: set RedisURL (REDIS_URL)")
	case limits:
		if lim, err = ratelimit.New(rdb, o.limits); err != nil {
			return err
		}
		model = ratelimit.WrapModel(client, lim)
	}
	observed := telemetry.WrapStore(st, r.tel)
	ag, err := agent.New(observed, telemetry.WrapModel(model, r.tel), agentTools, o.agent)
	if err != nil {
		return err
	}
	var turns httpapi.Turner = ag
	if lim != nil {
		turns = ratelimit.WrapTurner(turns, lim)
	}
	turns = telemetry.WrapTurner(turns, r.tel)
	// The agent itself, as an MCP tool (ask_agent) for other MCP hosts.
	// /mcp is authenticated like /agent, and the caller's principal
	// reaches the tool through the request's context: its turns are its
	// tenant's.
	ask := func(ctx context.Context, sessionID, message string) (string, error) {
		p, ok := auth.PrincipalFrom(ctx)
		if !ok {
			return "", errors.New("ask_agent: no principal in the request context") // a wiring bug: refuse rather than guess a tenant
		}
		tenant := p.Tenant
		if tenant == auth.DefaultTenant {
			tenant = "" // as the HTTP API does: the default tenant is the empty one
		}
		ans, err := turns.Run(ctx, agent.Request{SessionID: sessionID, Message: message, Tenant: tenant})
		if err != nil {
			return "", err
		}
		return ans.Result.Response, nil
	}
	modelURL := o.BaseURL
	if modelURL == "" {
		modelURL = "https://api.anthropic.com"
	}
	extra := map[string]http.Handler{ // the data plane: authenticated
		"/mcp": mcptools.NewAgentHandler(ask, mcptools.AgentHandlerOptions{Name: "lambdagent", Logger: log, MaxBodyBytes: o.MaxBodyBytes}),
	}
	public := map[string]http.Handler{ // open, or with a token of their own
		"/metrics": r.tel.MetricsHandler(),
		"/readyz": r.tel.ReadyHandler(map[string]telemetry.Pinger{
			"store": telemetry.StorePinger(st), // the raw store: probes stay out of the metrics
			"model": telemetry.HTTPPinger(modelURL, nil),
		}, 0),
	}
	if o.OpsAuth == "admin" {
		for path, h := range public {
			public[path] = httpapi.RequireToken(o.AdminToken, h)
		}
	}
	if lim != nil {
		adm := lim.Admin(o.AdminToken, log)
		public[ratelimit.AdminPath] = adm
		public[ratelimit.UsagePath] = adm
	}
	cfg := httpapi.Config{MaxBodyBytes: o.MaxBodyBytes, Logger: log,
		Auth: authn, Extra: extra, Public: public, TenantHeader: o.TenantHeader, AdminToken: o.AdminToken}
	// The read endpoints of #18 read the bare store: they are no turn's.
	if cat, ok := st.(session.Catalog); ok {
		cfg.Catalog = cat
	}
	if tools != nil {
		cfg.Tools = tools.status
	}
	h, err := httpapi.New(turns, observed, cfg)
	if err != nil {
		return err
	}
	r.handler = r.tel.Middleware(h)
	return nil
}

// newTelemetry builds the process's observability (see #9): a log line per
// turn always; metrics as EMF records and/or at GET /metrics; traces when
// asked for.
func (r *Runtime) newTelemetry() (*telemetry.Telemetry, error) {
	o := r.opts
	emf := o.EMFWriter
	if o.Metrics != "emf" && o.Metrics != "both" {
		emf = nil
	} else if emf == nil {
		emf = os.Stdout // Lambda sends stdout to CloudWatch Logs, which reads EMF
	}
	return telemetry.New(telemetry.Config{
		Logger: o.Logger, EMF: emf, Prometheus: o.Metrics == "prometheus" || o.Metrics == "both",
		Function: o.FunctionName, Model: o.Model, TenantLabel: o.TenantMetrics,
		Tracing: o.Tracing, WithTraceparent: mcptools.WithTraceparent,
	})
}

// openStore opens Redis when RedisURL is set, else the embedded file.
// With Redis it also returns the client, which the rate limiter shares.
func openStore(o resolved) (session.Store, *redis.Client, func() error, error) {
	if o.RedisURL == "" {
		st, err := filestore.Open(o.DBPath, filestore.Config{TTL: o.SessionTTL, IdempotencyTTL: o.IdempotencyTTL})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open embedded store %s: %w", o.DBPath, err)
		}
		o.Logger.Info("store: embedded file", "path", o.DBPath)
		return st, nil, st.Close, nil
	}
	opt, err := redis.ParseURL(o.RedisURL)
	if err != nil {
		// go-redis quotes the URL (password included) in some of its
		// errors: say what is wrong without it.
		return nil, nil, nil, fmt.Errorf("RedisURL (REDIS_URL) %s does not parse as a Redis URL", redact.URL(o.RedisURL))
	}
	// Fail fast when Redis is down: a turn answers 503 rather than hang.
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 3 * time.Second
	opt.WriteTimeout = 3 * time.Second
	opt.MaxRetries = 1
	opt.DialerRetries = 1
	rdb := redis.NewClient(opt)
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: o.RedisPrefix, TTL: o.SessionTTL, IdempotencyTTL: o.IdempotencyTTL})
	if err != nil {
		rdb.Close()
		return nil, nil, nil, err
	}
	o.Logger.Info("store: redis", "addr", opt.Addr, "tls", opt.TLSConfig != nil, "prefix", o.RedisPrefix)
	return st, rdb, rdb.Close, nil
}

// errNoKeys is New's answer to mode key with no key anywhere: the
// deployment would answer 401 to everyone, so it refuses to start and
// says how to go on (#13).
var errNoKeys = errors.New("option Auth (LAMBDAGENT_AUTH) is key but there is no API key: create one with `lambdagent keys create -tenant NAME`, set LAMBDAGENT_API_KEYS, or set LAMBDAGENT_AUTH=none")

// newAuthenticator builds the authentication of o.Auth. API keys live in
// the session store st (and the static key file); JWKS are fetched on
// first use.
func newAuthenticator(ctx context.Context, o resolved, st session.Store) (*auth.Authenticator, error) {
	cfg := auth.Config{Mode: o.authMode, TenantClaim: o.JWT.TenantClaim}
	switch o.authMode {
	case auth.MethodNone:
		o.Logger.Warn("authentication is off (LAMBDAGENT_AUTH=none): anyone who reaches this server acts for tenant " + auth.DefaultTenant +
			" and spends its Claude key; set LAMBDAGENT_AUTH=key unless a gateway in front authenticates every request")
	case auth.MethodKey:
		static, err := readKeyFile(o.APIKeysFile)
		if err != nil {
			return nil, err
		}
		reg, err := auth.NewRegistry(st, auth.RegistryConfig{Static: static})
		if err != nil {
			return nil, err
		}
		has, err := reg.HasKeys(ctx)
		if err != nil {
			return nil, fmt.Errorf("read API keys from the store: %w", err)
		}
		if !has {
			return nil, errNoKeys
		}
		cfg.Keys = reg
	case auth.MethodJWT:
		v, err := auth.NewJWTVerifier(o.jwt)
		if err != nil {
			return nil, err
		}
		cfg.JWT = v
	}
	return auth.New(cfg)
}

// readKeyFile reads APIKeysFile: the key lines themselves when it starts
// with '{', else a file of them.
func readKeyFile(v string) ([]auth.Key, error) {
	if v == "" {
		return nil, nil
	}
	data := []byte(v)
	if !strings.HasPrefix(strings.TrimSpace(v), "{") {
		var err error
		if data, err = os.ReadFile(v); err != nil {
			return nil, fmt.Errorf("APIKeysFile (LAMBDAGENT_API_KEYS): %w", err)
		}
	}
	keys, err := auth.ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("APIKeysFile (LAMBDAGENT_API_KEYS): %w", err)
	}
	return keys, nil
}

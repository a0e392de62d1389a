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
	"sync"
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
	"github.com/lambdagent/lambdagent/internal/redisconn"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
	"github.com/lambdagent/lambdagent/internal/stream"
	"github.com/lambdagent/lambdagent/internal/telemetry"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
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
	// workflows advances workflow runs; nil without Options.Workflows.
	workflows *engine.Engine
	// detached counts streamed turns whose client left; Close waits for
	// them (up to detachedWait) before closing what they use.
	detached sync.WaitGroup
}

// detachedWait bounds Close's wait for streamed turns whose client left.
const detachedWait = 30 * time.Second

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
	done := make(chan struct{})
	go func() { r.detached.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(detachedWait):
		r.opts.Logger.Warn("close: streamed turns still running; their streams will read as interrupted, and a retry resumes them")
	}
	var errs []error
	for i := len(r.closers) - 1; i >= 0; i-- {
		errs = append(errs, r.closers[i]())
	}
	r.closers = nil
	return errors.Join(errs...)
}

// Serve serves the HTTP API on ln until ctx ends, then stops accepting
// and lets turns in flight finish (and commit) for up to
// Options.ShutdownGrace; it then cancels the rest, which release their
// sessions without writing and answer 503 shutting_down, and returns.
//
// With Options.Workflows it also runs Options.WorkflowWorkers workers
// that advance workflow runs, stopped with the server; a run cut by the
// stop is taken over when its lease expires.
func (r *Runtime) Serve(ctx context.Context, ln net.Listener) error {
	o := r.opts
	wctx, stop := context.WithCancel(ctx)
	wait := r.runWorkflows(wctx)
	defer func() { stop(); wait() }()
	return httpserver.Serve(ctx, ln, r.handler, httpserver.Config{
		Logger:       o.Logger,
		ReadTimeout:  o.ReadTimeout,
		WriteTimeout: o.WriteTimeout,
		IdleTimeout:  o.IdleTimeout,
		// MaxHeaderBytes bounds every header a handler or a log sees (a
		// tenant or a session id in a path among them).
		MaxHeaderBytes:  o.MaxHeaderBytes,
		AllowedHosts:    o.AllowedHosts,
		ShutdownTimeout: o.ShutdownGrace,
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
	st, rdb, closeStore, err := openStore(ctx, o)
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
	ask := func(ctx context.Context, sessionID, message string, progress mcptools.ProgressFunc) (string, error) {
		p, ok := auth.PrincipalFrom(ctx)
		if !ok {
			return "", errors.New("ask_agent: no principal in the request context") // a wiring bug: refuse rather than guess a tenant
		}
		tenant := p.Tenant
		if tenant == auth.DefaultTenant {
			tenant = "" // as the HTTP API does: the default tenant is the empty one
		}
		req := agent.Request{SessionID: sessionID, Message: message, Tenant: tenant}
		if progress != nil {
			req.Sink = progressSink(progress)
		}
		ans, err := turns.Run(ctx, req)
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
	wf, closeWorkflows, err := openWorkflows(o, rdb, agentTools, turns, r.tel)
	if err != nil {
		return err
	}
	if closeWorkflows != nil {
		r.closers = append(r.closers, closeWorkflows)
	}
	r.workflows = wf
	// Streamed turns keep their events beside the sessions (see #15): in
	// Redis for processes that share it, else in this process's memory.
	var streams stream.Log = stream.NewMemory(0)
	if rdb != nil {
		if streams, err = stream.NewRedis(rdb, stream.RedisConfig{Prefix: o.RedisPrefix}); err != nil {
			return err
		}
	}
	hc := httpapi.Config{MaxBodyBytes: o.MaxBodyBytes, Logger: log,
		Auth: authn, Extra: extra, Public: public, TenantHeader: o.TenantHeader, Streams: streams, Detached: &r.detached,
		AdminToken: o.AdminToken, ShowThinking: o.StreamThinking}
	if r.workflows != nil {
		hc.Workflows = r.workflows
	}
	// The read endpoints of #18 read the bare store: they are no turn's.
	if cat, ok := st.(session.Catalog); ok {
		hc.Catalog = cat
	}
	if tools != nil {
		hc.Tools = tools.status
	}
	h, err := httpapi.New(turns, observed, hc)
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
// A Redis that refuses the configuration (TLS verification, password)
// stops the start; one that does not answer yet only logs, and turns
// answer 503 until it does.
func openStore(ctx context.Context, o resolved) (session.Store, redis.UniversalClient, func() error, error) {
	if o.RedisURL == "" {
		st, err := filestore.Open(o.DBPath, filestore.Config{TTL: o.SessionTTL, IdempotencyTTL: o.IdempotencyTTL})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open embedded store %s: %w", o.DBPath, err)
		}
		o.Logger.Info("store: embedded file", "path", o.DBPath)
		return st, nil, st.Close, nil
	}
	rdb, info, err := redisconn.New(redisconn.Config{URL: o.RedisURL, CA: o.RedisCA})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("RedisURL (REDIS_URL): %w", err)
	}
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: o.RedisPrefix, TTL: o.SessionTTL, IdempotencyTTL: o.IdempotencyTTL,
		WaitReplicas: o.RedisWaitReplicas, WaitTimeout: o.RedisWaitTimeout})
	if err != nil {
		rdb.Close()
		return nil, nil, nil, err
	}
	if err := redisconn.Check(ctx, rdb); errors.Is(err, redisconn.ErrConfig) {
		_ = st.Close()
		_ = rdb.Close()
		return nil, nil, nil, err
	} else if err != nil {
		o.Logger.Warn("store: redis does not answer yet; turns answer 503 until it does", "err", err)
	}
	o.Logger.Info("store: redis", "addrs", info.Addrs, "cluster", info.Cluster, "tls", info.TLS, "custom_ca", info.CA,
		"prefix", o.RedisPrefix, "wait_replicas", o.RedisWaitReplicas)
	closeAll := func() error {
		// The store first: it deletes this process's liveness key, so the
		// leases of turns left unfinished are free at once (#17).
		return errors.Join(st.Close(), rdb.Close())
	}
	return st, rdb, closeAll, nil
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

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/mcptools"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// app is everything a process builds once and reuses across requests.
type app struct {
	store   session.Store
	agent   *agent.Agent
	tel     *telemetry.Telemetry
	handler http.Handler
	closers []func() error
}

func (a *app) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	return errors.Join(errs...)
}

// openStore opens Redis when REDIS_URL is set, else the embedded file.
// With Redis it also returns the client, which the rate limiter shares.
func openStore(cfg config, log *slog.Logger) (session.Store, *redis.Client, func() error, error) {
	if cfg.RedisURL == "" {
		st, err := filestore.Open(cfg.DBPath, filestore.Config{TTL: cfg.SessionTTL, IdempotencyTTL: cfg.IdemTTL})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("open embedded store %s: %w", cfg.DBPath, err)
		}
		log.Info("store: embedded file", "path", cfg.DBPath)
		return st, nil, st.Close, nil
	}
	opt, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	// Fail fast when Redis is down: a turn answers 503 rather than hang.
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = 3 * time.Second
	opt.WriteTimeout = 3 * time.Second
	opt.MaxRetries = 1
	opt.DialerRetries = 1
	rdb := redis.NewClient(opt)
	st, err := redisstore.New(rdb, redisstore.Config{Prefix: cfg.RedisPrefix, TTL: cfg.SessionTTL, IdempotencyTTL: cfg.IdemTTL})
	if err != nil {
		rdb.Close()
		return nil, nil, nil, err
	}
	log.Info("store: redis", "addr", opt.Addr, "tls", opt.TLSConfig != nil, "prefix", cfg.RedisPrefix)
	return st, rdb, rdb.Close, nil
}

// newApp builds the store, the Claude client, the MCP connections, the
// limits, the telemetry and the HTTP handler: everything a process builds
// once, in every mode (dev, serve, Lambda).
func newApp(ctx context.Context, cfg config, log *slog.Logger) (*app, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("ANTHROPIC_API_KEY is not set (use `lambdagent dev` to run without a key)")
	}
	client, err := claude.New(claude.Config{APIKey: cfg.APIKey, BaseURL: cfg.BaseURL, Prices: cfg.Prices})
	if err != nil {
		return nil, err
	}
	tel, err := newTelemetry(cfg, log)
	if err != nil {
		return nil, err
	}
	shutdownTel := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return tel.Shutdown(ctx) // exports the spans still queued
	}
	st, rdb, closeStore, err := openStore(cfg, log)
	if err != nil {
		shutdownTel()
		return nil, err
	}
	// Closers run last to first: telemetry is shut down after the rest.
	a := &app{store: st, tel: tel, closers: []func() error{shutdownTel, closeStore}}
	fail := func(err error) (*app, error) {
		a.Close()
		return nil, err
	}
	tools, err := openTools(ctx, cfg, st, log)
	if err != nil {
		return fail(err)
	}
	var agentTools agent.Tools
	if tools != nil {
		a.closers = append(a.closers, tools.Close)
		agentTools = telemetry.WrapTools(tools, tel)
	}
	var model agent.Model = client
	var lim *ratelimit.Limiter
	// The limiter costs two Redis round trips per model call (reserve and
	// settle), so it runs only when something asks for it: a limit, a
	// budget or the admin API (kill switch, usage). Otherwise a turn stays
	// at the store's two round trips (see #4).
	if rdb != nil && cfg.limitsSet() {
		lc := cfg.Limits
		lc.Prefix, lc.Logger = cfg.RedisPrefix, log // limiter keys go on with "rl:{rl}:"
		if lim, err = ratelimit.New(rdb, lc); err != nil {
			return fail(err)
		}
		model = ratelimit.WrapModel(client, lim)
	} else if rdb == nil && cfg.limitsSet() {
		return fail(errors.New("LAMBDAGENT_RPM/ITPM/…/BUDGET/ADMIN_TOKEN: limits, budgets and the kill switch keep their state in Redis: set REDIS_URL"))
	}
	observed := telemetry.WrapStore(st, tel)
	a.agent, err = agent.New(observed, telemetry.WrapModel(model, tel), agentTools, cfg.Agent)
	if err != nil {
		return fail(err)
	}
	var turns httpapi.Turner = a.agent
	if lim != nil {
		turns = ratelimit.WrapTurner(turns, lim)
	}
	turns = telemetry.WrapTurner(turns, tel)
	// The agent itself, as an MCP tool (ask_agent) for other MCP hosts.
	ask := func(ctx context.Context, sessionID, message string) (string, error) {
		ans, err := turns.Run(ctx, agent.Request{SessionID: sessionID, Message: message})
		if err != nil {
			return "", err
		}
		return ans.Result.Response, nil
	}
	modelURL := cfg.BaseURL
	if modelURL == "" {
		modelURL = "https://api.anthropic.com"
	}
	extra := map[string]http.Handler{
		"/mcp":     mcptools.NewAgentHandler(ask, mcptools.AgentHandlerOptions{Name: "lambdagent", Logger: log}),
		"/metrics": tel.MetricsHandler(),
		"/readyz": tel.ReadyHandler(map[string]telemetry.Pinger{
			"store": telemetry.StorePinger(st), // the raw store: probes stay out of the metrics
			"model": telemetry.HTTPPinger(modelURL, nil),
		}, 0),
	}
	if lim != nil {
		adm := lim.Admin(cfg.AdminToken, log)
		extra[ratelimit.AdminPath] = adm
		extra[ratelimit.UsagePath] = adm
	}
	h, err := httpapi.New(turns, observed, httpapi.Config{MaxBodyBytes: cfg.MaxBodyBytes, Logger: log, Extra: extra, TenantHeader: cfg.TenantHeader})
	if err != nil {
		return fail(err)
	}
	a.handler = tel.Middleware(h)
	return a, nil
}

func runServe(ctx context.Context, cfg config, log *slog.Logger) error {
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s (LAMBDAGENT_ADDR): %w", cfg.Addr, err)
	}
	log.Info("serving", "addr", ln.Addr().String(), "model", a.agent.Config().Model)
	return serveHTTP(ctx, ln, a.handler, log)
}

// serveHTTP serves until ctx ends, then lets in-flight turns finish (and
// commit) for up to 30 s.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight turns")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// Package httpserver serves an http.Handler on a listener until a context
// ends, then shuts down gracefully: the one way lambdagent runs an HTTP
// server (the API in serve and dev modes, the simulator), so that its
// timeouts and shutdown live in one place.
package httpserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Defaults of a zero [Config].
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultShutdownTimeout   = 30 * time.Second
)

// Config tunes [Serve]. A zero field means its default.
type Config struct {
	// Logger receives the server's own errors (at Warn) and the shutdown.
	// Nil means slog.Default().
	Logger *slog.Logger
	// ReadHeaderTimeout bounds reading a request's headers. Zero means
	// DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown: requests in flight
	// (turns, which then commit) get this long to finish. Zero means
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// Serve serves h on ln until ctx ends, then stops accepting and lets
// requests in flight finish for up to cfg.ShutdownTimeout. It returns nil
// after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), or(cfg.ShutdownTimeout, DefaultShutdownTimeout))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Package httpserver serves an http.Handler on a listener until a context
// ends, then shuts down gracefully: the one way lambdagent runs an HTTP
// server (the API in serve and dev modes, the simulator), so that its
// timeouts and shutdown live in one place.
//
// # Timeouts (see #13)
//
// Every limit of net/http's server is set, so that a slow or idle client
// (Slowloris) holds a connection and its goroutine for a bounded time:
//
//   - ReadHeaderTimeout bounds the headers, MaxHeaderBytes their size.
//   - ReadTimeout bounds the whole request, body included: a client that
//     trickles its body is cut off, and the handler's read fails (the API
//     answers 400 if it still can).
//   - IdleTimeout bounds a keep-alive connection between requests.
//   - WriteTimeout bounds the handler and the writing of its answer: a
//     client that never reads a large answer is cut off. A turn runs in
//     the handler, so WriteTimeout must outlast the longest turn (queue
//     wait, turn timeout and commit): net/http counts it from the end of
//     the request's headers. One server-wide value was chosen over
//     per-route deadlines (http.ResponseController.SetWriteDeadline):
//     every route of the API is either a turn or small and fast, so a
//     second, shorter deadline for the fast routes would protect little
//     while making each route remember to set it. The runtime derives the
//     default from its turn timeout (lambdagent.Options.WriteTimeout).
//
// # Host check
//
// On a loopback listener (dev, or serve on 127.0.0.1) a request whose Host
// is not a loopback name gets 403: a web page whose name an attacker made
// resolve to 127.0.0.1 (DNS rebinding) would otherwise reach the local
// server as a same-origin page. Config.AllowedHosts adds names (a reverse
// proxy on the same machine that keeps the public Host).
package httpserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// Defaults of a zero [Config].
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	// DefaultWriteTimeout outlasts a turn of the agent's defaults: 30 s
	// of queue wait, a 10 min turn and its commit.
	DefaultWriteTimeout    = 11 * time.Minute
	DefaultIdleTimeout     = 60 * time.Second
	DefaultMaxHeaderBytes  = 64 << 10
	DefaultShutdownTimeout = 30 * time.Second
)

// Config tunes [Serve]. A zero field means its default.
type Config struct {
	// Logger receives the server's own errors (at Warn) and the shutdown.
	// Nil means slog.Default().
	Logger *slog.Logger
	// ReadHeaderTimeout bounds reading a request's headers. Zero means
	// DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included. Zero
	// means DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds a request from the end of its headers to the
	// end of its answer: it must outlast the longest turn. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection's wait for its next
	// request. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header lines; beyond it the
	// server answers 431. Zero means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// AllowedHosts are Host names (without port; case does not matter)
	// accepted on a loopback listener besides localhost and loopback
	// addresses. See the package comment.
	AllowedHosts []string
	// ShutdownTimeout bounds the graceful shutdown: requests in flight
	// (turns, which then commit) get this long to finish, then their
	// contexts are cancelled with the cause apierr.ErrShuttingDown and
	// they get CancelWait more to return. Zero means
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
	if IsLoopback(ln.Addr()) {
		h = checkHost(h, cfg.AllowedHosts)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       or(cfg.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      or(cfg.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       or(cfg.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    or(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	// Requests live on base, not on ctx: when ctx ends they get the
	// grace period, and only then are they cancelled, with the cause
	// apierr.ErrShuttingDown, which a turn obeys (see #17).
	base, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	srv.BaseContext = func(net.Listener) context.Context { return base }
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	grace := or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	log.Info("shutting down: finishing requests in flight", "grace", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	err := srv.Shutdown(sctx)
	cancel()
	if err == nil {
		return nil
	}
	// The grace is over: cancel what still runs. A turn stops its model
	// call, releases its session without writing, and answers 503
	// shutting_down; one already committing finishes its commit.
	log.Warn("shutting down: grace period over, cancelling requests in flight", "grace", grace)
	stop(apierr.ErrShuttingDown)
	sctx, cancel = context.WithTimeout(context.Background(), CancelWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: requests still running %v after they were cancelled: %w", CancelWait, err)
	}
	return nil
}

// CancelWait bounds how long [Serve] waits for requests it cancelled at
// the end of the grace period to return (a release or a commit in
// progress, one store round trip each).
const CancelWait = 5 * time.Second

// IsLoopback reports whether addr is a TCP address on a loopback IP
// (127.0.0.0/8, ::1). A wildcard address (0.0.0.0, ::) is not.
func IsLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// checkHost answers 403 to a request whose Host is not a loopback name
// or one of allowed.
func checkHost(h http.Handler, allowed []string) http.Handler {
	names := make(map[string]bool, len(allowed))
	for _, a := range allowed {
		names[strings.ToLower(strings.TrimSpace(a))] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if host := HostName(r.Host); !LoopbackHost(host) && !names[host] {
			// The Host is not echoed: it is the attacker's choice.
			apierr.WriteKind(w, apierr.Forbidden, "this server listens on a loopback address and answers only requests "+
				"for localhost, 127.0.0.1 or [::1] (a guard against DNS rebinding); "+
				"behind a reverse proxy, add its host name to LAMBDAGENT_ALLOWED_HOSTS")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// HostName returns the host of a Host header value without its port or
// IPv6 brackets, lower-cased and without a trailing dot: "LocalHost:8080"
// is "localhost", "[::1]:80" is "::1".
func HostName(hostport string) string {
	h := hostport
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			h = h[1:i]
		}
	} else if i := strings.LastIndexByte(h, ':'); i >= 0 && strings.IndexByte(h, ':') == i {
		h = h[:i] // one colon: host:port; more is a bare IPv6 address
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// LoopbackHost reports whether host (as [HostName] returns it) names this
// machine: "localhost", a name under .localhost (RFC 6761), a loopback IP,
// or "" (an HTTP/1.0 request without Host: not a browser's).
func LoopbackHost(host string) bool {
	if host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Zone() == "" && ip.Unmap().IsLoopback()
}

func or[T time.Duration | int](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

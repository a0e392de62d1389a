package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/session"
)

// DefaultReadyTimeout bounds each readiness check when ReadyHandler is
// given no timeout.
const DefaultReadyTimeout = 2 * time.Second

// A Pinger checks that a dependency answers. Ping is safe for concurrent
// use and returns when ctx ends.
type Pinger interface {
	Ping(ctx context.Context) error
}

// PingFunc makes a function a [Pinger]; for Redis:
//
//	telemetry.PingFunc(func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
type PingFunc func(ctx context.Context) error

// Ping calls f.
func (f PingFunc) Ping(ctx context.Context) error { return f(ctx) }

// StorePinger pings any session.Store by loading a session that does not
// exist: one round trip, no write, no lease.
func StorePinger(s session.Store) Pinger {
	return PingFunc(func(ctx context.Context) error {
		_, err := s.Load(ctx, "lambdagent-readyz-probe")
		return err
	})
}

// HTTPPinger pings a base URL (the Messages API's, or the simulator's)
// with a HEAD request. Any HTTP answer, 404 and 401 included, means the
// server is reachable; only a transport failure or the timeout fails. Nil
// client means http.DefaultClient.
func HTTPPinger(url string, client *http.Client) Pinger {
	if client == nil {
		client = http.DefaultClient
	}
	return PingFunc(func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return resp.Body.Close()
	})
}

// ReadyHandler serves GET /readyz: it runs every check at once, each
// bounded by timeout (zero means DefaultReadyTimeout), and answers
//
//	200 {"status":"ok","checks":{"store":"ok","model":"ok"}}
//	503 {"status":"unavailable","checks":{"store":"ok","model":"unavailable"}}
//
// A failure's cause is logged, never sent: it may name internal hosts. It
// works on a nil Telemetry (logging to slog.Default()).
func (t *Telemetry) ReadyHandler(checks map[string]Pinger, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	log := slog.Default()
	if t != nil {
		log = t.log
	}
	names := make([]string, 0, len(checks))
	for name := range checks {
		names = append(names, name)
	}
	slices.Sort(names)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			w.Header().Set("Cache-Control", "no-store")
			apierr.WriteKind(w, apierr.MethodNotAllowed, r.Method+" is not allowed here; use GET")
			return
		}
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(r.Context(), timeout)
				defer cancel()
				errs[i] = ping(ctx, checks[name])
			})
		}
		wg.Wait()
		body := struct {
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}{Status: "ok", Checks: make(map[string]string, len(names))}
		status := http.StatusOK
		for i, name := range names {
			body.Checks[name] = "ok"
			if errs[i] != nil {
				body.Checks[name] = "unavailable"
				body.Status, status = "unavailable", http.StatusServiceUnavailable
				log.LogAttrs(r.Context(), slog.LevelWarn, "readyz: check failed", slog.String("check", name), slog.Any("err", errs[i]))
			}
		}
		b, _ := json.Marshal(body)
		writeJSONBody(w, status, b)
	})
}

// ping runs one check, turning a panic into an error: a broken check must
// not take the server down.
func ping(ctx context.Context, p Pinger) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return p.Ping(ctx)
}

func writeJSONBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

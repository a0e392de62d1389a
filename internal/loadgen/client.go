package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// endpoints are the URLs a run talks to.
type endpoints struct {
	turn     string // POST {"session_id","message"}
	sessions string // GET sessions+id; the lambdagent session API
}

// parseEndpoint reads the turn URL: one with no path (or "/") means its
// /agent. The session API is /v1/sessions/ beside the turn path, so a
// stage prefix (https://host/prod/agent) carries over.
func parseEndpoint(raw string) (endpoints, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoints{}, fmt.Errorf("%w: URL %q: %v", ErrBadConfig, raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return endpoints{}, fmt.Errorf("%w: URL %q: want http://host[:port][/path]", ErrBadConfig, raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/agent"
	}
	turn := u.String()
	s := *u
	s.RawQuery = ""
	s.Path = path.Join(path.Dir(u.Path), "v1", "sessions") + "/"
	return endpoints{turn: turn, sessions: s.String()}, nil
}

// turnAnswer is the part of a turn's answer the run reads: the seed's
// {"response"} plus lambdagent's fields, all optional.
type turnAnswer struct {
	Response   string `json:"response"`
	SessionID  string `json:"session_id"`
	Turn       int64  `json:"turn"`
	StopReason string `json:"stop_reason"`
	ModelCalls int    `json:"model_calls"`
	Usage      Tokens `json:"usage"`
}

// Tokens counts a turn's tokens by kind, as the Messages API's usage does.
type Tokens struct {
	Input         float64 `json:"input_tokens"`
	Output        float64 `json:"output_tokens"`
	CacheCreation float64 `json:"cache_creation_input_tokens"`
	CacheRead     float64 `json:"cache_read_input_tokens"`
}

func (t Tokens) add(u Tokens) Tokens {
	return Tokens{t.Input + u.Input, t.Output + u.Output, t.CacheCreation + u.CacheCreation, t.CacheRead + u.CacheRead}
}

func (t Tokens) div(n float64) Tokens {
	if n == 0 {
		return Tokens{}
	}
	return Tokens{t.Input / n, t.Output / n, t.CacheCreation / n, t.CacheRead / n}
}

// reply is one HTTP exchange's outcome.
type reply struct {
	status     int
	body       []byte
	retryAfter time.Duration
	err        error // transport error; status is 0
}

// post sends body to u with the idempotency key and the API key
// (apiKey, none if empty), within timeout.
func post(ctx context.Context, c *http.Client, u string, body []byte, key, apiKey string, timeout time.Duration) reply {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return reply{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return do(c, req, apiKey)
}

func get(ctx context.Context, c *http.Client, u, apiKey string, timeout time.Duration) reply {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return reply{err: err}
	}
	return do(c, req, apiKey)
}

func do(c *http.Client, req *http.Request, apiKey string) reply {
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{err: err}
	}
	defer resp.Body.Close()
	return readReply(resp)
}

// readReply reads a plain (JSON) answer.
func readReply(resp *http.Response) reply {
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return reply{err: err}
	}
	r := reply{status: resp.StatusCode, body: b}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			r.retryAfter = time.Duration(n) * time.Second
		}
	}
	return r
}

// kind names a failed exchange for the errors-by-kind table: the status
// and the JSON error type ("503 store_unavailable"), or the transport
// failure ("transport: timeout").
func (r reply) kind() string {
	if r.err != nil {
		return "transport: " + transportKind(r.err)
	}
	var e struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(r.body, &e) == nil && e.Error.Type != "" {
		return strconv.Itoa(r.status) + " " + e.Error.Type
	}
	return strconv.Itoa(r.status) + " " + strings.ReplaceAll(strings.ToLower(http.StatusText(r.status)), " ", "_")
}

// authErr returns ErrNoKey or ErrKeyRefused when the server refused the
// request for its credential (401, 403), nil otherwise. keySent says
// whether the request carried an API key.
func (r reply) authErr(keySent bool) error {
	if r.err != nil || (r.status != http.StatusUnauthorized && r.status != http.StatusForbidden) {
		return nil
	}
	if keySent {
		return ErrKeyRefused
	}
	return ErrNoKey
}

// retryable reports whether sending the turn again (with the same
// Idempotency-Key) may succeed and cannot run it twice.
func (r reply) retryable() bool {
	if r.err != nil {
		return !errors.Is(r.err, context.Canceled)
	}
	switch r.status {
	case http.StatusConflict, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection_reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_closed"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EMFILE):
		return "out_of_sockets"
	}
	return "error"
}

// newClient returns a client that keeps a connection per session alive,
// so the run measures turns, not TCP handshakes.
func newClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = conns + 16
	t.MaxIdleConnsPerHost = conns + 16
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{Transport: t}
}

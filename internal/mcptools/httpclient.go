package mcptools

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// A Session is a Streamable HTTP session an MCP server assigned. Keep it
// (it is JSON-friendly) and pass it back in [Options.ResumeSessions] to
// continue the session from another process.
type Session struct {
	// ID is the Mcp-Session-Id the server sent.
	ID string `json:"id"`
	// ProtocolVersion is the MCP version negotiated for the session. A
	// resumed session must keep speaking it.
	ProtocolVersion string `json:"protocolVersion"`
}

type traceparentKey struct{}

// WithTraceparent returns a context whose MCP requests carry the W3C trace
// context tp ("00-<trace-id>-<span-id>-<flags>"): as the traceparent header
// of HTTP requests, and as _meta.traceparent of tool calls, which stdio
// servers can read too. A traceparent header already set by
// [Options.HTTPClient] (an OpenTelemetry transport, say) wins.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, traceparentKey{}, tp)
}

func traceparentFrom(ctx context.Context) string {
	tp, _ := ctx.Value(traceparentKey{}).(string)
	return tp
}

// An httpTransport adds what go-sdk's StreamableClientTransport cannot be
// told: configured headers, the traceparent, keeping sessions open on Close,
// and joining a stored session.
type httpTransport struct {
	base    http.RoundTripper
	headers map[string]string
	// origin is the configured server's scheme://host:port. headers go only
	// to it: a redirect elsewhere must not carry its bearer token, as
	// net/http drops Authorization on a redirect to another host (see #13).
	origin string
	// keep answers DELETE (session termination, sent by Close) locally, so
	// the session stays alive on the server for another process.
	keep bool
	// resume, if non-nil, joins an existing session on this connection.
	resume *resumer
	// done ends every request but DELETE when the Toolset closes, so that
	// a server that hangs cannot hold up Close (go-sdk waits for its
	// in-flight messages; DELETE has a timeout of its own).
	done context.Context
}

func (t *httpTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	if origin(req.URL) == t.origin {
		for k, v := range t.headers {
			req.Header.Set(k, v)
		}
	}
	if tp := traceparentFrom(req.Context()); tp != "" && req.Header.Get("Traceparent") == "" {
		req.Header.Set("Traceparent", tp)
	}
	if t.keep && req.Method == http.MethodDelete {
		closeBody(req)
		return localResponse(req, http.StatusNoContent, nil, nil), nil
	}
	if t.resume != nil && req.Method == http.MethodPost {
		resp, err := t.resume.intercept(req)
		if resp != nil || err != nil {
			return resp, err
		}
	}
	if t.done == nil || req.Method == http.MethodDelete {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(t.done, cancel)
	release := func() { stop(); cancel() }
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		release()
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// A releaseBody releases a request's context when its response is closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// A resumer joins an existing Streamable HTTP session.
//
// go-sdk's Client.Connect always runs the initialize handshake, and a server
// answers a second initialize on a live session with an error, so the
// handshake cannot go to the server. The resumer answers it locally instead:
// initialize gets the stored protocol version and session ID (the client
// then sends that ID on every request, and opens its standalone SSE stream
// for it), and notifications/initialized is dropped. The first real request
// then tells whether the server still knows the session; if not (404), the
// caller connects afresh.
type resumer struct {
	session Session

	mu    sync.Mutex // guards state
	state int        // resumeInit, resumeInitialized or resumeDone
}

const (
	resumeInit        = iota // waiting for initialize
	resumeInitialized        // waiting for notifications/initialized
	resumeDone               // passing everything through
)

// intercept answers req locally if it is part of the handshake. A nil
// response means: send req to the server.
func (r *resumer) intercept(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == resumeDone {
		return nil, nil
	}
	body, err := io.ReadAll(req.Body)
	closeBody(req)
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.ContentLength = int64(len(body))

	var msg struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
	}
	_ = json.Unmarshal(body, &msg) // a batch or garbage: pass it on
	switch {
	case r.state == resumeInit && msg.Method == "initialize" && len(msg.ID) > 0:
		r.state = resumeInitialized
		result, err := marshal(map[string]any{
			"jsonrpc": "2.0",
			"id":      msg.ID,
			"result": map[string]any{
				"protocolVersion": r.session.ProtocolVersion,
				// We only use tools; claim list_changed so notifications
				// are expected.
				"capabilities": map[string]any{"tools": map[string]any{"listChanged": true}},
				"serverInfo":   map[string]any{"name": "resumed session", "version": ""},
			},
		})
		if err != nil {
			return nil, err
		}
		h := http.Header{}
		h.Set("Content-Type", "application/json")
		h.Set("Mcp-Session-Id", r.session.ID)
		return localResponse(req, http.StatusOK, h, result), nil
	case r.state == resumeInitialized && msg.Method == "notifications/initialized":
		r.state = resumeDone
		return localResponse(req, http.StatusAccepted, nil, nil), nil
	}
	r.state = resumeDone
	return nil, nil
}

func localResponse(req *http.Request, code int, h http.Header, body []byte) *http.Response {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	return &http.Response{
		Status:        strconv.Itoa(code) + " " + http.StatusText(code),
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// httpClient returns the client for one connection to an HTTP server.
func (t *Toolset) httpClient(cfg ServerConfig, resume *Session) *http.Client {
	base := t.opts.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	rt := base.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	ht := &httpTransport{base: rt, headers: cfg.Headers, keep: t.opts.KeepSessions, done: t.ctx}
	if u, err := url.Parse(cfg.URL); err == nil { // ParseConfig checked it
		ht.origin = origin(u)
	}
	if resume != nil {
		ht.resume = &resumer{session: *resume}
	}
	// No Timeout: it would cut the long-lived SSE stream. Calls have their
	// own deadlines. Other processes may call on the same session.
	return &http.Client{Transport: newIDSpace(ht), Jar: base.Jar, CheckRedirect: base.CheckRedirect}
}

// origin returns u's scheme, host and port ("https://h:443"), the port
// made explicit so that https://h and https://h:443 are one origin.
func origin(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		switch scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// Package chatui is lambdagent's terminal chat client: one session of an
// agent served over HTTP (POST /agent, GET /v1/sessions/{id}), with
// /new, /history, /usage and /quit.
//
// Input comes from a [LineReader]. On a terminal, [TerminalLines] gives
// line editing and history through golang.org/x/term's Terminal (the
// line editor of x/crypto/ssh, in a module that only needs x/sys, which
// lambdagent already has); the terminal is in raw mode only while a line
// is read, so Ctrl-C during a turn interrupts as usual. Anywhere else
// [PlainLines] reads lines as they come, so a chat can be scripted:
// printf 'hello\n/usage\n' | lambdagent chat.
package chatui

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultURL is where `lambdagent dev` listens.
const DefaultURL = "http://127.0.0.1:8080"

// Config sets up a [Chat]. A zero field means its documented default.
type Config struct {
	// URL is the server ("http://host:port", meaning its /agent) or its
	// turn endpoint. Empty means DefaultURL.
	URL string
	// SessionID continues a session. Empty means a new one.
	SessionID string
	// APIKey, if set, is sent on every request as "Authorization: Bearer
	// APIKey". It is never printed.
	APIKey string
	// Client sends the requests. Nil means one with a 10-minute timeout
	// (a turn with tools can be long).
	Client *http.Client
	// Terminal labels answers and follows each with a line of figures
	// (turn, latency, tokens), for a person; without it answers are
	// printed bare, for scripts.
	Terminal bool
	// Stream, with Terminal, asks for answers as server-sent events and
	// prints them as they are written, resuming a dropped connection
	// from its last event (see #15). A server that does not stream is
	// answered as before.
	Stream bool
}

// A LineReader reads the user's lines, without their newline; io.EOF ends
// the chat. *term.Terminal is one.
type LineReader interface {
	ReadLine() (string, error)
}

// A Chat is one conversation with a server. It is not safe for
// concurrent use.
type Chat struct {
	turnURL     string
	sessionsURL string
	streamsURL  string
	stream      bool
	client      *http.Client
	apiKey      string
	terminal    bool
	// authErr is ErrNoKey or ErrKeyRefused once the server refused a
	// request for its credential; Run returns it.
	authErr error
	session string
	// Usage this client saw, for servers without a session API.
	turns int
	total usage
	last  *answer
}

type usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

func (u usage) String() string {
	return fmt.Sprintf("input %d, output %d, cache write %d, cache read %d", u.InputTokens, u.OutputTokens, u.CacheCreationInputTokens, u.CacheReadInputTokens)
}

type answer struct {
	Response   string `json:"response"`
	Turn       int64  `json:"turn"`
	StopReason string `json:"stop_reason"`
	ModelCalls int    `json:"model_calls"`
	Usage      usage  `json:"usage"`
	latency    time.Duration
}

// New returns a Chat, or an error for a URL it cannot use.
func New(cfg Config) (*Chat, error) {
	raw := cfg.URL
	if raw == "" {
		raw = DefaultURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("chatui: URL %q: want http://host:port or its turn endpoint", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/agent"
	}
	s := *u
	s.RawQuery = ""
	s.Path = path.Join(path.Dir(u.Path), "v1", "sessions") + "/"
	st := s
	st.Path = path.Join(path.Dir(u.Path), "v1", "streams") + "/"
	c := &Chat{turnURL: u.String(), sessionsURL: s.String(), streamsURL: st.String(), client: cfg.Client, apiKey: cfg.APIKey,
		terminal: cfg.Terminal, stream: cfg.Stream && cfg.Terminal, session: cfg.SessionID}
	if c.client == nil {
		c.client = &http.Client{Timeout: 10 * time.Minute}
	}
	if c.session == "" {
		c.session = newSessionID()
	}
	return c, nil
}

// Session returns the current session's id.
func (c *Chat) Session() string { return c.session }

// Run reads lines from in until /quit, io.EOF or ctx ends, sending each
// message as a turn and printing the answer to out. A failed turn is
// reported and the chat goes on; Run returns an error only when it
// cannot read or write, ctx ended, or the server refused the credential
// (ErrNoKey, ErrKeyRefused: every later request would fail alike).
func (c *Chat) Run(ctx context.Context, in LineReader, out io.Writer) error {
	w := &errWriter{w: out}
	if c.terminal {
		w.printf("lambdagent chat · session %s · %s · /help for commands\n", c.session, c.turnURL)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := in.ReadLine()
		if errors.Is(err, io.EOF) {
			return w.err
		}
		if err != nil {
			return fmt.Errorf("read input: %w", err)
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "/"):
			if quit := c.command(ctx, w, line); quit {
				return w.err
			}
		default:
			c.send(ctx, w, line)
		}
		if w.err != nil {
			return w.err
		}
		if c.authErr != nil {
			return c.authErr
		}
	}
}

const help = `  /new              start a new session
  /session [ID]     show the session id, or switch to session ID
  /history          the session's messages, as stored
  /usage            the session's turns and tokens
  /quit             leave (also Ctrl-D)
`

func (c *Chat) command(ctx context.Context, w *errWriter, line string) (quit bool) {
	name, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch name {
	case "/quit", "/exit", "/q":
		return true
	case "/help", "/?":
		w.printf("%s", help)
	case "/new":
		c.session, c.turns, c.total, c.last = newSessionID(), 0, usage{}, nil
		w.printf("new session %s\n", c.session)
	case "/session":
		if arg != "" {
			c.session, c.turns, c.total, c.last = arg, 0, usage{}, nil
		}
		w.printf("session %s\n", c.session)
	case "/history":
		c.history(ctx, w)
	case "/usage":
		c.usage(ctx, w)
	default:
		w.printf("unknown command %s; /help lists them\n", name)
	}
	return false
}

// send runs one turn. A retry after 409 (busy), 429 or 503 sends the
// same Idempotency-Key, so the turn runs at most once.
func (c *Chat) send(ctx context.Context, w *errWriter, msg string) {
	body, _ := json.Marshal(map[string]string{"session_id": c.session, "message": msg})
	key := newKey()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		var resp *http.Response
		var b []byte
		var err error
		if c.stream {
			var done bool
			if resp, b, done, err = c.sendStream(ctx, w, body, key, start); done {
				return
			}
		} else {
			resp, b, err = c.do(ctx, http.MethodPost, c.turnURL, body, key)
		}
		if err != nil {
			if c.authErr == nil { // else Run returns it
				w.printf("error: %s\n", transportError(c.turnURL, err))
			}
			return
		}
		if resp.StatusCode == http.StatusOK {
			var a answer
			if err := json.Unmarshal(b, &a); err != nil {
				w.printf("error: the server's answer is not JSON: %s\n", clip(string(b)))
				return
			}
			a.latency = time.Since(start)
			c.turns++
			c.total = c.total.add(a.Usage)
			c.last = &a
			c.printAnswer(w, &a)
			return
		}
		retry := resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
		if !retry || attempt == 3 || isType(b, "conflict", "invalid_history") {
			w.printf("error: %s\n", httpError(resp.StatusCode, b))
			return
		}
		wait := time.Second
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && n >= 0 {
			wait = min(time.Duration(n)*time.Second, 30*time.Second)
		}
		if c.terminal {
			w.printf("(%s; retrying in %v)\n", httpError(resp.StatusCode, b), wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (c *Chat) printAnswer(w *errWriter, a *answer) {
	if !c.terminal {
		w.printf("%s\n", a.Response)
		return
	}
	w.printf("claude> %s\n", strings.ReplaceAll(a.Response, "\n", "\n        "))
	c.printFigures(w, a)
}

// printFigures prints the dim line of figures under an answer.
func (c *Chat) printFigures(w *errWriter, a *answer) {
	var figs []string
	if a.Turn > 0 {
		figs = append(figs, fmt.Sprintf("turn %d", a.Turn))
	}
	figs = append(figs, a.latency.Round(time.Millisecond).String())
	if a.ModelCalls > 1 {
		figs = append(figs, fmt.Sprintf("%d model calls", a.ModelCalls))
	}
	figs = append(figs, fmt.Sprintf("%d in / %d out tokens", a.Usage.InputTokens+a.Usage.CacheCreationInputTokens+a.Usage.CacheReadInputTokens, a.Usage.OutputTokens))
	if a.StopReason != "" && a.StopReason != "end_turn" {
		figs = append(figs, "stop: "+a.StopReason)
	}
	w.printf("\033[2m        %s\033[0m\n", strings.Join(figs, " · "))
}

// sessionView is GET /v1/sessions/{id}.
type sessionView struct {
	Turns    int64             `json:"turns"`
	Counters map[string]int64  `json:"counters"`
	Messages []json.RawMessage `json:"messages"`
}

// load reads the session; ok false (after printing why) when it cannot.
func (c *Chat) load(ctx context.Context, w *errWriter) (v sessionView, found, ok bool) {
	resp, b, err := c.do(ctx, http.MethodGet, c.sessionsURL+url.PathEscape(c.session), nil, "")
	switch {
	case err != nil:
		if c.authErr == nil { // else Run returns it
			w.printf("error: %s\n", transportError(c.sessionsURL, err))
		}
		return v, false, false
	case resp.StatusCode == http.StatusNotFound && isType(b, "not_found") && strings.Contains(string(b), "no session"):
		return v, false, true
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed:
		w.printf("this server has no session API (%s)\n", c.sessionsURL)
		return v, false, false
	case resp.StatusCode != http.StatusOK:
		w.printf("error: %s\n", httpError(resp.StatusCode, b))
		return v, false, false
	}
	if err := json.Unmarshal(b, &v); err != nil {
		w.printf("error: the session is not JSON: %s\n", clip(string(b)))
		return v, false, false
	}
	return v, true, true
}

func (c *Chat) history(ctx context.Context, w *errWriter) {
	v, found, ok := c.load(ctx, w)
	if !ok {
		return
	}
	if !found {
		w.printf("session %s has no turns yet\n", c.session)
		return
	}
	w.printf("session %s: %s, %s\n", c.session, count(v.Turns, "turn"), count(int64(len(v.Messages)), "message"))
	for _, raw := range v.Messages {
		role, parts := describe(raw)
		label := "you"
		if role == "assistant" {
			label = "claude"
		}
		w.printf("  %s: %s\n", label, strings.ReplaceAll(strings.Join(parts, " "), "\n", "\n    "))
	}
}

func (c *Chat) usage(ctx context.Context, w *errWriter) {
	v, found, ok := c.load(ctx, w)
	switch {
	case ok && !found:
		w.printf("session %s has no turns yet\n", c.session)
	case ok:
		k := v.Counters
		w.printf("session %s: %s, %s\n  tokens: %s\n", c.session, count(v.Turns, "turn"), count(k["model_calls"], "model call"),
			usage{k["input_tokens"], k["output_tokens"], k["cache_creation_input_tokens"], k["cache_read_input_tokens"]})
	default:
		w.printf("this chat: %s\n  tokens: %s\n", count(int64(c.turns), "turn"), c.total)
	}
	if c.last != nil {
		w.printf("  last turn: %s\n", c.last.Usage)
	}
}

// describe reduces a stored Messages API message to its role and a text
// per content block.
func describe(raw json.RawMessage) (role string, parts []string) {
	var m struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return "", []string{clip(string(raw))}
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return m.Role, []string{s}
	}
	var blocks []struct {
		Type    string          `json:"type"`
		Text    string          `json:"text"`
		Name    string          `json:"name"`
		Input   json.RawMessage `json:"input"`
		IsError bool            `json:"is_error"`
	}
	_ = json.Unmarshal(m.Content, &blocks)
	for _, b := range blocks {
		switch b.Type {
		case "text":
			parts = append(parts, b.Text)
		case "tool_use":
			parts = append(parts, fmt.Sprintf("[calls %s %s]", b.Name, clip(string(b.Input))))
		case "tool_result":
			if b.IsError {
				parts = append(parts, "[tool error]")
			} else {
				parts = append(parts, "[tool result]")
			}
		case "thinking", "redacted_thinking":
			// Not shown: usually omitted, always long.
		default:
			parts = append(parts, "["+b.Type+"]")
		}
	}
	return m.Role, parts
}

func (c *Chat) do(ctx context.Context, method, u string, body []byte, key string) (*http.Response, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err == nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden) {
		c.authErr = ErrNoKey
		if c.apiKey != "" {
			c.authErr = ErrKeyRefused
		}
		return nil, nil, c.authErr
	}
	return resp, b, err
}

// httpError writes an error answer as "409 session_busy: message".
func httpError(status int, body []byte) string {
	var e struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Type != "" {
		return fmt.Sprintf("%d %s: %s", status, e.Error.Type, e.Error.Message)
	}
	return fmt.Sprintf("%d %s: %s", status, http.StatusText(status), clip(strings.TrimSpace(string(body))))
}

func isType(body []byte, types ...string) bool {
	var e struct {
		Error struct {
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	for _, t := range types {
		if e.Error.Type == t {
			return true
		}
	}
	return false
}

func transportError(u string, err error) string {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Sprintf("nothing answers at %s (is `lambdagent dev` running?)", u)
	}
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return err.Error()
}

func (u usage) add(v usage) usage {
	return usage{u.InputTokens + v.InputTokens, u.OutputTokens + v.OutputTokens,
		u.CacheCreationInputTokens + v.CacheCreationInputTokens, u.CacheReadInputTokens + v.CacheReadInputTokens}
}

// count writes "1 turn", "2 turns".
func count(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func newSessionID() string { return "chat-" + randomHex(4) }
func newKey() string       { return "chat-" + randomHex(12) }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:197] + "…"
	}
	return s
}

// errWriter remembers the first write error, so printing code stays flat.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// PlainLines reads lines from r as they come (no editing, no echo): for
// pipes and files.
func PlainLines(r io.Reader) LineReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return &plainLines{sc: sc}
}

type plainLines struct{ sc *bufio.Scanner }

var _ LineReader = (*plainLines)(nil)

func (p *plainLines) ReadLine() (string, error) {
	if p.sc.Scan() {
		return p.sc.Text(), nil
	}
	if err := p.sc.Err(); err != nil {
		return "", err
	}
	return "", io.EOF
}

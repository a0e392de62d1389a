package claudesim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Config tunes a [Server]. A zero field means its documented default.
type Config struct {
	// Models is the model table. Nil means [Models].
	Models []Model
	// ContextWindow, if positive, replaces every model's context window,
	// so that a test can outgrow a small one (see context.go).
	ContextWindow int
	// MinCompactTrigger is the smallest compaction trigger taken. Zero
	// means MinCompactTrigger (50,000 tokens, as documented); a test with
	// a small ContextWindow lowers it.
	MinCompactTrigger int

	// APIKey, if set, is the only API key accepted; any other gets 401
	// authentication_error. Empty means any non-empty key is accepted.
	APIKey string
	// AllowNoAPIKey lets requests without a key through. By default a
	// request with neither x-api-key nor Authorization: Bearer gets 401
	// authentication_error, as from the real API (the SDK always sends
	// one; lambdagent's dev mode sends a dummy one).
	AllowNoAPIKey bool

	// Rate429, Rate529 and Rate500 are the probabilities (0 to 1) that a
	// valid POST /v1/messages is answered with an injected 429
	// rate_limit_error, 529 overloaded_error or 500 api_error instead.
	// Zero means never.
	Rate429, Rate529, Rate500 float64
	// InjectedRetryAfter is the retry-after an injected 429 carries. Zero
	// means 1s.
	InjectedRetryAfter time.Duration
	// Seed seeds the random source behind fault injection, latency jitter
	// and IDs, so a run is reproducible. Zero means 1.
	Seed uint64

	// RequestsPerMinute, InputTokensPerMinute and OutputTokensPerMinute
	// are enforced limits, as token buckets refilled continuously (so a
	// test can hit a real 429 with a retry-after). Input tokens count the
	// uncached input and cache writes, not cache reads, as documented.
	// Zero means unlimited; the headers then report nominal limits.
	RequestsPerMinute     int
	InputTokensPerMinute  int
	OutputTokensPerMinute int

	// Latency is waited before answering; a streamed reply spreads it
	// over its events. LatencyJitter adds a random [0, LatencyJitter).
	// Zero means no wait. Waits end early when the request's context is
	// done.
	Latency       time.Duration
	LatencyJitter time.Duration

	// Now is the clock behind cache TTLs, rate limits, stats and record
	// times. Nil means time.Now. Latency uses real timers regardless.
	Now func() time.Time

	// SigningKey keys the HMAC that signs thinking blocks. Nil means a
	// fixed key, so separate Servers accept each other's blocks.
	SigningKey []byte

	// MaxRecorded bounds [Server.Requests] to the most recent requests.
	// Zero means 256; negative records nothing.
	MaxRecorded int
	// MaxRecordedBytes bounds the request bodies kept. Zero means 64 MiB.
	MaxRecordedBytes int
}

// maxBody is the documented request size limit of the Messages API.
const maxBody = 32 << 20

// A Server simulates the Anthropic Messages API. It is an http.Handler,
// safe for concurrent use.
type Server struct {
	cfg    Config
	models []Model
	now    func() time.Time
	key    []byte

	mu sync.Mutex
	// Guarded by mu:
	rng         *rand.Rand
	cache       map[[sha256.Size]byte]cacheEntry
	limits      limits
	records     []Recorded
	faults      map[[sha256.Size]byte]int // [[fail …]] failures sent, by body hash
	recordBytes int
	stats       Stats
}

// New returns a Server configured by cfg.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg, models: cfg.Models, now: cfg.Now, key: cfg.SigningKey}
	if s.models == nil {
		s.models = Models()
	}
	if cfg.ContextWindow > 0 {
		s.models = slices.Clone(s.models)
		for i := range s.models {
			s.models[i].ContextWindow = cfg.ContextWindow
		}
	}
	if s.cfg.MinCompactTrigger <= 0 {
		s.cfg.MinCompactTrigger = MinCompactTrigger
	}
	if s.now == nil {
		s.now = time.Now
	}
	if len(s.key) == 0 {
		s.key = defaultSigningKey
	}
	if s.cfg.InjectedRetryAfter == 0 {
		s.cfg.InjectedRetryAfter = time.Second
	}
	if s.cfg.Seed == 0 {
		s.cfg.Seed = 1
	}
	if s.cfg.MaxRecorded == 0 {
		s.cfg.MaxRecorded = 256
	}
	if s.cfg.MaxRecordedBytes == 0 {
		s.cfg.MaxRecordedBytes = 64 << 20
	}
	s.rng = rand.New(rand.NewPCG(s.cfg.Seed, s.cfg.Seed^0x9e3779b97f4a7c15))
	s.cache = make(map[[sha256.Size]byte]cacheEntry)
	s.faults = make(map[[sha256.Size]byte]int)
	s.limits = newLimits(cfg)
	s.stats.ByStatus = map[int]int{}
	return s
}

// An exchange is one request being answered.
type exchange struct {
	w         *statusWriter
	req       *http.Request
	requestID string
	body      []byte
	model     string
	stream    bool
	usage     Usage
}

// ServeHTTP answers POST /v1/messages, POST /v1/messages/count_tokens,
// GET /v1/models and GET /v1/models/{id}.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := s.now()
	x := &exchange{w: &statusWriter{ResponseWriter: w}, req: req}
	s.mu.Lock()
	x.requestID = s.newIDLocked("req_01")
	s.mu.Unlock()
	w.Header().Set("request-id", x.requestID)

	s.route(x)

	status := x.w.status
	if status == 0 {
		status = 499 // the client went away before an answer
	}
	s.record(x, start, status)
}

func (s *Server) route(x *exchange) {
	path := strings.TrimSuffix(x.req.URL.Path, "/")
	var h func(*exchange)
	switch {
	case path == "/v1/messages":
		h = s.messages
	case path == "/v1/messages/count_tokens":
		h = s.countTokens
	case path == "/v1/models" || strings.HasPrefix(path, "/v1/models/"):
		h = s.listModels
	default:
		s.fail(x, errNotFound)
		return
	}
	want := http.MethodPost
	if strings.HasPrefix(path, "/v1/models") {
		want = http.MethodGet
	}
	if x.req.Method != want {
		s.fail(x, errMethod)
		return
	}
	if err := s.authenticate(x.req); err != nil {
		s.fail(x, err)
		return
	}
	if x.req.Header.Get("anthropic-version") == "" {
		s.fail(x, errNoVersion)
		return
	}
	h(x)
}

func (s *Server) authenticate(req *http.Request) *apiError {
	key := req.Header.Get("x-api-key")
	if key == "" {
		key, _ = strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	}
	switch {
	case key == "" && s.cfg.AllowNoAPIKey:
		return nil
	case key == "":
		return errMissingKey
	case s.cfg.APIKey != "" && key != s.cfg.APIKey:
		return errBadKey
	}
	return nil
}

// readBody reads a request body within the documented size limit.
func (s *Server) readBody(x *exchange) *apiError {
	var buf bytes.Buffer
	if n := x.req.ContentLength; n > 0 && n <= maxBody {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(x.w, x.req.Body, maxBody))
	x.body = buf.Bytes()
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return errTooLarge
		}
		return invalid("There was an issue reading your request body")
	}
	return nil
}

func (s *Server) parse(x *exchange, countOnly bool) (*request, *apiError) {
	if err := s.readBody(x); err != nil {
		return nil, err
	}
	r, err := parseRequest(x.body, countOnly, s.model, s.key, x.req.Header.Values("anthropic-beta"), s.cfg.MinCompactTrigger)
	if err != nil {
		return nil, err
	}
	x.model, x.stream = r.model.ID, r.stream && !countOnly
	if n := r.inputTokens(); n > r.model.ContextWindow {
		return nil, invalid("prompt is too long: %d tokens > %d maximum", n, r.model.ContextWindow)
	}
	return r, nil
}

func (s *Server) messages(x *exchange) {
	r, err := s.parse(x, false)
	if err != nil {
		s.fail(x, err)
		return
	}
	total := r.inputTokens()
	p := buildPrefix(r)
	now := s.now()
	ce, compacting := r.compactEdit()
	compacting = compacting && total > ce.trigger
	// A prompt that fits but leaves less room than max_tokens: the reply
	// stops where the window ends (model_context_window_exceeded).
	windowCut := false
	if room := r.model.ContextWindow - total; room < r.maxTokens {
		r.maxTokens, windowCut = max(room, 1), true
	}

	f := s.takeFault(x, r)
	if f != nil && !(f.midStream && r.stream) {
		f.limitHeaders(now)
		s.fail(x, f.err)
		return
	}

	s.mu.Lock()
	s.limits.refill(now)
	plan := s.planCacheLocked(p, r.model.MinCacheTokens, now)
	if name, wait := s.limits.admit(total - plan.read); name != "" {
		s.limits.setHeaders(x.w.Header(), now)
		s.mu.Unlock()
		s.fail(x, &apiError{
			status:     http.StatusTooManyRequests,
			typ:        "rate_limit_error",
			msg:        "This request would exceed your organization's rate limit of " + name + " per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.",
			retryAfter: wait,
		})
		return
	}
	if err := s.injectLocked(); err != nil {
		s.limits.setHeaders(x.w.Header(), now)
		s.mu.Unlock()
		s.fail(x, err)
		return
	}
	s.commitCacheLocked(p, plan, now)
	msgID := s.newIDLocked("msg_01")
	delay := s.delayLocked()
	s.mu.Unlock()

	var compaction outBlock
	if compacting {
		// The prompt is summarised first; the reply goes on from the
		// summary, its thinking bound to it.
		compaction, r.replyPrefix = r.compactionBlock(s.key, ce)
	}
	rep := generate(r, s.key, s.newID)
	if windowCut && rep.stopReason == "max_tokens" {
		rep.stopReason = "model_context_window_exceeded"
	}

	s.mu.Lock()
	s.limits.chargeOutput(rep.outputTokens)
	s.limits.setHeaders(x.w.Header(), now)
	s.mu.Unlock()

	x.usage = Usage{
		InputTokens:              total - plan.read - plan.creation(),
		CacheCreationInputTokens: plan.creation(),
		CacheReadInputTokens:     plan.read,
		CacheCreation:            CacheCreation{Ephemeral5mInputTokens: plan.creation5m, Ephemeral1hInputTokens: plan.creation1h},
		OutputTokens:             rep.outputTokens,
		ServiceTier:              "standard",
	}
	if compacting {
		x.usage, rep = s.compactedUsage(r, x.usage, rep, compaction, ce)
	}
	msg := messageJSON{
		ID:           msgID,
		Type:         "message",
		Role:         "assistant",
		Model:        r.model.ID,
		Content:      rep.content,
		StopReason:   &rep.stopReason,
		StopSequence: rep.stopSequence,
		StopDetails:  rep.stopDetails,
		Usage:        x.usage,

		InputTransformations: r.transformations,
	}
	if r.contextManagement {
		msg.ContextManagement = &contextManagementJSON{AppliedEdits: r.applied}
		if msg.ContextManagement.AppliedEdits == nil {
			msg.ContextManagement.AppliedEdits = []appliedEdit{}
		}
	}
	if !r.stream {
		if !sleep(x.req.Context(), delay) {
			return
		}
		s.writeJSON(x, http.StatusOK, msg)
		return
	}
	events := streamEvents(msg)
	if f != nil {
		// Fail mid-stream: after message_start, ping and the first
		// block's start and delta (if any), as the API does when it is
		// overloaded while answering (see #14).
		cut := 2
		for i, e := range events {
			if e.name == "content_block_delta" {
				cut = i + 1
				break
			}
		}
		events = append(events[:cut:cut], f.err.event(x.requestID))
	}
	s.writeStream(x, events, delay)
}

// maxFaultKeys bounds the bodies whose [[fail …]] count is remembered.
const maxFaultKeys = 4096

// takeFault returns the failure that a [[fail …]] marker in the last user
// turn asks for, if this body has not yet failed as many times as it says.
func (s *Server) takeFault(x *exchange, r *request) *fault {
	var text string
	for i := len(r.turns) - 1; i >= 0; i-- {
		if r.turns[i].role == "user" {
			text = turnText(r.turns[i])
			break
		}
	}
	f, ok := parseFault(text)
	if !ok {
		return nil
	}
	key := sha256.Sum256(x.body)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faults[key] >= f.times {
		return nil
	}
	if len(s.faults) >= maxFaultKeys {
		clear(s.faults)
	}
	s.faults[key]++
	return f
}

func (s *Server) countTokens(x *exchange) {
	r, err := s.parse(x, true)
	if err != nil {
		s.fail(x, err)
		return
	}
	s.setLimitHeaders(x)
	out := struct {
		InputTokens       int `json:"input_tokens"`
		ContextManagement *struct {
			OriginalInputTokens int `json:"original_input_tokens"`
		} `json:"context_management,omitempty"`
	}{InputTokens: r.inputTokens()}
	if r.contextManagement {
		out.ContextManagement = &struct {
			OriginalInputTokens int `json:"original_input_tokens"`
		}{r.originalTokens}
	}
	s.writeJSON(x, http.StatusOK, out)
}

// modelJSON is the documented ModelInfo object, in part.
type modelJSON struct {
	Type           string `json:"type"`
	ID             string `json:"id"`
	DisplayName    string `json:"display_name"`
	CreatedAt      string `json:"created_at"`
	MaxInputTokens int    `json:"max_input_tokens"`
	MaxTokens      int    `json:"max_tokens"`
}

func toModelJSON(m Model) modelJSON {
	return modelJSON{
		Type:           "model",
		ID:             m.ID,
		DisplayName:    m.DisplayName,
		CreatedAt:      m.CreatedAt.UTC().Format(time.RFC3339),
		MaxInputTokens: m.ContextWindow,
		MaxTokens:      m.MaxOutput,
	}
}

func (s *Server) listModels(x *exchange) {
	s.setLimitHeaders(x)
	if id, ok := strings.CutPrefix(strings.TrimSuffix(x.req.URL.Path, "/"), "/v1/models/"); ok {
		m, found := s.model(id)
		if !found {
			s.fail(x, &apiError{status: http.StatusNotFound, typ: "not_found_error", msg: "model: " + id})
			return
		}
		s.writeJSON(x, http.StatusOK, toModelJSON(m))
		return
	}
	list := struct {
		Data    []modelJSON `json:"data"`
		FirstID *string     `json:"first_id"`
		LastID  *string     `json:"last_id"`
		HasMore bool        `json:"has_more"`
	}{Data: []modelJSON{}}
	for _, m := range s.models {
		list.Data = append(list.Data, toModelJSON(m))
	}
	if n := len(list.Data); n > 0 {
		list.FirstID, list.LastID = &list.Data[0].ID, &list.Data[n-1].ID
	}
	s.writeJSON(x, http.StatusOK, list)
}

// injectLocked draws the injected fault for one request, if any.
func (s *Server) injectLocked() *apiError {
	c := s.cfg
	if c.Rate429+c.Rate529+c.Rate500 <= 0 {
		return nil
	}
	f := s.rng.Float64()
	switch {
	case f < c.Rate429:
		return &apiError{status: http.StatusTooManyRequests, typ: "rate_limit_error", msg: "Number of request tokens has exceeded your per-minute rate limit (https://docs.claude.com/en/api/rate-limits); see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later.", retryAfter: c.InjectedRetryAfter}
	case f < c.Rate429+c.Rate529:
		return errOverloaded
	case f < c.Rate429+c.Rate529+c.Rate500:
		return errInternal
	}
	return nil
}

func (s *Server) delayLocked() time.Duration {
	d := s.cfg.Latency
	if j := s.cfg.LatencyJitter; j > 0 {
		d += time.Duration(s.rng.Int64N(int64(j)))
	}
	return d
}

const idAlphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// newIDLocked returns prefix and 22 random characters, the shape of the
// API's msg_01…, toolu_01… and req_01… ids.
func (s *Server) newIDLocked(prefix string) string {
	b := make([]byte, len(prefix)+22)
	copy(b, prefix)
	for i := len(prefix); i < len(b); i++ {
		b[i] = idAlphabet[s.rng.IntN(len(idAlphabet))]
	}
	return string(b)
}

func (s *Server) newID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newIDLocked(prefix)
}

func (s *Server) setLimitHeaders(x *exchange) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits.refill(now)
	s.limits.setHeaders(x.w.Header(), now)
}

// fail sends err as the documented error body.
func (s *Server) fail(x *exchange, err *apiError) {
	h := x.w.Header()
	if h.Get("anthropic-ratelimit-requests-limit") == "" {
		s.setLimitHeaders(x)
	}
	if err.retryAfter > 0 {
		h.Set("retry-after", retryAfterSeconds(err.retryAfter))
	}
	for k, v := range err.header {
		h.Set(k, v)
	}
	s.writeJSON(x, err.status, errorBody{
		Type:      "error",
		Error:     errorObject{Type: err.typ, Message: err.msg},
		RequestID: x.requestID,
	})
}

func (s *Server) writeJSON(x *exchange, status int, v any) {
	x.w.Header().Set("Content-Type", "application/json")
	x.w.WriteHeader(status)
	x.w.Write(marshal(v))
}

// writeStream sends events as server-sent events, spreading delay over
// them. It stops when the client goes away.
func (s *Server) writeStream(x *exchange, events []sseEvent, delay time.Duration) {
	ctx := x.req.Context()
	h := x.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(x.w)
	per := delay / time.Duration(len(events))
	for i, e := range events {
		if !sleep(ctx, per) {
			return
		}
		if i == 0 {
			x.w.WriteHeader(http.StatusOK)
		}
		buf := make([]byte, 0, len(e.name)+len(e.data)+16)
		buf = append(buf, "event: "...)
		buf = append(buf, e.name...)
		buf = append(buf, "\ndata: "...)
		buf = append(buf, e.data...)
		buf = append(buf, "\n\n"...)
		if _, err := x.w.Write(buf); err != nil {
			return
		}
		if delay > 0 {
			rc.Flush()
		}
	}
	rc.Flush()
}

// sleep waits d, or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// A statusWriter remembers the status sent.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

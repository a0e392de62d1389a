package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults of a zero [Config].
const (
	DefaultTimeout = 60 * time.Second
	DefaultRetries = 5
)

// Config describes a run. A zero field means its documented default.
type Config struct {
	// URL is the turn endpoint, taking POST {"session_id","message"}. A
	// URL without a path means its /agent.
	URL string
	// MoreURLs are further turn endpoints of the same service (other
	// instances sharing one store): the turns go round robin over URL
	// and these, each request to the next, so one session's turns meet
	// every instance. The history is read from URL.
	MoreURLs []string
	// Sessions run at once, each its own closed loop. Zero means 1.
	Sessions int
	// Turns per session. Zero means 1.
	Turns int
	// Think is the pause between a session's answer and its next turn.
	Think time.Duration
	// Ramp spreads the sessions' starts evenly over this long.
	Ramp time.Duration
	// MaxRequests caps the turns of the whole run. Zero means no cap.
	MaxRequests int
	// Duration stops starting turns this long after the start; turns in
	// flight finish. Zero means no limit.
	Duration time.Duration
	// Timeout bounds one HTTP request. Zero means DefaultTimeout.
	Timeout time.Duration
	// ModelLatency is the model's latency per call (the simulator's
	// -latency), subtracted from each turn's latency, times its model
	// calls, to give the server's overhead.
	ModelLatency time.Duration
	// Retries is how many times a turn is sent again after a retryable
	// failure. Zero means DefaultRetries; negative means none.
	Retries int
	// Stream asks for every answer as server-sent events (see #15): the
	// report then has the time to first token, and the history check
	// also checks that each answer's text deltas join to its response.
	Stream bool
	// NoHistoryCheck turns the history check off.
	NoHistoryCheck bool
	// RunID tags this run's markers and session ids ([0-9a-z]+). Empty
	// means a random one.
	RunID string
	// SessionPrefix names the sessions: SessionPrefix + index. Empty
	// means "lg-RUNID-".
	SessionPrefix string
	// APIKey, if set, is sent on every request as "Authorization: Bearer
	// APIKey". It is never printed or put in the report.
	APIKey string
	// Client sends the requests. Nil means a client keeping one
	// connection per session alive.
	Client *http.Client
	// Progress, if set, is called every ProgressEvery while the run goes
	// on, from one goroutine, and once at the end.
	Progress func(Progress)
	// ProgressEvery is the period of Progress. Zero means 500ms.
	ProgressEvery time.Duration
}

// Progress is a run's state while it goes on.
type Progress struct {
	Done    int64         // turns answered
	Failed  int64         // turns given up
	Errors  int64         // failed requests, retried or not
	Planned int64         // turns the run means to send
	Elapsed time.Duration // since the start
	Rate    float64       // turns per second over the last period
}

// A Report is a run's outcome.
type Report struct {
	URL          string   `json:"url"`
	MoreURLs     []string `json:"more_urls,omitempty"`
	RunID        string   `json:"run_id"`
	Sessions     int      `json:"sessions"`
	TurnsPerSess int      `json:"turns_per_session"`
	ThinkMS      float64  `json:"think_ms"`
	RampMS       float64  `json:"ramp_ms"`
	ModelLatMS   float64  `json:"model_latency_ms"`

	Started time.Time `json:"started"`
	// WallSeconds is from the start to the last answer.
	WallSeconds float64 `json:"wall_seconds"`
	Turns       int     `json:"turns"`        // answered
	FailedTurns int     `json:"failed_turns"` // given up after retries
	Requests    int     `json:"requests"`     // HTTP requests sent, retries included
	Retries     int     `json:"retries"`
	// Throughput is answered turns per second of wall time.
	Throughput float64 `json:"turns_per_second"`
	// Latency is per answered turn, retries included: what a user waits.
	Latency Summary `json:"latency"`
	// Overhead is Latency less ModelLatency per model call.
	Overhead Summary `json:"overhead"`
	// TTFT is the time to the first text delta of each streamed turn
	// (Config.Stream); empty otherwise.
	TTFT Summary `json:"ttft,omitzero"`
	// Errors counts failed requests by kind ("503 store_unavailable").
	Errors map[string]int `json:"errors"`
	// TokensPerTurn and ModelCallsPerTurn average the answers' usage.
	TokensPerTurn     Tokens  `json:"tokens_per_turn"`
	ModelCallsPerTurn float64 `json:"model_calls_per_turn"`

	History HistoryReport `json:"history"`
}

// HistoryReport is the history check's outcome.
type HistoryReport struct {
	// Method says what was checked: "session_api+echo", "session_api",
	// "echo" or "none" (the server offers neither).
	Method string `json:"method"`
	// SessionsChecked through the session API; Unchecked could not be
	// read (an error other than the API being absent).
	SessionsChecked   int `json:"sessions_checked"`
	SessionsUnchecked int `json:"sessions_unchecked"`
	// EchoAnswers is how many answers were echoes the check could read.
	EchoAnswers int            `json:"echo_answers"`
	Violations  int            `json:"violations"`
	ByKind      map[string]int `json:"by_kind"`
	// Sessions is how many sessions have a violation.
	Sessions int `json:"sessions_with_violations"`
	// Details lists the violations, at most MaxDetails of them.
	Details []Violation `json:"details"`
}

// MaxDetails bounds HistoryReport.Details.
const MaxDetails = 1000

// runner is one run's shared state.
type runner struct {
	cfg    Config
	ep     endpoints
	turns  []string      // turn URLs, round robin; turns[0] is ep.turn
	next   atomic.Uint64 // the next request's index into turns
	client *http.Client
	start  time.Time
	stop   time.Time // zero: no time limit
	budget atomic.Int64
	done   atomic.Int64
	failed atomic.Int64
	errs   atomic.Int64
	// authErr is the first ErrNoKey or ErrKeyRefused a request met.
	authErr atomic.Pointer[error]
}

// sessionResult is what a session's loop measured.
type sessionResult struct {
	state      sessionState
	latency    []time.Duration
	overhead   []time.Duration
	ttft       []time.Duration
	tokens     Tokens
	modelCalls int
	requests   int
	errors     map[string]int
	violations []Violation
	echoes     int
	last       time.Time
}

// Run sends the load cfg describes and checks the histories. It returns
// an error without a Report when the run could not start; failed turns
// and violations are in the Report. When the server refused a request
// for its credential (401, 403) it returns the Report and ErrNoKey or
// ErrKeyRefused, so the caller can say what to fix. Cancelling ctx stops
// it early, with a Report of what was done.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	ep, err := parseEndpoint(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Sessions <= 0 {
		cfg.Sessions = 1
	}
	if cfg.Turns <= 0 {
		cfg.Turns = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultRetries
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 500 * time.Millisecond
	}
	if cfg.RunID == "" {
		cfg.RunID = newRunID()
	}
	for _, c := range cfg.RunID {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return nil, fmt.Errorf("%w: RunID %q: want lower-case letters and digits", ErrBadConfig, cfg.RunID)
		}
	}
	if cfg.SessionPrefix == "" {
		cfg.SessionPrefix = "lg-" + cfg.RunID + "-"
	}
	r := &runner{cfg: cfg, ep: ep, turns: []string{ep.turn}, client: cfg.Client}
	for _, u := range cfg.MoreURLs {
		more, err := parseEndpoint(u)
		if err != nil {
			return nil, err
		}
		r.turns = append(r.turns, more.turn)
	}
	if r.client == nil {
		r.client = newClient(cfg.Sessions)
		defer r.client.CloseIdleConnections()
	}
	planned := int64(cfg.Sessions) * int64(cfg.Turns)
	if cfg.MaxRequests > 0 {
		planned = min(planned, int64(cfg.MaxRequests))
	}
	r.budget.Store(planned)
	r.start = time.Now()
	if cfg.Duration > 0 {
		r.stop = r.start.Add(cfg.Duration)
	}

	results := make([]sessionResult, cfg.Sessions)
	var g errgroup.Group
	for i := range cfg.Sessions {
		g.Go(func() error { results[i] = r.session(ctx, i); return nil })
	}
	progressDone := make(chan struct{})
	var pwg sync.WaitGroup
	if cfg.Progress != nil {
		pwg.Go(func() { r.progress(planned, progressDone) })
	}
	_ = g.Wait()
	close(progressDone)
	pwg.Wait()

	rep := r.report(results)
	if !cfg.NoHistoryCheck {
		rep.History = r.checkHistory(ctx, results)
	} else {
		rep.History.Method = "none"
	}
	if err := r.authErr.Load(); err != nil {
		return rep, *err
	}
	return rep, nil
}

func (r *runner) progress(planned int64, done <-chan struct{}) {
	t := time.NewTicker(r.cfg.ProgressEvery)
	defer t.Stop()
	last, lastAt := int64(0), r.start
	for {
		var end bool
		select {
		case <-t.C:
		case <-done:
			end = true
		}
		now := time.Now()
		n := r.done.Load()
		p := Progress{Done: n, Failed: r.failed.Load(), Errors: r.errs.Load(), Planned: planned, Elapsed: now.Sub(r.start)}
		if dt := now.Sub(lastAt).Seconds(); dt > 0 {
			p.Rate = float64(n-last) / dt
		}
		if end {
			p.Rate = float64(n) / max(p.Elapsed.Seconds(), 1e-9)
		}
		last, lastAt = n, now
		r.cfg.Progress(p)
		if end {
			return
		}
	}
}

// session runs one session's closed loop.
func (r *runner) session(ctx context.Context, i int) sessionResult {
	res := sessionResult{state: sessionState{index: i, id: r.cfg.SessionPrefix + fmt.Sprint(i)}, errors: map[string]int{}}
	if r.cfg.Ramp > 0 && r.cfg.Sessions > 1 {
		if !sleep(ctx, r.cfg.Ramp*time.Duration(i)/time.Duration(r.cfg.Sessions)) {
			return res
		}
	}
	for turn := 1; turn <= r.cfg.Turns; turn++ {
		if turn > 1 && r.cfg.Think > 0 && !sleep(ctx, r.cfg.Think) {
			break
		}
		if ctx.Err() != nil || (!r.stop.IsZero() && time.Now().After(r.stop)) || r.budget.Add(-1) < 0 {
			break
		}
		if !r.turn(ctx, &res, turn) {
			res.state.failed = turn
			r.failed.Add(1)
			break
		}
		res.state.acked = turn
		r.done.Add(1)
	}
	return res
}

// turn sends one turn, with retries, and records it. It reports whether
// the turn was answered.
func (r *runner) turn(ctx context.Context, res *sessionResult, turn int) bool {
	mk := marker{run: r.cfg.RunID, session: res.state.index, turn: turn}
	body, _ := json.Marshal(map[string]string{"session_id": res.state.id, "message": mk.String()})
	start := time.Now()
	for attempt := 0; ; attempt++ {
		var rep reply
		var sr streamReply
		target := r.turns[(r.next.Add(1)-1)%uint64(len(r.turns))]
		if r.cfg.Stream {
			sr = postStream(ctx, r.client, target, body, mk.String(), r.cfg.APIKey, r.cfg.Timeout)
			rep = sr.reply
		} else {
			rep = post(ctx, r.client, target, body, mk.String(), r.cfg.APIKey, r.cfg.Timeout)
		}
		res.requests++
		if rep.err == nil && rep.status == http.StatusOK {
			var a turnAnswer
			if err := json.Unmarshal(rep.body, &a); err == nil {
				r.record(res, mk, a, time.Since(start))
				if r.cfg.Stream {
					r.recordStream(res, mk, a, sr)
				}
				return true
			}
			rep.err = fmt.Errorf("decode answer: not a JSON object")
		}
		r.errs.Add(1)
		if rep.err != nil && rep.status == http.StatusOK {
			res.errors["200 bad_answer"]++
			return false
		}
		res.errors[rep.kind()]++
		if err := rep.authErr(r.cfg.APIKey != ""); err != nil {
			r.authErr.CompareAndSwap(nil, &err)
		}
		if !rep.retryable() || (r.cfg.Retries > 0 && attempt >= r.cfg.Retries) || r.cfg.Retries < 0 {
			return false
		}
		if !sleep(ctx, backoff(attempt, rep.retryAfter)) {
			return false
		}
	}
}

func (r *runner) record(res *sessionResult, mk marker, a turnAnswer, d time.Duration) {
	res.last = time.Now()
	res.latency = append(res.latency, d)
	calls := max(a.ModelCalls, 1)
	res.overhead = append(res.overhead, d-time.Duration(calls)*r.cfg.ModelLatency)
	res.modelCalls += calls
	res.tokens = res.tokens.add(a.Usage)
	if r.cfg.NoHistoryCheck {
		return
	}
	if a.Turn != 0 && a.Turn != int64(mk.turn) {
		res.violations = append(res.violations, Violation{Session: res.state.id, Turn: mk.turn, Kind: KindTurnNumber, Source: "answer",
			Detail: fmt.Sprintf("answered as turn %d", a.Turn)})
	}
	if _, _, ok := parseEcho(a.Response); ok {
		res.echoes++
		res.violations = append(res.violations, checkEcho(res.state.id, mk.turn, mk.String(), 2*mk.turn-1, a.Response, "answer")...)
	}
}

// backoff waits 100ms·2^attempt with full jitter, capped at 5s, and at
// least what the server's Retry-After asked (capped at 30s).
func backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := min(100*time.Millisecond<<min(attempt, 6), 5*time.Second)
	d = d/2 + mrand.N(d/2+1)
	return max(d, min(retryAfter, 30*time.Second))
}

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

func (r *runner) report(results []sessionResult) *Report {
	rep := &Report{
		URL: r.ep.turn, MoreURLs: r.turns[1:], RunID: r.cfg.RunID, Sessions: r.cfg.Sessions, TurnsPerSess: r.cfg.Turns,
		ThinkMS: ms(r.cfg.Think), RampMS: ms(r.cfg.Ramp), ModelLatMS: ms(r.cfg.ModelLatency),
		Started: r.start, Errors: map[string]int{},
	}
	var lat, over, ttft []time.Duration
	var tokens Tokens
	var calls int
	last := r.start
	for _, s := range results {
		lat = append(lat, s.latency...)
		over = append(over, s.overhead...)
		ttft = append(ttft, s.ttft...)
		tokens = tokens.add(s.tokens)
		calls += s.modelCalls
		rep.Requests += s.requests
		if s.state.failed != 0 {
			rep.FailedTurns++
		}
		for k, n := range s.errors {
			rep.Errors[k] += n
		}
		if s.last.After(last) {
			last = s.last
		}
	}
	rep.Turns = len(lat)
	rep.Retries = rep.Requests - rep.Turns - rep.FailedTurns
	rep.WallSeconds = last.Sub(r.start).Seconds()
	if rep.WallSeconds > 0 {
		rep.Throughput = float64(rep.Turns) / rep.WallSeconds
	}
	rep.Latency = summarize(lat)
	rep.Overhead = summarize(over)
	rep.TTFT = summarize(ttft)
	rep.TokensPerTurn = tokens.div(float64(rep.Turns))
	if rep.Turns > 0 {
		rep.ModelCallsPerTurn = float64(calls) / float64(rep.Turns)
	}
	return rep
}

// checkHistory reads every session that saw a turn through the session
// API and adds the answers' own violations.
func (r *runner) checkHistory(ctx context.Context, results []sessionResult) HistoryReport {
	h := HistoryReport{ByKind: map[string]int{}}
	var all []Violation
	for _, s := range results {
		all = append(all, s.violations...)
		h.EchoAnswers += s.echoes
	}
	type got struct {
		status int
		msgs   []json.RawMessage
		ok     bool // the reply was read
	}
	views := make([]got, len(results))
	var g errgroup.Group
	g.SetLimit(16)
	for i, s := range results {
		if s.state.acked == 0 && s.state.failed == 0 {
			continue
		}
		g.Go(func() error {
			rep := get(ctx, r.client, r.ep.sessions+s.state.id, r.cfg.APIKey, r.cfg.Timeout)
			if rep.err != nil {
				return nil
			}
			views[i] = got{status: rep.status, ok: true}
			if rep.status == http.StatusOK {
				var v struct {
					Messages []json.RawMessage `json:"messages"`
				}
				if err := json.Unmarshal(rep.body, &v); err != nil || v.Messages == nil {
					views[i].ok = false
					return nil
				}
				views[i].msgs = v.Messages
			}
			return nil
		})
	}
	_ = g.Wait()
	api := false
	for _, v := range views {
		if v.ok && v.status == http.StatusOK {
			api = true
		}
	}
	for i, s := range results {
		if s.state.acked == 0 && s.state.failed == 0 {
			continue
		}
		v := views[i]
		switch {
		case !api:
		case v.ok && v.status == http.StatusOK:
			h.SessionsChecked++
			all = append(all, checkTranscript(r.cfg.RunID, s.state, v.msgs)...)
		case v.ok && v.status == http.StatusNotFound:
			h.SessionsChecked++
			if s.state.acked > 0 {
				all = append(all, Violation{Session: s.state.id, Kind: KindLost, Source: "session",
					Detail: fmt.Sprintf("the session API does not know the session: all %d acknowledged turns lost", s.state.acked)})
			}
		default:
			h.SessionsUnchecked++
		}
	}
	switch {
	case api && h.EchoAnswers > 0:
		h.Method = "session_api+echo"
	case api:
		h.Method = "session_api"
	case h.EchoAnswers > 0:
		h.Method = "echo"
	default:
		h.Method = "none"
	}
	sort.SliceStable(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if len(a.Session) != len(b.Session) {
			return len(a.Session) < len(b.Session) // lg-x-2 before lg-x-10
		}
		if a.Session != b.Session {
			return a.Session < b.Session
		}
		return a.Turn < b.Turn
	})
	sessions := map[string]bool{}
	for _, v := range all {
		h.ByKind[v.Kind]++
		sessions[v.Session] = true
	}
	h.Violations = len(all)
	h.Sessions = len(sessions)
	h.Details = all[:min(len(all), MaxDetails)]
	return h
}

// newRunID returns 6 random letters and digits: runs against one server
// (a reused Redis, a kept dev database) do not share sessions.
func newRunID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 6)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b)
}

package agent

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/session"
)

// Defaults for a zero [Config].
const (
	DefaultModel         = "claude-sonnet-5-5"
	DefaultMaxTokens     = 4096
	DefaultLeaseTTL      = 15 * time.Second
	DefaultQueueWait     = 30 * time.Second
	DefaultMaxModelCalls = 10
	DefaultCommitTimeout = 5 * time.Second
	DefaultTurnTimeout   = 10 * time.Minute
	// DefaultMaxParallelTools bounds the tool calls of one reply that run
	// at once.
	DefaultMaxParallelTools = 8
	// Caps of hostile or runaway input (see caps.go and #13).
	DefaultMaxMessageBytes    = 100 << 10
	DefaultMaxSessionBytes    = 8 << 20
	DefaultMaxToolResultBytes = 100 << 10
	// MinMaxToolResultBytes is the smallest Config.MaxToolResultBytes: a
	// cut result needs room for its note.
	MinMaxToolResultBytes = 1 << 10
)

// BusyPolicy says what a turn does when another turn of the same session
// is in flight.
type BusyPolicy string

const (
	// Queue waits (up to Config.QueueWait) and then runs on top of the
	// finished turn.
	Queue BusyPolicy = "queue"
	// Reject answers at once with a *session.BusyError (HTTP 409).
	Reject BusyPolicy = "reject"
)

// Config tunes an [Agent]. A zero field means its default.
type Config struct {
	// Model is the Messages API model. Zero means DefaultModel.
	Model string
	// MaxTokens caps each reply. Zero means DefaultMaxTokens.
	MaxTokens int
	// System is the system prompt; empty sends none.
	System string
	// Busy is the policy for concurrent turns on one session. Zero means Queue.
	Busy BusyPolicy
	// QueueWait bounds the wait under Queue. Zero means DefaultQueueWait.
	QueueWait time.Duration
	// LeaseTTL is the session lease's lifetime; a turn renews it every
	// third of it while the model and tools run. A crashed process blocks
	// its sessions for at most this long. Zero means DefaultLeaseTTL.
	LeaseTTL time.Duration
	// MaxModelCalls bounds the model calls of one turn (tool loops). The
	// last allowed call is made with tools disabled so the turn always ends
	// on an answer. Zero means DefaultMaxModelCalls.
	MaxModelCalls int
	// PromptCache is the prompt-cache lifetime asked of the API: "5m", "1h"
	// or "off". Zero means "5m". See [Agent.buildPrefix].
	PromptCache string
	// CommitTimeout bounds the final commit, which runs detached from the
	// caller's context. Zero means DefaultCommitTimeout.
	CommitTimeout time.Duration
	// TurnTimeout bounds a turn once it holds the lease: its model calls
	// and tools run detached from the caller's cancellation (see
	// [Agent.Run]), so this, or the caller's deadline if sooner, is what
	// stops them. Zero means DefaultTurnTimeout.
	TurnTimeout time.Duration
	// MaxParallelTools bounds the tool calls of one reply that run at
	// once; the others wait for a free place. Zero means
	// DefaultMaxParallelTools.
	MaxParallelTools int
	// DropBoundThinking asks the API to drop, rather than reject with
	// 400, a thinking block bound to another prefix
	// (thinking.block_binding.prefix_mismatch_behavior "drop_block", with
	// its beta header). Sessions pin their prefix (see pin.go), so only
	// sessions broken before that, or edited by hand, need it; dropped
	// thinking costs more and may lower quality. It sends thinking
	// {"type":"adaptive"}: only for models with adaptive thinking.
	DropBoundThinking bool

	// MaxMessageBytes caps Request.Message: a longer one is refused with
	// ErrMessageTooLarge (413). Zero means DefaultMaxMessageBytes.
	MaxMessageBytes int
	// MaxSessionBytes caps a session's stored history (the sum of its
	// messages' JSON): a model call that would send more is refused with
	// ErrSessionFull (413), before the model is called. Zero means
	// DefaultMaxSessionBytes.
	MaxSessionBytes int
	// MaxToolResultBytes caps a tool_result block: a larger one is cut to
	// fit, with a note to Claude, before it is saved or sent. Zero means
	// DefaultMaxToolResultBytes; less than MinMaxToolResultBytes means
	// MinMaxToolResultBytes.
	MaxToolResultBytes int

	// History is the history strategy of new sessions (see strategy.go);
	// a turn may name another for its new session (Request.History).
	// Zero means HistoryFull.
	History History
	// HistoryWindowTurns is how many turns the window strategy sends at
	// most. Zero means DefaultHistoryWindowTurns.
	HistoryWindowTurns int
	// HistoryTriggerTokens is the input size, in tokens, past which the
	// API compacts (compact) or clears tool results (clear_tool_uses).
	// Zero sends no trigger: the API's defaults, 150,000 and 100,000.
	HistoryTriggerTokens int
	// CompactInstructions are added to the API's summarising prompt under
	// compact. Empty sends none.
	CompactInstructions string
}

// betaBlockBinding is the beta header of thinking.block_binding.
const betaBlockBinding = "thinking-binding-controls-2026-08-01"

// Model is the part of the Claude client a turn uses. Decorators (limits,
// telemetry) wrap it; they read the request's model and max_tokens from
// [claude.Request] rather than parse its body.
type Model interface {
	// Create sends a Messages API request and returns the reply, whose
	// Usage.CostUSD says what it cost.
	Create(ctx context.Context, req claude.Request) (*claude.Reply, error)
}

// Agent runs turns. It is safe for concurrent use; build one per process.
type Agent struct {
	store  session.Store
	model  Model
	tools  Tools
	cfg    Config
	prefix []byte // `{"model":…[,"cache_control":…]` built once
	cc     []byte // the cache_control object of requests, nil when off
	betas  []string
	// cur is the current system prompt and tools, pinned form, cached
	// while the tool definitions do not change (see currentPin).
	cur atomic.Pointer[current]
}

// New builds an Agent. tools may be nil.
func New(store session.Store, model Model, tools Tools, cfg Config) (*Agent, error) {
	if store == nil {
		return nil, errors.New("agent: nil session.Store")
	}
	if model == nil {
		return nil, errors.New("agent: nil Model")
	}
	if cfg.Model == "" {
		cfg.Model = DefaultModel
	}
	if cfg.MaxTokens <= 0 {
		cfg.MaxTokens = DefaultMaxTokens
	}
	switch cfg.Busy {
	case "":
		cfg.Busy = Queue
	case Queue, Reject:
	default:
		return nil, fmt.Errorf("agent: unknown busy policy %q (want queue or reject)", cfg.Busy)
	}
	if cfg.QueueWait <= 0 {
		cfg.QueueWait = DefaultQueueWait
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.MaxModelCalls <= 0 {
		cfg.MaxModelCalls = DefaultMaxModelCalls
	}
	switch cfg.PromptCache {
	case "":
		cfg.PromptCache = "5m"
	case "5m", "1h", "off":
	default:
		return nil, fmt.Errorf("agent: unknown prompt cache %q (want 5m, 1h or off)", cfg.PromptCache)
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = DefaultCommitTimeout
	}
	if cfg.TurnTimeout <= 0 {
		cfg.TurnTimeout = DefaultTurnTimeout
	}
	if cfg.MaxParallelTools <= 0 {
		cfg.MaxParallelTools = DefaultMaxParallelTools
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.MaxSessionBytes <= 0 {
		cfg.MaxSessionBytes = DefaultMaxSessionBytes
	}
	if cfg.MaxToolResultBytes <= 0 {
		cfg.MaxToolResultBytes = DefaultMaxToolResultBytes
	}
	cfg.MaxToolResultBytes = max(cfg.MaxToolResultBytes, MinMaxToolResultBytes)
	h, err := ParseHistory(string(cfg.History))
	if err != nil {
		return nil, fmt.Errorf("agent: Config.History: %w", err)
	}
	cfg.History = h
	if cfg.HistoryWindowTurns <= 0 {
		cfg.HistoryWindowTurns = DefaultHistoryWindowTurns
	}
	if cfg.HistoryTriggerTokens < 0 {
		return nil, fmt.Errorf("agent: Config.HistoryTriggerTokens = %d: want ≥ 0", cfg.HistoryTriggerTokens)
	}
	a := &Agent{store: store, model: model, tools: tools, cfg: cfg}
	a.prefix = a.buildPrefix()
	if cfg.DropBoundThinking {
		a.betas = []string{betaBlockBinding}
	}
	return a, nil
}

// Config returns the agent's configuration with defaults applied.
func (a *Agent) Config() Config { return a.cfg }

// Request is one turn asked of the agent.
type Request struct {
	SessionID string
	Message   string
	// IdempotencyKey, if set, makes the turn run at most once per session.
	IdempotencyKey string
	// Tenant names who the turn is for (the authenticated caller's
	// tenant). It namespaces the session in the store (see
	// [Request.StoreID]) and keys limits, budgets and metrics. Empty
	// means the default tenant; otherwise it must pass
	// auth.ValidTenant, or Run returns ErrBadRequest.
	Tenant string
	// History names the history strategy of a new session ("full",
	// "compact", "clear_tool_uses" or "window"; see strategy.go). Empty
	// means the session's, or for a new one Config.History. Naming
	// another than an existing session's is ErrBadRequest.
	History string
	// Sink, if set, sees the turn as it runs and makes its model calls
	// stream (see #15). Nil runs the turn as before.
	Sink Sink
}

// StoreID returns the id under which the store keeps the request's
// session: [session.Scope] of its tenant and session id. Every store call
// of a turn, and every per-session key of its decorators (budgets, kill
// switch, usage), uses it, so two tenants naming the same session id
// never share anything (see #13). Answers keep the client's SessionID.
func (r Request) StoreID() string { return session.Scope(r.Tenant, r.SessionID) }

// checkTenant rejects a tenant name that could not be part of a key.
func checkTenant(tenant string) error {
	if tenant == "" {
		return nil
	}
	if err := auth.ValidTenant(tenant); err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	return nil
}

// Result is a turn's answer. Its JSON form is what the HTTP API returns
// and what an idempotent repeat gets back byte for byte.
type Result struct {
	Response   string       `json:"response"`
	SessionID  string       `json:"session_id"`
	Turn       int64        `json:"turn"`
	StopReason string       `json:"stop_reason"`
	ModelCalls int          `json:"model_calls"`
	Usage      claude.Usage `json:"usage"`
	RequestID  string       `json:"request_id,omitempty"`
	// Limit names the limit that ended the turn's tool loop:
	// "max_model_calls" when the last allowed model call was made with
	// tools off (see Config.MaxModelCalls). Empty when Claude ended it.
	Limit string `json:"limit,omitempty"`
	// StopDetails is the stop_details object of a refusal, as Claude sent
	// it (its category and explanation); absent otherwise.
	StopDetails json.RawMessage `json:"stop_details,omitempty"`
}

// Answer is a finished turn: its Result and the JSON encoding of it.
type Answer struct {
	Result Result
	// JSON is the encoded Result, as stored for idempotent repeats.
	JSON []byte
	// Replayed reports that the answer came from the idempotency record and
	// no model was called.
	Replayed bool
}

// Run runs one turn.
//
// Cancelling ctx stops a turn only while it waits for the session. Once
// the turn holds the lease it runs to the end, model calls and commit
// included, even if the caller hangs up: a client that gives up early (an
// API Gateway timeout, a closed tab) and retries with the same idempotency
// key then gets the stored answer instead of paying for a second model
// call, and the session is never left waiting on a turn nobody finishes.
// The turn is bounded by Config.TurnTimeout, or by ctx's deadline when it
// is sooner (a Lambda invocation's end), so a deadline still stops it;
// stopped, it writes nothing. See #4.
func (a *Agent) Run(ctx context.Context, req Request) (*Answer, error) {
	if err := session.ValidID(req.SessionID); err != nil {
		return nil, err
	}
	if req.Message == "" {
		return nil, fmt.Errorf("%w: empty message", ErrBadRequest)
	}
	if err := checkTenant(req.Tenant); err != nil {
		return nil, err
	}
	if err := a.checkMessage(req.Message); err != nil {
		return nil, err
	}
	ctx = withEvents(withRequest(ctx, req), req.Sink)
	sid := req.StoreID()
	token := newToken()
	start := time.Now()
	var stats turnStats
	st, err := a.begin(ctx, session.BeginRequest{
		ID:             sid,
		LeaseToken:     token,
		LeaseTTL:       a.cfg.LeaseTTL,
		IdempotencyKey: req.IdempotencyKey,
		RequestHash:    requestHash(req),
	})
	if err != nil {
		return nil, err
	}
	stats.time.store = time.Since(start)
	if st.Replay != nil {
		var r Result
		if err := json.Unmarshal(st.Replay, &r); err != nil {
			return nil, fmt.Errorf("decode stored answer of session %s: %w", req.SessionID, err)
		}
		return &Answer{Result: r, JSON: st.Replay, Replayed: true}, nil
	}

	// From here we hold the lease: every exit either commits or releases.
	committed := false
	defer func() {
		if !committed {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CommitTimeout)
			defer cancel()
			_ = a.store.Release(rctx, sid, token)
		}
	}()

	eventsFrom(ctx).start(req.SessionID, st.Turns+1)
	tctx, cancelTurn := a.turnContext(ctx)
	defer cancelTurn()
	// A server that stops cancels its requests with ErrShuttingDown once
	// its grace period is over: unlike a client that hangs up, that stops
	// the turn, which then releases the session without writing (#17).
	stopOnShutdown := context.AfterFunc(ctx, func() {
		if errors.Is(context.Cause(ctx), apierr.ErrShuttingDown) {
			cancelTurn()
		}
	})
	defer stopOnShutdown()
	tctx, stopRenew := a.keepLease(tctx, sid, token)
	// After checkpoints (a turn that ran tools), msgs are the messages
	// since the last one and version is the session's version after it.
	res, msgs, counters, version, err := a.loop(tctx, req, st, token, &stats)
	pinned := a.pinFor(st, req)
	if cause := context.Cause(tctx); err != nil && errors.Is(cause, session.ErrLeaseLost) {
		// keepLease stopped the turn: say why (409, retry), rather than the
		// context.Canceled it surfaced as (499, as if the client left).
		err = cause
	} else if err != nil && errors.Is(context.Cause(ctx), apierr.ErrShuttingDown) {
		err = fmt.Errorf("turn of session %s: %w", req.SessionID, apierr.ErrShuttingDown)
	}
	stopRenew()
	if err != nil {
		return nil, err
	}
	res.Turn = st.Turns + 1
	eventsFrom(ctx).finish(res.Response)
	out, err := json.Marshal(res)
	if err != nil {
		return nil, fmt.Errorf("encode answer: %w", err)
	}

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.CommitTimeout)
	defer cancel()
	_, err = a.store.Commit(cctx, session.Commit{
		ID:             sid,
		LeaseToken:     token,
		Version:        version,
		Messages:       msgs,
		Turns:          1,
		Counters:       counters,
		Release:        true,
		IdempotencyKey: req.IdempotencyKey,
		RequestHash:    requestHash(req),
		Response:       out,
		Pinned:         pinned,
		Record:         record(res, stats.from, version+int64(len(msgs)), stats.time, start),
		Cut:            stats.cut,
	})
	if err != nil && a.landed(cctx, sid, version, msgs) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("commit turn %d of session %s: %w", res.Turn, req.SessionID, err)
	}
	committed = true
	return &Answer{Result: res, JSON: out}, nil
}

// landed reports whether a commit that returned an error was in fact
// applied. A client library that resends a command whose reply was lost
// (go-redis does on a timeout or EOF) sees the second attempt fail, on a
// lease the first attempt released, although the first one wrote the turn;
// telling the client "nothing was saved" would make it send the turn again.
// Only on the failure path: it costs one more read.
func (a *Agent) landed(ctx context.Context, id string, from int64, msgs []json.RawMessage) bool {
	st, err := a.store.Load(ctx, id)
	if err != nil || st.Version < from+int64(len(msgs)) {
		return false
	}
	for i, m := range msgs {
		if !bytes.Equal(st.Messages[from+int64(i)], m) {
			return false
		}
	}
	return true
}

// turnContext returns the context a turn runs on once it holds the lease:
// ctx's values without its cancellation, ending at Config.TurnTimeout or
// at ctx's deadline, whichever is sooner.
func (a *Agent) turnContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(a.cfg.TurnTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// begin calls Store.Begin, waiting for a busy session under the Queue
// policy with jittered polling.
func (a *Agent) begin(ctx context.Context, br session.BeginRequest) (*session.State, error) {
	var deadline time.Time
	wait := 5 * time.Millisecond
	for {
		st, err := a.store.Begin(ctx, br)
		var busy *session.BusyError
		if !errors.As(err, &busy) || a.cfg.Busy == Reject {
			return st, err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(a.cfg.QueueWait)
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		// Poll faster than the lease expires: a turn usually releases long
		// before. Full jitter spreads the waiters.
		d := min(wait, busy.RetryAfter+time.Millisecond)
		t := time.NewTimer(mrand.N(d) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for session %s: %w", br.ID, ctx.Err())
		case <-t.C:
		}
		wait = min(wait*2, 200*time.Millisecond)
	}
}

// keepLease renews the lease every third of its TTL until stop is called.
// If the lease is lost the returned context is cancelled so the turn stops
// early; its commit would fail anyway.
func (a *Agent) keepLease(ctx context.Context, id, token string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(a.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if err := a.store.Renew(ctx, id, token, a.cfg.LeaseTTL); errors.Is(err, session.ErrLeaseLost) {
					cancel(err) // the store's error names the session and the lease
					return
				}
			}
		}
	}()
	return ctx, func() {
		close(done)
		<-exited
		cancel(nil)
	}
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// requestHash identifies a turn request for idempotency: the same key with
// another message is a client bug that must not get the old answer.
//
// It covers the tenant, so a record can never answer another tenant's
// request, even though the records already live in the tenant's own
// session keys (see #13). The default tenant's hash is what it was before
// tenants, so records and pending marks written then still match; a
// tenant's starts with a byte no session id starts with, so the two forms
// cannot meet.
func requestHash(r Request) string {
	h := sha256.New()
	if r.Tenant != "" && r.Tenant != session.DefaultTenant {
		h.Write([]byte{1})
		h.Write([]byte(r.Tenant))
		h.Write([]byte{0})
	}
	h.Write([]byte(r.SessionID))
	h.Write([]byte{0})
	h.Write([]byte(r.Message))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

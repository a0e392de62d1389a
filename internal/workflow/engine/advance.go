package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/auth"
	"github.com/lambdagent/lambdagent/internal/workflow"
)

// A suspension ends a walk at a sleep or a wait: the run is committed as
// status, with its timer at due (zero: no timer).
type suspension struct {
	status string
	due    time.Time
}

func (s *suspension) Error() string { return "workflow: run " + s.status }

// A stepFailure ends a walk at a step that failed for good.
type stepFailure struct {
	key, msg string
}

func (f *stepFailure) Error() string { return fmt.Sprintf("step %s: %s", f.key, f.msg) }

// Advance takes the run's lease and walks it as far as it goes: to its
// end, to a sleep or a wait, or to a failure, committing each step. It
// returns nil when another advancer holds the run or the run ended. When
// ctx ends mid-walk it stops without releasing the lease, as a crash
// would: the run is picked up again when the lease expires.
func (e *Engine) Advance(ctx context.Context, storeID string) error {
	_, err := e.advance(ctx, storeID, false)
	return err
}

// An Outcome says where a walk of [Engine.AdvanceUntil] left the run.
type Outcome struct {
	// Status is the run's status after the walk; empty when the walk did
	// not take the run (another advancer holds it, or it does not exist).
	Status string
	// Due is when a sleeping or waiting run's timer fires; zero for none.
	Due time.Time
	// Cut means ctx ended mid-walk: the run is still running, its lease
	// released and its timer due at once, and must be handed on.
	Cut bool
	// Busy means another advancer holds the run's lease.
	Busy bool
}

// AdvanceUntil is Advance for a driver with a deadline (a Lambda
// invocation): when ctx ends mid-walk it releases the lease at once,
// with the run's timer due now, instead of leaving the lease to expire,
// so that the invocation the rest is handed to can take the run without
// waiting out the lease (and the timer loop picks it up if the hand-off
// is lost). What was cut is safe to run again: a completed step is never
// re-run, and a cut tool call is repeated with the same tool_use_id.
func (e *Engine) AdvanceUntil(ctx context.Context, storeID string) (Outcome, error) {
	return e.advance(ctx, storeID, true)
}

func (e *Engine) advance(ctx context.Context, storeID string, releaseOnCut bool) (Outcome, error) {
	token := randomHex(16)
	ttl := e.cfg.LeaseTTL
	snap, err := e.cfg.Store.Acquire(ctx, storeID, token, ttl, e.cfg.Clock.Now().Add(ttl))
	var busy *BusyError
	switch {
	case errors.As(err, &busy):
		return Outcome{Busy: true}, nil
	case errors.Is(err, ErrNotFound):
		return Outcome{}, nil
	case err != nil:
		return Outcome{}, err
	}
	a := &advance{e: e, snap: snap, storeID: storeID, token: token}
	for _, r := range snap.Steps {
		a.seq = max(a.seq, r.Seq)
	}
	end := func(c Commit) (Outcome, error) {
		status := c.Status
		if status == "" {
			status = snap.Run.Status
		}
		if err := a.finish(c); err != nil {
			return Outcome{}, err
		}
		return Outcome{Status: status, Due: c.Due}, nil
	}
	if Final(snap.Run.Status) {
		return end(Commit{Release: true})
	}
	a.def = e.defs[snap.Run.Workflow]
	if a.def == nil {
		return end(Commit{Status: Failed, Error: fmt.Sprintf("workflow %q is not defined in this deployment", snap.Run.Workflow), Release: true})
	}
	if err := json.Unmarshal(snap.Run.Input, &a.input); err != nil && len(snap.Run.Input) > 0 {
		return end(Commit{Status: Failed, Error: "stored input is not JSON", Release: true})
	}

	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := a.keepLease(wctx, cancel)
	out, err := a.list(wctx, a.def.Steps, &scope{}, "")
	stop()
	var susp *suspension
	var fail *stepFailure
	switch {
	case err == nil:
		b, _ := json.Marshal(out)
		return end(Commit{Status: Completed, Output: b, Release: true})
	case errors.As(err, &susp):
		return end(Commit{Status: susp.status, Due: susp.due, Release: true})
	case errors.As(err, &fail):
		return end(Commit{Status: Failed, Error: fail.Error(), Release: true})
	case errors.Is(err, ErrCanceled):
		return Outcome{Status: Canceled}, nil
	}
	if cause := context.Cause(wctx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return Outcome{}, cause // the lease was lost
	}
	if releaseOnCut && ctx.Err() != nil {
		// Every branch of the walk has returned: nothing of ours still
		// runs, so the lease can go now.
		if ferr := a.finish(Commit{Due: e.cfg.Clock.Now(), Release: true}); ferr != nil {
			return Outcome{}, ferr
		}
		return Outcome{Status: Running, Cut: true}, nil
	}
	return Outcome{}, err
}

type advance struct {
	e       *Engine
	def     *workflow.Definition
	storeID string
	token   string
	input   any

	kindsOnce sync.Once
	kinds     map[string]string // step id → kind, built on first use

	mu   sync.Mutex // guards snap.Steps, snap.Events and seq
	snap *Snapshot
	seq  int64
}

// keepLease renews the lease every third of its TTL until stop; a lost
// lease cancels the walk.
func (a *advance) keepLease(ctx context.Context, cancel context.CancelCauseFunc) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		ttl := a.e.cfg.LeaseTTL
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				err := a.e.cfg.Store.Renew(ctx, a.storeID, a.token, ttl, a.e.cfg.Clock.Now().Add(ttl))
				if errors.Is(err, ErrLeaseLost) {
					cancel(err)
					return
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// finish writes the run's outcome, detached from the walk's context.
func (a *advance) finish(c Commit) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	c.Now = a.e.cfg.Clock.Now()
	a.mu.Lock()
	c.KnownEvents = len(a.snap.Events)
	a.mu.Unlock()
	err := a.e.cfg.Store.Commit(ctx, a.storeID, a.token, c)
	if errors.Is(err, ErrCanceled) {
		a.count("workflow_runs", "outcome", Canceled)
		return nil
	}
	if err == nil && Final(c.Status) {
		a.count("workflow_runs", "outcome", c.Status)
	}
	return err
}

func (a *advance) count(name string, labels ...string) {
	if m := a.e.cfg.Metrics; m != nil {
		m.Count(name, 1, append([]string{"workflow", a.snap.Run.Workflow}, labels...)...)
	}
}

// commit writes one step record, detached from ctx: what a step did is
// kept even when the worker is being stopped.
func (a *advance) commit(rec StepRecord, consume string) error {
	a.mu.Lock()
	if old, ok := a.snap.Steps[rec.Key]; ok {
		rec.Seq = old.Seq
	} else {
		a.seq++
		rec.Seq = a.seq
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	if err := a.e.cfg.Store.Commit(ctx, a.storeID, a.token, Commit{Steps: []StepRecord{rec}, ConsumeEvent: consume, Now: a.e.cfg.Clock.Now()}); err != nil {
		return err
	}
	if rec.Status == Completed || rec.Status == Failed {
		a.count("workflow_steps", "kind", a.kindOf(rec.ID), "outcome", rec.Status)
	}
	a.mu.Lock()
	a.snap.Steps[rec.Key] = rec
	if consume != "" {
		delete(a.snap.Events, consume)
	}
	a.mu.Unlock()
	return nil
}

// kindOf is the kind of step id (for metrics).
func (a *advance) kindOf(id string) string {
	{
		a.kindsOnce.Do(func() {
			a.kinds = map[string]string{}
			var walk func([]workflow.Step)
			walk = func(steps []workflow.Step) {
				for i := range steps {
					s := &steps[i]
					a.kinds[s.ID] = s.Kind()
					for _, b := range s.Parallel {
						walk(b)
					}
					if s.Map != nil {
						walk(s.Map.Steps)
					}
				}
			}
			walk(a.def.Steps)
		})
	}
	return a.kinds[id]
}

func (a *advance) record(key string) (StepRecord, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.snap.Steps[key]
	return r, ok
}

// A scope is what templates see of step outputs: a map element's steps
// see their own outputs over those of the enclosing lists.
type scope struct {
	parent  *scope
	mu      sync.Mutex
	outputs map[string]any
	item    any
	index   int
	hasItem bool
}

func (s *scope) set(id string, v any) {
	s.mu.Lock()
	if s.outputs == nil {
		s.outputs = map[string]any{}
	}
	s.outputs[id] = v
	s.mu.Unlock()
}

func (a *advance) data(s *scope) func() map[string]any {
	return func() map[string]any {
		var chain []*scope
		for c := s; c != nil; c = c.parent {
			chain = append(chain, c)
		}
		steps := map[string]any{}
		d := map[string]any{"input": a.input, "steps": steps}
		for i := len(chain) - 1; i >= 0; i-- {
			c := chain[i]
			c.mu.Lock()
			for k, v := range c.outputs {
				steps[k] = map[string]any{"output": v}
			}
			c.mu.Unlock()
			if c.hasItem {
				d["item"], d["index"] = c.item, c.index
			}
		}
		return d
	}
}

// list walks steps and returns the last output.
func (a *advance) list(ctx context.Context, steps []workflow.Step, sc *scope, prefix string) (any, error) {
	index := make(map[string]int, len(steps))
	for i, s := range steps {
		index[s.ID] = i
	}
	visits := map[string]int{}
	var last any
	for i := 0; i < len(steps); {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s := &steps[i]
		n := visits[s.ID]
		visits[s.ID]++
		if n >= a.e.cfg.MaxVisits {
			return nil, &stepFailure{key: s.ID, msg: fmt.Sprintf("ran %d times in a loop; stopping", n)}
		}
		key := prefix + s.ID
		if n > 0 {
			key += "#" + strconv.Itoa(n)
		}
		out, next, err := a.step(ctx, s, key, sc, prefix)
		if err != nil {
			return nil, err
		}
		sc.set(s.ID, out)
		last = out
		switch next {
		case "":
			i++
		case workflow.End:
			i = len(steps)
		default:
			i = index[next]
		}
	}
	return last, nil
}

func decode(raw json.RawMessage) any {
	var v any
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &v)
	}
	return v
}

// step runs one step unless its record says it ran. It returns the
// step's output and, for a jump, the id of the next step.
func (a *advance) step(ctx context.Context, s *workflow.Step, key string, sc *scope, prefix string) (any, string, error) {
	rec, ok := a.record(key)
	// A parallel step's branches are walked even when it completed: their
	// steps' outputs belong to the enclosing scope, where later templates
	// read them. They all have records, so nothing runs.
	if ok && rec.Status == Completed && s.Kind() != "parallel" {
		return decode(rec.Output), rec.Next, nil
	}
	if ok && rec.Status == Failed {
		return nil, "", &stepFailure{key: key, msg: rec.Error}
	}
	now := a.e.cfg.Clock.Now()
	if !ok {
		rec = StepRecord{Key: key, ID: s.ID, StartedAt: now}
	}
	data := a.data(sc)
	fail := func(msg string) (any, string, error) {
		end := a.e.cfg.Clock.Now()
		rec.Status, rec.Error, rec.EndedAt = Failed, msg, &end
		if err := a.commit(rec, ""); err != nil {
			return nil, "", err
		}
		return nil, "", &stepFailure{key: key, msg: msg}
	}
	done := func(out any, next string) (any, string, error) {
		b, err := a.output(out)
		if err != nil {
			return fail(err.Error())
		}
		end := a.e.cfg.Clock.Now()
		rec.Status, rec.Output, rec.Next, rec.EndedAt, rec.Error, rec.Due = Completed, b, next, &end, "", nil
		if err := a.commit(rec, ""); err != nil {
			return nil, "", err
		}
		return out, next, nil
	}

	switch s.Kind() {
	case "tool", "prompt":
		return a.call(ctx, s, &rec, data, fail)
	case "branch":
		for i, c := range s.Branch {
			if c.If != "" {
				v, err := a.def.Render(c.If, data)
				if err != nil {
					return fail(fmt.Sprintf("branch[%d].if: %v", i, err))
				}
				if !workflow.Truthy(v) {
					continue
				}
			}
			return done(c.Next, c.Next)
		}
		return done("", "")
	case "parallel":
		// A branch's steps keep their own ids as keys, but on a later
		// visit of the parallel step (a loop) they are that visit's.
		inner := prefix
		if key != prefix+s.ID {
			inner = key + "/"
		}
		outs := make([]any, len(s.Parallel))
		errs := make([]error, len(s.Parallel))
		var wg sync.WaitGroup
		for i, b := range s.Parallel {
			wg.Go(func() { outs[i], errs[i] = a.list(ctx, b, sc, inner) })
		}
		wg.Wait()
		if err := join(errs); err != nil {
			return nil, "", err
		}
		if ok && rec.Status == Completed {
			return decode(rec.Output), "", nil
		}
		return done(outs, "")
	case "map":
		text, err := a.def.Render(s.Map.Over, data)
		if err != nil {
			return fail("map.over: " + err.Error())
		}
		var items []any
		if err := json.Unmarshal([]byte(text), &items); err != nil {
			return fail(fmt.Sprintf("map.over rendered %.100q, not a JSON list", text))
		}
		limit := s.Map.MaxConcurrency
		if limit <= 0 || limit > len(items) {
			limit = max(len(items), 1)
		}
		sem := make(chan struct{}, limit)
		outs := make([]any, len(items))
		errs := make([]error, len(items))
		var wg sync.WaitGroup
		for i, item := range items {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				child := &scope{parent: sc, item: item, index: i, hasItem: true}
				outs[i], errs[i] = a.list(ctx, s.Map.Steps, child, fmt.Sprintf("%s[%d]/", key, i))
			})
		}
		wg.Wait()
		if err := join(errs); err != nil {
			return nil, "", err
		}
		return done(outs, "")
	case "sleep":
		var due time.Time
		if rec.Due != nil {
			due = *rec.Due
		} else if s.Sleep.For != "" {
			due = now.Add(workflow.ParseDuration(s.Sleep.For))
		} else {
			text, err := a.def.Render(s.Sleep.Until, data)
			if err != nil {
				return fail("sleep.until: " + err.Error())
			}
			if due, err = time.Parse(time.RFC3339, strings.TrimSpace(text)); err != nil {
				return fail(fmt.Sprintf("sleep.until rendered %q, not an RFC 3339 time", text))
			}
		}
		if !now.Before(due) {
			return done(nil, "")
		}
		if rec.Due == nil {
			rec.Status, rec.Due = Sleeping, &due
			if err := a.commit(rec, ""); err != nil {
				return nil, "", err
			}
		}
		return nil, "", &suspension{status: Sleeping, due: due}
	case "wait_for_event":
		w := s.WaitForEvent
		a.mu.Lock()
		body, arrived := a.snap.Events[w.Event]
		a.mu.Unlock()
		if arrived {
			b := append(json.RawMessage(nil), body...)
			end := a.e.cfg.Clock.Now()
			rec.Status, rec.Output, rec.EndedAt, rec.Due = Completed, b, &end, nil
			if err := a.commit(rec, w.Event); err != nil {
				return nil, "", err
			}
			return decode(b), "", nil
		}
		if rec.Status != Waiting {
			rec.Status = Waiting
			if w.Timeout != "" {
				due := now.Add(workflow.ParseDuration(w.Timeout))
				rec.Due = &due
			}
			if err := a.commit(rec, ""); err != nil {
				return nil, "", err
			}
		}
		if rec.Due != nil && !now.Before(*rec.Due) {
			switch w.OnTimeout {
			case "", "fail":
				return fail(fmt.Sprintf("timed out waiting for event %q", w.Event))
			case "continue":
				return done(nil, "")
			default:
				return done(nil, w.OnTimeout)
			}
		}
		var due time.Time
		if rec.Due != nil {
			due = *rec.Due
		}
		return nil, "", &suspension{status: Waiting, due: due}
	}
	return fail("unknown kind")
}

// output encodes a step's output within Config.MaxOutputBytes.
func (a *advance) output(out any) (json.RawMessage, error) {
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("output is not JSON: %v", err)
	}
	if len(b) > a.e.cfg.MaxOutputBytes {
		return nil, fmt.Errorf("output is %d bytes, more than the %d a step may keep", len(b), a.e.cfg.MaxOutputBytes)
	}
	return b, nil
}

// join merges the errors of parallel walks: a failure or a lost lease
// wins over a suspension; suspensions merge to the earliest timer, and
// to waiting when any branch waits.
func join(errs []error) error {
	var merged *suspension
	for _, err := range errs {
		var s *suspension
		switch {
		case err == nil:
		case errors.As(err, &s):
			if merged == nil {
				merged = &suspension{status: s.status, due: s.due}
				continue
			}
			if s.status == Waiting {
				merged.status = Waiting
			}
			if !s.due.IsZero() && (merged.due.IsZero() || s.due.Before(merged.due)) {
				merged.due = s.due
			}
		default:
			return err
		}
	}
	if merged != nil {
		return merged
	}
	return nil
}

// call runs a tool or prompt step with its retries. It records each
// attempt in *rec, which fail (the caller's) commits too: a failed step
// shows how many attempts it made.
func (a *advance) call(ctx context.Context, s *workflow.Step, rec *StepRecord, data func() map[string]any, fail func(string) (any, string, error)) (any, string, error) {
	var lastErr string
	for attempt := 1; attempt <= s.Attempts(); attempt++ {
		if attempt > 1 {
			if err := a.e.cfg.Clock.Sleep(ctx, s.Backoff(attempt-1)); err != nil {
				return nil, "", err
			}
		}
		actx, cancel := ctx, context.CancelFunc(func() {})
		if d := s.AttemptTimeout(); d > 0 {
			actx, cancel = context.WithTimeout(ctx, d)
		}
		var out any
		var usage *agent.Result
		var errMsg string
		if s.Tool != "" {
			out, errMsg = a.tool(actx, s, rec.Key, attempt, data)
		} else {
			out, usage, errMsg = a.prompt(actx, s, rec.Key, attempt, data)
		}
		cancel()
		if errMsg != "" && ctx.Err() != nil {
			// The worker is stopping: the failure is ours, not the step's.
			return nil, "", ctx.Err()
		}
		rec.Attempts = attempt
		if usage != nil {
			u := usage.Usage
			rec.Usage = &u
		}
		if errMsg == "" {
			b, err := a.output(out)
			if err != nil {
				return fail(err.Error())
			}
			end := a.e.cfg.Clock.Now()
			rec.Status, rec.Output, rec.EndedAt, rec.Error = Completed, b, &end, ""
			if err := a.commit(*rec, ""); err != nil {
				return nil, "", err
			}
			return out, "", nil
		}
		lastErr = errMsg
	}
	if s.Attempts() > 1 {
		lastErr = fmt.Sprintf("%s (after %d attempts)", lastErr, s.Attempts())
	}
	return fail(lastErr)
}

// ToolUseID is the tool_use id of a tool step's attempt: the same for
// every advancer of the run, so a tool server that deduplicates on it
// sees a repeat as one call.
func ToolUseID(storeID, key string, attempt int) string {
	h := sha256.Sum256([]byte(storeID + "\x00" + key + "\x00" + strconv.Itoa(attempt)))
	return "toolu_wf_" + hex.EncodeToString(h[:12])
}

func (a *advance) tool(ctx context.Context, s *workflow.Step, key string, attempt int, data func() map[string]any) (any, string) {
	if a.e.cfg.Tools == nil {
		return nil, "no tools are configured"
	}
	input := s.Input
	if len(input) == 0 {
		input = json.RawMessage(`{}`)
	}
	input, err := a.def.RenderJSON(input, data)
	if err != nil {
		return nil, "input: " + err.Error()
	}
	block := a.e.cfg.Tools.Call(ctx, agent.ToolCall{ID: ToolUseID(a.storeID, key, attempt), Name: s.Tool, Input: input})
	var res struct {
		Content json.RawMessage `json:"content"`
		IsError bool            `json:"is_error"`
	}
	if err := json.Unmarshal(block, &res); err != nil {
		return nil, "tool result is not JSON"
	}
	text := contentText(res.Content)
	if res.IsError {
		if text == "" {
			text = "tool failed"
		}
		return nil, text
	}
	return jsonOrText(text), ""
}

// contentText joins the text of a tool_result's content (a string or a
// list of blocks).
func contentText(c json.RawMessage) string {
	var s string
	if json.Unmarshal(c, &s) == nil {
		return s
	}
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(c, &blocks)
	var b strings.Builder
	for _, x := range blocks {
		if x.Type == "text" {
			b.WriteString(x.Text)
		}
	}
	return b.String()
}

// jsonOrText is text's JSON value when text is a JSON object or list,
// else text itself: a tool or a model answering JSON gives later
// templates something to index.
func jsonOrText(text string) any {
	t := strings.TrimSpace(text)
	if strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") {
		var v any
		if json.Unmarshal([]byte(t), &v) == nil {
			return v
		}
	}
	return text
}

func (a *advance) prompt(ctx context.Context, s *workflow.Step, key string, attempt int, data func() map[string]any) (any, *agent.Result, string) {
	if a.e.cfg.Turns == nil {
		return nil, nil, "no agent is configured for prompt steps"
	}
	msg, err := a.def.Render(s.Prompt, data)
	if err != nil {
		return nil, nil, "prompt: " + err.Error()
	}
	sid := s.Session
	if sid == "" {
		sid = "wf-" + a.snap.Run.ID
	}
	tenant := a.snap.Run.Tenant
	if tenant == auth.DefaultTenant {
		tenant = "" // as the HTTP API passes it: metrics and logs stay as for single-tenant turns
	}
	ans, err := a.e.cfg.Turns.Run(ctx, agent.Request{
		SessionID: sid, Message: msg, Tenant: tenant,
		// A repeat of the attempt after a crash gets the stored answer.
		IdempotencyKey: "wf:" + a.snap.Run.ID + ":" + key + ":" + strconv.Itoa(attempt),
	})
	if err != nil {
		if m := apierr.From(err).Message; m != "" {
			return nil, nil, m
		}
		return nil, nil, err.Error()
	}
	return jsonOrText(ans.Result.Response), &ans.Result, ""
}

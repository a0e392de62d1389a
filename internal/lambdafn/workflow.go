package lambdafn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/auth"
)

// maxSQSDelay is the longest DelaySeconds SQS takes. A sleep longer than
// this is left to the scheduled timers event.
const maxSQSDelay = 15 * time.Minute

// timersBatch bounds how many ready runs one timers event takes on.
const timersBatch = 100

// Runs starts and advances workflow runs; the root package adapts the
// workflow engine to it. A run is named by ref, opaque here (it carries
// the tenant).
type Runs interface {
	// Start starts a run of workflow for tenant, or returns the run
	// started before with the same idempotency key. A bad workflow name
	// or input is an error carrying its apierr kind; nothing starts.
	Start(ctx context.Context, tenant, workflow string, input json.RawMessage, key string) (Started, error)
	// Advance walks the run until it ends, suspends or ctx ends.
	Advance(ctx context.Context, ref string) (Progress, error)
	// Due fires the timers that are due (and expired leases) and takes
	// up to n runs off the ready queue.
	Due(ctx context.Context, n int) ([]string, error)
}

// Started is a run Runs.Start made or found.
type Started struct {
	Ref, RunID, Workflow, Status string
}

// Progress is where Runs.Advance left a run.
type Progress struct {
	// Status is the run's status; empty when another advancer holds it
	// (that one hands it on) or it does not exist.
	Status string
	// Due is a sleeping or waiting run's timer; zero for none.
	Due time.Time
	// Cut means the deadline stopped the walk: the rest must be handed on.
	Cut bool
}

// runJob is a workflow event: a start, a hand-off or the timers tick.
type runJob struct {
	// start: workflow, input, key and tenant.
	workflow string
	input    json.RawMessage
	key      string
	tenant   string
	// advance is the ref of a run handed on.
	advance string
	timers  bool
}

// controlEvent is the body of lambdafn's own events: {"lambdagent":
// "timers"} from the scheduled rule and {"lambdagent":"advance","run":
// ref} handed on through SQS.
type controlEvent struct {
	Lambdagent string `json:"lambdagent"`
	Run        string `json:"run"`
}

// parseRunJob reads a workflow event body: {"workflow","input",
// "idempotency_key","tenant"} or a control event. ok is false when raw is
// neither (a turn).
func parseRunJob(raw []byte) (job runJob, ok bool, err error) {
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil || fields == nil {
		return runJob{}, false, nil
	}
	if _, has := fields["lambdagent"]; has {
		var ce controlEvent
		if err := json.Unmarshal(raw, &ce); err != nil {
			return runJob{}, true, fmt.Errorf("%w: lambdagent event: %v", ErrInvalidEvent, err)
		}
		switch {
		case ce.Lambdagent == "timers":
			return runJob{timers: true}, true, nil
		case ce.Lambdagent == "advance" && ce.Run != "":
			return runJob{advance: ce.Run}, true, nil
		}
		return runJob{}, true, fmt.Errorf(`%w: lambdagent event %q: want {"lambdagent":"timers"} or {"lambdagent":"advance","run":…}`, ErrInvalidEvent, ce.Lambdagent)
	}
	if _, has := fields["workflow"]; !has {
		return runJob{}, false, nil
	}
	var s struct {
		Workflow string          `json:"workflow"`
		Input    json.RawMessage `json:"input"`
		Key      string          `json:"idempotency_key"`
		Tenant   string          `json:"tenant"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return runJob{}, true, fmt.Errorf(`%w: workflow start {"workflow","input","idempotency_key","tenant"}: %v`, ErrInvalidEvent, err)
	}
	if s.Workflow == "" {
		return runJob{}, true, fmt.Errorf("%w: workflow start without a workflow name", ErrInvalidEvent)
	}
	if s.Tenant != "" {
		if err := auth.ValidTenant(s.Tenant); err != nil {
			return runJob{}, true, fmt.Errorf("%w: tenant: %v", ErrInvalidEvent, err)
		}
	}
	return runJob{workflow: s.Workflow, input: s.Input, key: s.Key, tenant: s.Tenant}, true, nil
}

// serveRun runs a workflow event and answers with the run
// ({"run_id","workflow","status"}), or for the timers event with how
// many runs it took on ({"runs":n}). An error means the event did not
// do its work and should be delivered again.
func (f *Function) serveRun(ctx, tctx context.Context, job runJob) ([]byte, error) {
	if f.runs == nil {
		if job.timers {
			// The template schedules timers whether or not workflows
			// are configured: nothing to fire.
			return []byte(`{"runs":0}`), nil
		}
		return nil, ErrNoWorkflows
	}
	switch {
	case job.timers:
		n, err := f.fireTimers(ctx, tctx)
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]int{"runs": n})
	case job.advance != "":
		p, err := f.advanceRun(ctx, tctx, job.advance)
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]string{"status": p.Status})
	}
	tenant := job.tenant
	if tenant == "" {
		tenant = f.tenant
	}
	s, err := f.runs.Start(tctx, tenant, job.workflow, job.input, job.key)
	if err != nil {
		return nil, err
	}
	p, err := f.advanceRun(ctx, tctx, s.Ref)
	if err != nil {
		return nil, err
	}
	if p.Status != "" {
		s.Status = p.Status
	}
	return json.Marshal(map[string]string{"run_id": s.RunID, "workflow": s.Workflow, "status": s.Status})
}

// advanceRun walks a run until tctx ends and hands on what is left: a
// cut walk at once, a short sleep with the sleep as the message's delay.
// A longer sleep, a wait, and a hand-off that could not be sent are left
// to the timers event (the run's timer is in the store).
func (f *Function) advanceRun(ctx, tctx context.Context, ref string) (Progress, error) {
	p, err := f.runs.Advance(tctx, ref)
	if err != nil {
		return p, err
	}
	switch {
	case p.Cut:
		return p, f.handOn(ctx, ref, 0)
	case !p.Due.IsZero():
		if d := time.Until(p.Due); d <= maxSQSDelay && f.queue != "" && !strings.HasSuffix(f.queue, ".fifo") {
			return p, f.handOn(ctx, ref, max(d, 0))
		}
	}
	return p, nil
}

// handOn sends {"lambdagent":"advance","run":ref} to the function's own
// queue, delayed by delay (rounded up to whole seconds). Without a queue
// the run waits for the timers event, which finds its timer due.
func (f *Function) handOn(ctx context.Context, ref string, delay time.Duration) error {
	if f.queue == "" || f.sqs == nil {
		f.log.WarnContext(ctx, "lambdafn: workflow run left for the timers event (no LAMBDAGENT_WORKFLOW_QUEUE_URL to hand it on)", slog.String("run", ref))
		return nil
	}
	body, _ := json.Marshal(controlEvent{Lambdagent: "advance", Run: ref})
	in := &sqs.SendMessageInput{QueueUrl: aws.String(f.queue), MessageBody: aws.String(string(body))}
	if strings.HasSuffix(f.queue, ".fifo") {
		// FIFO queues take no per-message delay; one group per run keeps
		// its hand-offs in order, and each hand-off is a new message.
		in.MessageGroupId = aws.String(ref)
		in.MessageDeduplicationId = aws.String(strconv.FormatInt(time.Now().UnixNano(), 36) + randomSuffix())
	} else if delay > 0 {
		in.DelaySeconds = int32((delay + time.Second - 1) / time.Second)
	}
	if _, err := f.sqs.SendMessage(ctx, in); err != nil {
		return fmt.Errorf("hand workflow run on to %s: %w", f.queue, err)
	}
	return nil
}

// fireTimers takes on the runs whose time has come: each is handed to its
// own invocation through the queue, or without a queue advanced here
// while time is left (a run taken and not advanced is queued again by the
// store after its grace period).
func (f *Function) fireTimers(ctx, tctx context.Context) (int, error) {
	refs, err := f.runs.Due(tctx, timersBatch)
	if err != nil {
		return 0, err
	}
	for i, ref := range refs {
		if f.queue != "" && f.sqs != nil {
			err = f.handOn(ctx, ref, 0)
		} else if tctx.Err() == nil {
			_, err = f.advanceRun(ctx, tctx, ref)
		}
		if err != nil {
			return i, err
		}
	}
	return len(refs), nil
}

// runStatus is the HTTP status a failed workflow event stands for, so
// that SQS records are judged as turns are (permanent or redelivered).
func runStatus(err error) int { return apierr.From(err).StatusCode() }

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

package lambdafn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/auth"
)

const (
	// DefaultDeadlineMargin is Config.DeadlineMargin's default.
	DefaultDeadlineMargin = 500 * time.Millisecond
	// DefaultMaxConcurrency is Config.MaxConcurrency's default: Lambda's
	// default SQS batch size, so a default batch runs all at once.
	DefaultMaxConcurrency = 10
)

// Config tunes a [Function]. A zero field means its default.
type Config struct {
	// DeadlineMargin is how long before the invocation's deadline the
	// handler's context ends. The handler answers 504 when its context
	// ends and commits what is complete on a context of its own; the
	// margin is the time that commit, an SQS reply and the answer to
	// Lambda have before Lambda kills the process. Zero means
	// DefaultDeadlineMargin.
	DeadlineMargin time.Duration
	// MaxConcurrency bounds how many records of one SQS batch run at
	// once. Records of one session always run one after another. Zero
	// means DefaultMaxConcurrency.
	MaxConcurrency int
	// SQS sends answers to the queue a turn names in reply_to. Nil means
	// no replies: a turn asking for one fails without running (an SQS
	// record is then redelivered until it reaches the dead-letter queue).
	SQS SQSClient
	// DeadLetterURL is the SQS queue a poison record is sent to, with the
	// error, before it is deleted from its own queue (see the package
	// comment). Empty means none: a poison record is redelivered until
	// the queue's redrive policy moves it. Needs SQS.
	DeadLetterURL string
	// Logger receives what the adapter decides (dropped or failed records,
	// handler panics). Nil means slog.Default().
	Logger *slog.Logger
	// DefaultTenant is the tenant of an SQS, EventBridge or direct turn
	// or workflow start whose body names none in "tenant". Empty means
	// auth.DefaultTenant.
	DefaultTenant string
	// Runs starts and advances workflow runs; nil means workflow events
	// fail with ErrNoWorkflows.
	Runs Runs
	// RunQueueURL is the SQS queue a workflow run cut by the deadline is
	// handed on to, as {"lambdagent":"advance","run":…}: the function's
	// own queue. Empty means runs wait for the scheduled timers event.
	// Needs SQS.
	RunQueueURL string
}

// A Function serves Lambda invocations with an http.Handler. It is safe
// for concurrent use; build one at init and reuse it across invocations.
type Function struct {
	h       http.Handler
	margin  time.Duration
	maxConc int
	sqs     SQSClient
	dlq     string
	log     *slog.Logger
	tenant  string
	runs    Runs
	queue   string
}

var _ lambda.Handler = (*Function)(nil)

// New returns a Function that feeds every event source through h.
func New(h http.Handler, cfg Config) (*Function, error) {
	if h == nil {
		return nil, errors.New("lambdafn: nil http.Handler")
	}
	if cfg.DeadlineMargin < 0 {
		return nil, fmt.Errorf("lambdafn: negative DeadlineMargin %v", cfg.DeadlineMargin)
	}
	if cfg.MaxConcurrency < 0 {
		return nil, fmt.Errorf("lambdafn: negative MaxConcurrency %d", cfg.MaxConcurrency)
	}
	f := &Function{h: h, margin: cfg.DeadlineMargin, maxConc: cfg.MaxConcurrency, sqs: cfg.SQS, dlq: cfg.DeadLetterURL, log: cfg.Logger}
	if f.margin == 0 {
		f.margin = DefaultDeadlineMargin
	}
	if f.maxConc == 0 {
		f.maxConc = DefaultMaxConcurrency
	}
	if f.log == nil {
		f.log = slog.Default()
	}
	f.tenant = cfg.DefaultTenant
	f.runs, f.queue = cfg.Runs, cfg.RunQueueURL
	if f.tenant == "" {
		f.tenant = auth.DefaultTenant
	}
	if err := auth.ValidTenant(f.tenant); err != nil {
		return nil, fmt.Errorf("lambdafn: DefaultTenant: %w", err)
	}
	return f, nil
}

// Invoke serves one invocation: it detects the event source from the
// payload, runs the request or turns through the handler and answers in the
// source's response shape. It implements lambda.Handler.
//
// A failed invocation carries an errorType Step Functions and
// destinations can match: "lambdagent.<type>" with the handler's error
// type for a non-2xx turn ("lambdagent.session_busy",
// "lambdagent.timeout", …), or lambdagent.unknown_event,
// lambdagent.unsupported_event, lambdagent.invalid_event,
// lambdagent.no_reply_client.
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	out, err := f.invoke(ctx, payload)
	if err != nil {
		return nil, invokeError(err)
	}
	return out, nil
}

func (f *Function) invoke(ctx context.Context, payload []byte) ([]byte, error) {
	ev, err := decode(payload)
	if err != nil {
		return nil, err
	}
	switch {
	case ev.http != nil:
		return f.serveHTTP(ctx, ev)
	case ev.records != nil:
		return f.serveSQS(ctx, ev.records)
	case ev.run != nil:
		job := *ev.run
		if job.workflow != "" && job.key == "" && ev.kind == kindDirect {
			if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
				job.key = "invoke:" + lc.AwsRequestID
			}
		}
		tctx, cancel := f.turnContext(ctx)
		defer cancel()
		return f.serveRun(ctx, tctx, job)
	default:
		t := ev.turn
		if t.key == "" && ev.kind == kindDirect {
			// Lambda retries an asynchronous invocation with the same
			// request id, so it names the request.
			if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
				t.key = "invoke:" + lc.AwsRequestID
			}
		}
		return f.serveTurn(ctx, t)
	}
}

// serveHTTP answers an API Gateway or Function URL request. It carries
// API Gateway's authorizer context, for mode apigw, and never a trusted
// principal: the handler authenticates the request like any other.
func (f *Function) serveHTTP(ctx context.Context, ev *event) ([]byte, error) {
	ctx, cancel := f.turnContext(ctx)
	defer cancel()
	if ev.authorizer != nil {
		ctx = auth.WithAPIGatewayAuthorizer(ctx, ev.authorizer)
	}
	return httpResponse(ev.kind, f.serve(ev.http.WithContext(ctx)))
}

// serveTurn runs an EventBridge event or a direct invocation: the answer is
// the handler's body, a non-2xx answer is a *StatusError.
func (f *Function) serveTurn(ctx context.Context, t turn) ([]byte, error) {
	if t.replyTo != "" && f.sqs == nil {
		return nil, fmt.Errorf("%w (reply_to %s)", ErrNoReplyClient, t.replyTo)
	}
	tctx, cancel := f.turnContext(ctx)
	defer cancel()
	res := f.serve(t.request(tctx, f.tenant))
	if !res.ok() {
		return nil, res.statusError()
	}
	if t.replyTo != "" {
		// On the invocation's context, not the turn's: the margin is
		// there for this.
		if err := f.reply(ctx, t, res); err != nil {
			return nil, err
		}
	}
	return res.body, nil
}

// turnContext is the context handed to the handler: it ends
// DeadlineMargin before the invocation's deadline.
func (f *Function) turnContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok {
		return context.WithDeadline(ctx, d.Add(-f.margin))
	}
	return context.WithCancel(ctx)
}

var internalError = apierr.Body(&apierr.Error{Kind: apierr.Internal, Message: "internal error"})

// serve runs one request through the handler. A panic becomes a 500: in
// an SQS batch it would otherwise take every other record down with it.
func (f *Function) serve(r *http.Request) (res result) {
	w := newRecorder()
	defer func() {
		if p := recover(); p != nil {
			f.log.ErrorContext(r.Context(), "lambdafn: handler panicked", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			res = result{code: http.StatusInternalServerError, header: http.Header{"Content-Type": {"application/json"}}, body: internalError}
		}
	}()
	f.h.ServeHTTP(w, r)
	return w.result()
}

// invokeError gives a failed invocation its errorType, "lambdagent." and
// the error's kind (apierr.From: lambdafn's sentinels and StatusError carry
// theirs), and its message. The message is the error's text, which only
// the function's own account sees (Step Functions, destinations).
func invokeError(err error) error {
	return messages.InvokeResponse_Error{Type: "lambdagent." + string(apierr.From(err).Kind), Message: err.Error()}
}

// turn is one POST /agent request made from a non-HTTP event.
type turn struct {
	// body is the POST /agent body, without reply_to and idempotency_key.
	body []byte
	// sessionID orders the turns of an SQS batch; "" if the body has none.
	sessionID string
	// replyTo is the SQS queue URL the answer goes to; "" for none.
	replyTo string
	// key is the Idempotency-Key; "" for none.
	key string
	// source names the event source in the User-Agent: sqs, eventbridge
	// or invoke.
	source string
	// tenant is the body's "tenant", valid; "" for none.
	tenant string
}

// request is the turn as a POST /agent request, whose context carries a
// trusted principal: AWS authenticated the event's sender with IAM (only
// principals allowed by the queue's, the rule's or the function's policy
// can send one), so the event may name its tenant; without one the turn
// is defaultTenant's.
func (t turn) request(ctx context.Context, defaultTenant string) *http.Request {
	p := auth.Principal{Tenant: t.tenant, Method: auth.MethodIAM, Subject: t.source}
	if p.Tenant == "" {
		p.Tenant = defaultTenant
	}
	r, err := http.NewRequestWithContext(auth.WithPrincipal(ctx, p), http.MethodPost, "/agent", bytes.NewReader(t.body))
	if err != nil {
		panic(err) // constant method and URL
	}
	r.RequestURI = "/agent"
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "lambdafn/"+t.source)
	if t.key != "" {
		r.Header.Set("Idempotency-Key", t.key)
	}
	return r
}

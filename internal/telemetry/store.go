package telemetry

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/session"
)

// WrapStore observes every call to s, tool-result saves and key-value
// reads and writes included: its duration (per operation at /metrics,
// and in the turn's store time), and a span per call. A nil Telemetry
// returns s. Anything beyond session.Store (Close, Ping) needs the
// concrete store.
func WrapStore(s session.Store, t *Telemetry) session.Store {
	if t == nil {
		return s
	}
	return &store{next: s, t: t}
}

type store struct {
	next session.Store
	t    *Telemetry
}

var _ session.Store = (*store)(nil)

func (s *store) Begin(ctx context.Context, req session.BeginRequest) (*session.State, error) {
	ctx, op := s.t.startStore(ctx, "begin", req.ID, true)
	st, err := s.next.Begin(ctx, req)
	op.end(err)
	return st, err
}

func (s *store) Commit(ctx context.Context, c session.Commit) (int64, error) {
	ctx, op := s.t.startStore(ctx, "commit", c.ID, true)
	v, err := s.next.Commit(ctx, c)
	op.end(err)
	return v, err
}

func (s *store) Renew(ctx context.Context, id, token string, ttl time.Duration) error {
	ctx, op := s.t.startStore(ctx, "renew", id, false)
	err := s.next.Renew(ctx, id, token, ttl)
	op.end(err)
	return err
}

func (s *store) Release(ctx context.Context, id, token string) error {
	ctx, op := s.t.startStore(ctx, "release", id, true)
	err := s.next.Release(ctx, id, token)
	op.end(err)
	return err
}

func (s *store) Load(ctx context.Context, id string) (*session.State, error) {
	ctx, op := s.t.startStore(ctx, "load", id, true)
	st, err := s.next.Load(ctx, id)
	op.end(err)
	return st, err
}

func (s *store) Delete(ctx context.Context, id string) error {
	ctx, op := s.t.startStore(ctx, "delete", id, true)
	err := s.next.Delete(ctx, id)
	op.end(err)
	return err
}

// SaveToolResult runs right after a tool returns, on the turn's path.
func (s *store) SaveToolResult(ctx context.Context, id, token, toolUseID string, result []byte) error {
	ctx, op := s.t.startStore(ctx, "save_tool_result", id, true)
	err := s.next.SaveToolResult(ctx, id, token, toolUseID, result)
	op.end(err)
	return err
}

// Get and Set serve the deployment (MCP session ids at startup), not a
// turn: they are off the turn's path.
func (s *store) Get(ctx context.Context, key string) ([]byte, error) {
	ctx, op := s.t.startStore(ctx, "kv_get", "", false)
	v, err := s.next.Get(ctx, key)
	op.end(err)
	return v, err
}

func (s *store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	ctx, op := s.t.startStore(ctx, "kv_set", "", false)
	err := s.next.Set(ctx, key, value, ttl)
	op.end(err)
	return err
}

// storeOp is one store call being observed.
type storeOp struct {
	t     *Telemetry
	op    string
	start time.Time
	st    *turnStats // nil off a turn's path
	span  trace.Span // nil without tracing
}

// startStore begins observing a store call. onPath says whether the call
// adds to the turn's latency (a renewal runs beside the model call).
func (t *Telemetry) startStore(ctx context.Context, op, id string, onPath bool) (context.Context, storeOp) {
	o := storeOp{t: t, op: op, start: time.Now()}
	if onPath {
		o.st = statsFrom(ctx)
	}
	if t.tracing {
		attrs := []attribute.KeyValue{attribute.String(keyStoreOp, op)}
		if id != "" {
			attrs = append(attrs, attribute.String(keySessionID, id))
		}
		ctx, o.span = t.tracer.Start(ctx, "session."+op, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	}
	return ctx, o
}

func (o storeOp) end(err error) {
	d := time.Since(o.start)
	if o.t.reg != nil {
		o.t.reg.observe(mStoreDuration, d.Seconds(), "op", o.op)
	}
	if o.st != nil {
		o.st.addStore(d)
	}
	if o.span != nil {
		if err != nil {
			o.span.SetAttributes(attribute.String(keyErrorType, string(apierr.KindOf(err))))
			// A busy session is an answer, not a failure of the store.
			var busy *session.BusyError
			if !errors.As(err, &busy) {
				o.span.SetStatus(codes.Error, string(apierr.KindOf(err)))
			}
		}
		o.span.End()
	}
}

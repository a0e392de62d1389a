package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
)

// settleTimeout bounds the round trip that ends a reservation. It runs
// detached from the caller's context: a call that happened must be
// accounted for even if the caller has gone.
const settleTimeout = 5 * time.Second

// WrapModel returns an agent.Model that puts every call of m through l:
// before it, the kill switches, the day's budgets, the model's shared
// slowdown and the rate windows ([Limiter.Wait]: it waits for room if the
// wait fits the deadline); after it, the reservation is reconciled with
// the reply's usage, the usage and its cost are added to the session's
// and tenant's sums for today, the reply's anthropic-ratelimit-* headers
// are learnt from, and the cost is set in reply.Usage.CostUSD (so the
// turn's answer reports it). The session and tenant come from
// [agent.RequestFromContext]; the model and max_tokens from the body.
//
// Because the kill switch is checked before every call, stopping a
// session takes effect at its next model call, even within a running
// turn's tool loop.
func WrapModel(m agent.Model, l *Limiter) agent.Model {
	return &model{next: m, l: l}
}

type model struct {
	next agent.Model
	l    *Limiter
}

func (w *model) Create(ctx context.Context, body []byte) (*claude.Reply, error) {
	l := w.l
	req, _ := agent.RequestFromContext(ctx)
	name, maxTokens := peek(body)
	if name == "" {
		name = "unknown"
	}
	k := Key{Model: name, Tenant: req.Tenant, SessionID: req.SessionID}
	est := Tokens{Input: l.EstimateInput(body), Output: l.cfg.OutputEstimate}
	if est.Output == 0 {
		est.Output = maxTokens
	}
	res, err := l.Wait(ctx, k, est)
	if err != nil {
		return nil, err
	}
	reply, err := w.next.Create(ctx, body)

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	if err != nil {
		var se *claude.StatusError
		var serr error
		if errors.As(err, &se) {
			serr = res.Cancel(sctx, se.Header) // answered with an error: not counted
		} else {
			serr = res.Hold(sctx)
		}
		if serr != nil {
			l.log.LogAttrs(ctx, slog.LevelWarn, "ratelimit: end reservation", slog.String("session", k.SessionID), slog.Any("err", serr))
		}
		return nil, err
	}
	cost, err := res.Reconcile(sctx, reply.Usage, reply.Header)
	reply.Usage.CostUSD = cost
	if err != nil {
		// The call succeeded and is paid for: answer it, and let the
		// operator know the sums missed it.
		l.log.LogAttrs(ctx, slog.LevelWarn, "ratelimit: reconcile", slog.String("session", k.SessionID),
			slog.String("tenant", res.key.Tenant), slog.Float64("cost_usd", cost), slog.Any("err", err))
	}
	return reply, nil
}

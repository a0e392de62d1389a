package ratelimit

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/auth"
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
// the reply's usage, the usage and its cost (reply.Usage.CostUSD, priced
// by the model client) are added to the session's and tenant's sums for
// today, and the reply's anthropic-ratelimit-* headers are learnt from.
// The session and tenant come from [agent.RequestFromContext]; the API
// key and its own limits (auth.Key.Limits) from [auth.PrincipalFrom],
// when the turn was authenticated by a key that has some; the model and
// max_tokens from the [claude.Request].
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

func (w *model) Create(ctx context.Context, mreq claude.Request) (*claude.Reply, error) {
	l := w.l
	req, _ := agent.RequestFromContext(ctx)
	name := mreq.Model
	if name == "" {
		name = "unknown"
	}
	k := Key{Model: name, Tenant: req.Tenant}
	if req.SessionID != "" {
		k.SessionID = req.StoreID() // the tenant's session, not another's of the same id
	}
	if p, ok := auth.PrincipalFrom(ctx); ok && p.KeyID != "" {
		k.KeyID, k.KeyLimits = p.KeyID, KeyLimits(p.Limits)
	}
	est := Tokens{Input: l.EstimateInput(mreq.Body), Output: l.cfg.OutputEstimate}
	if est.Output == 0 {
		est.Output = int64(mreq.MaxTokens)
	}
	res, err := l.Wait(ctx, k, est)
	if err != nil {
		return nil, err
	}
	reply, err := w.next.Create(ctx, mreq)

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
	if err := res.Reconcile(sctx, reply.Usage, reply.Header); err != nil {
		// The call succeeded and is paid for: answer it, and let the
		// operator know the sums missed it.
		l.log.LogAttrs(ctx, slog.LevelWarn, "ratelimit: reconcile", slog.String("session", k.SessionID),
			slog.String("tenant", res.key.Tenant), slog.Float64("cost_usd", reply.Usage.CostUSD), slog.Any("err", err))
	}
	return reply, nil
}

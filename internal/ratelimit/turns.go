package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/lambdagent/lambdagent/internal/agent"
)

// Turner runs turns; *agent.Agent and httpapi.Turner have this shape.
type Turner interface {
	Run(ctx context.Context, req agent.Request) (*agent.Answer, error)
}

// WrapTurner returns a Turner that runs each turn of next holding a
// concurrency slot from l ([Limiter.Acquire]): at most Config.MaxTurns
// turns in flight across all instances, and Config.MaxTurnsPerTenant per
// tenant. Taking the slot also checks the kill switches, so a stopped
// session or tenant is refused before its turn loads anything. With no
// concurrency limit configured, it returns next itself.
func WrapTurner(next Turner, l *Limiter) Turner {
	if l.cfg.MaxTurns <= 0 && l.cfg.MaxTurnsPerTenant <= 0 {
		return next
	}
	return &turner{next: next, l: l}
}

type turner struct {
	next Turner
	l    *Limiter
}

func (t *turner) Run(ctx context.Context, req agent.Request) (*agent.Answer, error) {
	sid := ""
	if req.SessionID != "" {
		sid = req.StoreID()
	}
	slot, err := t.l.Acquire(ctx, req.Tenant, sid)
	if err != nil {
		return nil, err
	}
	defer slot.Release()
	return t.next.Run(ctx, req)
}

// A Slot is a concurrency slot held by one turn. It renews itself in the
// background until [Slot.Release].
type Slot struct {
	l       *Limiter
	keys    []string
	id      string
	global  bool
	tenant  bool
	stop    chan struct{}
	done    chan struct{}
	release sync.Once
}

// Acquire takes a concurrency slot for a turn of tenant (empty means
// Config.DefaultTenant) and session (its store id, session.Scope of the
// tenant and the session id; may be empty), after checking their kill
// switches. A tenant that fails auth.ValidTenant, or a session that fails
// session.ValidStoreID, is an error wrapping [ErrInvalidKey]. While the limits are full it polls, with jittered
// backoff, for as long as ctx's deadline and Config.MaxWait allow, then
// returns a *LimitError of KindConcurrency. A slot lives Config.SlotTTL
// and is renewed every third of it, so an instance that dies holding one
// frees it within SlotTTL.
func (l *Limiter) Acquire(ctx context.Context, tenant, session string) (*Slot, error) {
	if tenant == "" {
		tenant = l.cfg.DefaultTenant
	}
	if err := checkKey(tenant, session); err != nil {
		return nil, err
	}
	s := &Slot{
		l:      l,
		keys:   []string{l.prefix + "conc:global", l.prefix + "conc:tenant:" + esc(tenant)},
		id:     newID(),
		global: l.cfg.MaxTurns > 0,
		tenant: l.cfg.MaxTurnsPerTenant > 0,
	}
	stopSession := l.prefix + "stop:none" // a key Stop never writes
	if session != "" {
		stopSession = l.stopKey(ScopeSession, session)
	}
	give := l.now().Add(l.cfg.MaxWait)
	poll := 5 * time.Millisecond
	for {
		now := l.now()
		res, err := acquireScript.Run(ctx, l.rdb,
			[]string{stopSession, l.stopKey(ScopeTenant, tenant), s.keys[0], s.keys[1]},
			now.UnixMilli(), now.Add(l.cfg.SlotTTL).UnixMilli(), s.id, l.cfg.MaxTurns, l.cfg.MaxTurnsPerTenant,
			(2 * l.cfg.SlotTTL).Milliseconds()).Slice()
		if err != nil {
			return nil, l.redisErr(ctx, "acquire a turn slot for tenant "+tenant, err)
		}
		switch res[0] {
		case "ok":
			s.stop, s.done = make(chan struct{}), make(chan struct{})
			go s.renew()
			return s, nil
		case "stopped":
			scope := Scope(res[1].(string))
			id := tenant
			if scope == ScopeSession {
				id = session
			}
			return nil, &StoppedError{Scope: scope, ID: id}
		case "busy":
		default:
			return nil, fmt.Errorf("ratelimit: acquire: unexpected reply %v", res)
		}
		scope := Scope(res[1].(string))
		le := &LimitError{Kind: KindConcurrency, Scope: scope, RetryAfter: time.Second}
		if scope == ScopeTenant {
			le.Name = tenant
		}
		// Slots free when turns end, which we cannot see: poll, faster
		// than a turn lasts, with full jitter to spread the pollers.
		wait := mrand.N(poll) + time.Millisecond
		end := l.now().Add(wait)
		if dl, ok := ctx.Deadline(); (ok && end.After(dl)) || end.After(give) {
			return nil, le
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("wait for a turn slot: %w", ctx.Err())
		case <-t.C:
		}
		poll = min(2*poll, 250*time.Millisecond)
	}
}

func (s *Slot) renew() {
	defer close(s.done)
	tick := time.NewTicker(s.l.cfg.SlotTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
			if err := s.set(s.l.now().Add(s.l.cfg.SlotTTL).UnixMilli()); err != nil {
				s.l.log.LogAttrs(context.Background(), slog.LevelWarn, "ratelimit: renew turn slot", slog.Any("err", err))
			}
		}
	}
}

func (s *Slot) set(expiry int64) error {
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	err := renewScript.Run(ctx, s.l.rdb, s.keys, expiry, s.id, (2 * s.l.cfg.SlotTTL).Milliseconds(), b01(s.global), b01(s.tenant)).Err()
	if err != nil {
		return s.l.redisErr(ctx, "renew turn slot", err)
	}
	return nil
}

// Release frees the slot and stops its renewal. It may be called more
// than once. A failure to free it is logged: the slot then expires.
func (s *Slot) Release() {
	s.release.Do(func() {
		close(s.stop)
		<-s.done
		if err := s.set(0); err != nil {
			s.l.log.LogAttrs(context.Background(), slog.LevelWarn, "ratelimit: release turn slot", slog.Any("err", err))
		}
	})
}

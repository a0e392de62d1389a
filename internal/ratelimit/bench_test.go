package ratelimit_test

import (
	"fmt"
	"testing"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// benchConfig turns on every check the reservation script makes: kill
// switches, both budgets in tokens and dollars, model and tenant windows.
var benchConfig = ratelimit.Config{
	Model:         ratelimit.Limits{Requests: 1e9, InputTokens: 1e12, OutputTokens: 1e12},
	Tenant:        ratelimit.Limits{Requests: 1e9, InputTokens: 1e12, OutputTokens: 1e12},
	SessionBudget: ratelimit.Budget{TokensPerDay: 1e15, USDPerDay: 1e9},
	TenantBudget:  ratelimit.Budget{TokensPerDay: 1e15, USDPerDay: 1e9},
}

// BenchmarkModelCall measures what the limiter adds to one model call:
// Reserve before it and Reconcile after, two round trips to a local
// redis-server.
func BenchmarkModelCall(b *testing.B) {
	l := newLimiter(b, redistest.Start(b), benchConfig)
	benchCalls(b, l, func(i int) ratelimit.Key {
		return ratelimit.Key{Model: sonnet, Tenant: "acme", SessionID: "s1"}
	})
}

// BenchmarkModelCallParallel is BenchmarkModelCall from many goroutines
// of one instance, spread over 16 tenants and 64 sessions.
func BenchmarkModelCallParallel(b *testing.B) {
	l := newLimiter(b, redistest.Start(b), benchConfig)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			k := ratelimit.Key{Model: sonnet, Tenant: fmt.Sprint("t", i%16), SessionID: fmt.Sprint("s", i%64)}
			call(b, l, k)
		}
	})
}

// BenchmarkReserve measures the reservation script alone.
func BenchmarkReserve(b *testing.B) {
	l := newLimiter(b, redistest.Start(b), benchConfig)
	k := ratelimit.Key{Model: sonnet, Tenant: "acme", SessionID: "s1"}
	b.ReportAllocs()
	for b.Loop() {
		if r, _, err := l.Reserve(b.Context(), k, ratelimit.Tokens{Input: 500, Output: 100}); r == nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTurnSlot measures taking and releasing a concurrency slot.
func BenchmarkTurnSlot(b *testing.B) {
	l := newLimiter(b, redistest.Start(b), ratelimit.Config{MaxTurns: 1e6, MaxTurnsPerTenant: 1e6})
	b.ReportAllocs()
	for b.Loop() {
		s, err := l.Acquire(b.Context(), "acme", "s1")
		if err != nil {
			b.Fatal(err)
		}
		s.Release()
	}
}

func benchCalls(b *testing.B, l *ratelimit.Limiter, key func(int) ratelimit.Key) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		call(b, l, key(i))
		i++
	}
}

func call(b *testing.B, l *ratelimit.Limiter, k ratelimit.Key) {
	r, _, err := l.Reserve(b.Context(), k, ratelimit.Tokens{Input: 500, Output: 100})
	if r == nil {
		b.Fatal(err)
	}
	if err := r.Reconcile(b.Context(), claude.Usage{InputTokens: 400, OutputTokens: 50, CacheReadInputTokens: 1000}, nil); err != nil {
		b.Fatal(err)
	}
}

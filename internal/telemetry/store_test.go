package telemetry_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
	"github.com/lambdagent/lambdagent/internal/session/storetest"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// observed returns a Telemetry with every signal on (metrics and spans),
// so a wrapped store runs all of its observing code.
func observed(t *testing.T) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(telemetry.Config{Prometheus: true, SpanExporter: tracetest.NewInMemoryExporter()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// The wrapped store keeps the store contract: the suite every store
// passes runs on each store behind WrapStore.
func TestWrapStoreContract(t *testing.T) {
	t.Run("redisstore", func(t *testing.T) {
		addr := redistest.Start(t)
		storetest.Run(t, func(t *testing.T, opts storetest.Options) session.Store {
			cfg := redisstore.Config{Prefix: redistest.Prefix(t), TTL: opts.TTL, IdempotencyTTL: opts.IdempotencyTTL}
			if cfg.TTL == 0 {
				cfg.TTL = 2 * time.Minute
			}
			s, err := redisstore.New(redistest.Client(t, addr), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return telemetry.WrapStore(s, observed(t))
		})
	})
	t.Run("filestore", func(t *testing.T) {
		// bbolt lets a file be open once, so the stores one subtest asks
		// for twice (two processes) wrap one Store.
		type key struct {
			t    *testing.T
			opts storetest.Options
		}
		var mu sync.Mutex
		stores := map[key]*filestore.Store{}
		storetest.Run(t, func(t *testing.T, opts storetest.Options) session.Store {
			mu.Lock()
			defer mu.Unlock()
			k := key{t, opts}
			s, ok := stores[k]
			if !ok {
				var err error
				s, err = filestore.Open(filepath.Join(t.TempDir(), "s.db"), filestore.Config{TTL: opts.TTL, IdempotencyTTL: opts.IdempotencyTTL})
				if err != nil {
					t.Fatal(err)
				}
				stores[k] = s
				t.Cleanup(func() {
					mu.Lock()
					defer mu.Unlock()
					delete(stores, k)
					s.Close()
				})
			}
			return telemetry.WrapStore(s, observed(t))
		})
	})
}

// Every method of the wrapped store is observed under its own op.
func TestWrapStoreObservesEveryCall(t *testing.T) {
	fs, err := filestore.Open(filepath.Join(t.TempDir(), "s.db"), filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	tel := observed(t)
	s := telemetry.WrapStore(fs, tel)
	ctx := t.Context()
	const id, tok = "s1", "tok"
	calls := []struct {
		op   string
		call func() error
	}{
		{"begin", func() error {
			_, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: tok, LeaseTTL: time.Minute})
			return err
		}},
		{"save_tool_result", func() error { return s.SaveToolResult(ctx, id, tok, "toolu_1", []byte(`{}`)) }},
		{"renew", func() error { return s.Renew(ctx, id, tok, time.Minute) }},
		{"commit", func() error {
			_, err := s.Commit(ctx, session.Commit{ID: id, LeaseToken: tok, Version: 0})
			return err
		}},
		{"release", func() error { return s.Release(ctx, id, tok) }},
		{"load", func() error { _, err := s.Load(ctx, id); return err }},
		{"delete", func() error { return s.Delete(ctx, id) }},
		{"kv_set", func() error { return s.Set(ctx, "a", []byte("b"), 0) }},
		{"kv_get", func() error { _, err := s.Get(ctx, "a"); return err }},
	}
	want := map[string]float64{}
	for _, c := range calls {
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.op, err)
		}
		want[`lambdagent_store_duration_seconds_count{op="`+c.op+`"}`] = 1
	}
	got := scrape(t, tel.MetricsHandler())
	for k := range got {
		if _, ok := want[k]; !ok {
			delete(got, k)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("store metrics (-want +got):\n%s", diff)
	}
}

// A nil Telemetry leaves the store as it is.
func TestWrapStoreNil(t *testing.T) {
	fs, err := filestore.Open(filepath.Join(t.TempDir(), "s.db"), filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	if got := telemetry.WrapStore(fs, nil); got != session.Store(fs) {
		t.Errorf("WrapStore(s, nil) = %T; want s itself", got)
	}
}

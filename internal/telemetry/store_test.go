package telemetry_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// The method sets of session's optional abilities (see #8), as a caller
// asserting them sees them.
type (
	toolResultSaver interface {
		SaveToolResult(ctx context.Context, id, token, toolUseID string, result []byte) error
	}
	keyValues interface {
		Get(ctx context.Context, key string) ([]byte, error)
		Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	}
)

// plainStore hides whatever abilities the file store has, so that each
// case below starts from a store with exactly the abilities it adds.
type plainStore struct{ session.Store }

type savesResults struct {
	plainStore
	saved *[]string
}

func (s savesResults) SaveToolResult(_ context.Context, _, _, toolUseID string, _ []byte) error {
	*s.saved = append(*s.saved, toolUseID)
	return nil
}

type hasKV struct {
	plainStore
	kv map[string][]byte
}

func (s hasKV) Get(_ context.Context, key string) ([]byte, error) { return s.kv[key], nil }
func (s hasKV) Set(_ context.Context, key string, v []byte, _ time.Duration) error {
	s.kv[key] = v
	return nil
}

type both struct {
	savesResults
	kv hasKV
}

func (s both) Get(ctx context.Context, key string) ([]byte, error) { return s.kv.Get(ctx, key) }
func (s both) Set(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	return s.kv.Set(ctx, key, v, ttl)
}

// WrapStore keeps exactly the optional abilities of the store it wraps,
// and observes them too.
func TestWrapStoreKeepsAbilities(t *testing.T) {
	fs, err := filestore.Open(filepath.Join(t.TempDir(), "s.db"), filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	base := plainStore{fs}
	var saved []string
	kv := map[string][]byte{}
	tests := []struct {
		name       string
		store      session.Store
		saves, kvs bool
	}{
		{"none", base, false, false},
		{"tool results", savesResults{base, &saved}, true, false},
		{"kv", hasKV{base, kv}, false, true},
		{"both", both{savesResults{base, &saved}, hasKV{base, kv}}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tel, err := telemetry.New(telemetry.Config{Prometheus: true})
			if err != nil {
				t.Fatal(err)
			}
			w := telemetry.WrapStore(tc.store, tel)
			ts, saves := w.(toolResultSaver)
			k, kvs := w.(keyValues)
			if saves != tc.saves || kvs != tc.kvs {
				t.Fatalf("wrapped store: saves tool results %v, kv %v; want %v, %v", saves, kvs, tc.saves, tc.kvs)
			}
			ctx := t.Context()
			want := map[string]float64{}
			if saves {
				saved = nil
				if err := ts.SaveToolResult(ctx, "s1", "tok", "toolu_1", []byte(`{}`)); err != nil || len(saved) != 1 {
					t.Errorf("SaveToolResult did not reach the store: %v %v", err, saved)
				}
				want[`lambdagent_store_duration_seconds_count{op="save_tool_result"}`] = 1
			}
			if kvs {
				if err := k.Set(ctx, "a", []byte("b"), 0); err != nil {
					t.Fatal(err)
				}
				if v, err := k.Get(ctx, "a"); err != nil || string(v) != "b" {
					t.Errorf("Get = %q, %v", v, err)
				}
				want[`lambdagent_store_duration_seconds_count{op="kv_get"}`] = 1
				want[`lambdagent_store_duration_seconds_count{op="kv_set"}`] = 1
			}
			if _, err := w.Load(ctx, "s1"); err != nil {
				t.Fatal(err)
			}
			want[`lambdagent_store_duration_seconds_count{op="load"}`] = 1
			got := scrape(t, tel.MetricsHandler())
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}

package auth

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
)

// A backend gives a test two KVs over one store: for Redis two stores
// with their own connections, as two processes would have; for the file
// store, which one process owns, the same store twice.
type backend struct {
	name string
	open func(t *testing.T) (KV, KV)
}

var backends = []backend{
	{"redis", func(t *testing.T) (KV, KV) {
		addr := redistest.Start(t)
		prefix := redistest.Prefix(t)
		open := func() KV {
			s, err := redisstore.New(redistest.Client(t, addr), redisstore.Config{Prefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open(), open()
	}},
	{"file", func(t *testing.T) (KV, KV) {
		s, err := filestore.Open(filepath.Join(t.TempDir(), "sessions.db"), filestore.Config{SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, s
	}},
}

// clock is a time tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingKV counts Gets, to see the cache work.
type countingKV struct {
	KV
	gets atomic.Int64
}

func (c *countingKV) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets.Add(1)
	return c.KV.Get(ctx, key)
}

func newRegistry(t *testing.T, kv KV, cfg RegistryConfig, c *clock) *Registry {
	t.Helper()
	r, err := NewRegistry(kv, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.now = c.Now
	return r
}

// noSecret fails t if err quotes any of secrets.
func noSecret(t *testing.T, err error, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if err != nil && s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q holds a secret", err)
		}
	}
}

func TestRegistry(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := t.Context()
			kvA, kvB := b.open(t)
			c := newClock()
			a := newRegistry(t, kvA, RegistryConfig{}, c)
			// b is another process: its own connections and its own cache.
			countB := &countingKV{KV: kvB}
			rb := newRegistry(t, countB, RegistryConfig{}, c)

			plain1, k1, err := a.Create(ctx, "acme", "ci")
			if err != nil {
				t.Fatal(err)
			}
			plain2, k2, err := a.CreateWithLimits(ctx, "globex", "alice laptop", Limits{RPM: 60, OTPM: 1000})
			if err != nil {
				t.Fatal(err)
			}
			_, secret1, _ := ParseKey(plain1)
			_, secret2, _ := ParseKey(plain2)

			list, err := rb.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]Key{k1, k2}, list); diff != "" {
				t.Errorf("List (-want +got):\n%s", diff)
			}
			js, _ := json.Marshal(list)
			if strings.Contains(string(js), secret1) || strings.Contains(string(js), secret2) {
				t.Errorf("List holds a secret: %s", js)
			}

			wrongSecret, _, _ := newKey()
			wrongSecret = "lga_" + k1.ID + wrongSecret[len("lga_")+IDLen:]
			unknown, _, _ := newKey()
			for _, tc := range []struct {
				name, token string
				want        Principal
				err         error
			}{
				{"good key", plain1, Principal{Tenant: "acme", KeyID: k1.ID, Method: MethodKey}, nil},
				{"good key with limits", plain2, Principal{Tenant: "globex", KeyID: k2.ID, Limits: Limits{RPM: 60, OTPM: 1000}, Method: MethodKey}, nil},
				{"right id, wrong secret", wrongSecret, Principal{}, ErrUnknownKey},
				{"unknown id", unknown, Principal{}, ErrUnknownKey},
				{"malformed", "lga_" + k1.ID, Principal{}, ErrMalformed},
				{"empty", "", Principal{}, ErrMalformed},
			} {
				t.Run(tc.name, func(t *testing.T) {
					for _, r := range []*Registry{a, rb} {
						got, err := r.Verify(ctx, tc.token)
						if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
							t.Fatalf("Verify = %v, want %v", err, tc.err)
						}
						noSecret(t, err, secret1, secret2, tc.token[min(len(tc.token), 17):])
						if diff := cmp.Diff(tc.want, got); diff != "" {
							t.Errorf("Verify (-want +got):\n%s", diff)
						}
					}
				})
			}

			// b has k1 cached. Revoking on a is seen by a at once, by b once
			// its cache entry is older than CacheTTL.
			if err := a.Revoke(ctx, k1.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Verify(ctx, plain1); !errors.Is(err, ErrRevoked) {
				t.Errorf("Verify on the revoking registry = %v, want ErrRevoked", err)
			}
			if _, err := rb.Verify(ctx, plain1); err != nil {
				t.Errorf("Verify within CacheTTL on another registry = %v, want the cached answer", err)
			}
			c.Add(DefaultCacheTTL)
			_, err = rb.Verify(ctx, plain1)
			if !errors.Is(err, ErrRevoked) {
				t.Errorf("Verify after CacheTTL on another registry = %v, want ErrRevoked", err)
			}
			noSecret(t, err, secret1)
			// A wrong secret for a revoked key says unknown, not revoked.
			if _, err := rb.Verify(ctx, wrongSecret); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("Verify of a wrong secret for a revoked key = %v, want ErrUnknownKey", err)
			}

			if err := a.Revoke(ctx, k1.ID); err != nil {
				t.Errorf("Revoke again = %v, want nil", err)
			}
			if err := a.Revoke(ctx, "aaaaaaaaaaaa"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Revoke of an unknown id = %v, want ErrNotFound", err)
			}
			if err := a.Revoke(ctx, "../../x"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Revoke of a bad id = %v, want ErrNotFound", err)
			}
			list, err = rb.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			revoked := c.Now().Add(-DefaultCacheTTL)
			k1.Revoked = &revoked
			if diff := cmp.Diff([]Key{k1, k2}, list); diff != "" {
				t.Errorf("List after revoke (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRegistryCache(t *testing.T) {
	kv, _ := backends[0].open(t)
	ctx := t.Context()
	c := newClock()
	count := &countingKV{KV: kv}
	r := newRegistry(t, count, RegistryConfig{CacheSize: 3}, c)
	plain, _, err := r.Create(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	unknown, _, _ := newKey()
	for _, tc := range []struct {
		name     string
		token    string
		advance  time.Duration
		wantGets int64
	}{
		{"first lookup reads", plain, 0, 1},
		{"second is cached", plain, time.Second, 0},
		{"stale entry reads again", plain, DefaultCacheTTL, 1},
		{"unknown reads", unknown, 0, 1},
		{"unknown is cached too", unknown, time.Second, 0},
		{"and expires", unknown, DefaultCacheTTL, 1},
	} {
		c.Add(tc.advance)
		before := count.gets.Load()
		r.Verify(ctx, tc.token)
		if got := count.gets.Load() - before; got != tc.wantGets {
			t.Errorf("%s: %d reads, want %d", tc.name, got, tc.wantGets)
		}
	}
	for range 20 {
		k, _, _ := newKey()
		r.Verify(ctx, k)
	}
	if n := len(r.cache); n > 3 {
		t.Errorf("cache holds %d entries, bound is 3", n)
	}
}

func TestRegistryStatic(t *testing.T) {
	ctx := t.Context()
	plain, id, hash := newKey()
	static := Key{ID: id, Tenant: "acme", Name: "file", Hash: hash, Limits: Limits{RPM: 5}}
	keys, err := ParseKeyFile([]byte(FileLine(static) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	kv, _ := backends[1].open(t)
	for _, tc := range []struct {
		name string
		kv   KV
	}{{"no store", nil}, {"with store", kv}} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRegistry(t, tc.kv, RegistryConfig{Static: keys}, newClock())
			got, err := r.Verify(ctx, plain)
			if err != nil {
				t.Fatal(err)
			}
			want := Principal{Tenant: "acme", KeyID: id, Limits: Limits{RPM: 5}, Method: MethodKey}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Verify (-want +got):\n%s", diff)
			}
			other, _, _ := newKey()
			if _, err := r.Verify(ctx, "lga_"+id+other[len("lga_")+IDLen:]); !errors.Is(err, ErrUnknownKey) {
				t.Errorf("Verify with a wrong secret = %v, want ErrUnknownKey", err)
			}
			if err := r.Revoke(ctx, id); !errors.Is(err, ErrNoStore) {
				t.Errorf("Revoke of a static key = %v, want ErrNoStore", err)
			}
			if tc.kv == nil {
				if _, _, err := r.Create(ctx, "acme", ""); !errors.Is(err, ErrNoStore) {
					t.Errorf("Create without a store = %v, want ErrNoStore", err)
				}
				if _, err := r.List(ctx); !errors.Is(err, ErrNoStore) {
					t.Errorf("List without a store = %v, want ErrNoStore", err)
				}
			}
		})
	}
}

func TestRegistryCreateRejects(t *testing.T) {
	kv, _ := backends[1].open(t)
	r := newRegistry(t, kv, RegistryConfig{}, newClock())
	for _, tc := range []struct {
		name, tenant, label string
		limits              Limits
	}{
		{"bad tenant", "a:b", "", Limits{}},
		{"empty tenant", "", "", Limits{}},
		{"control in name", "acme", "ci\x1b[2J", Limits{}},
		{"long name", "acme", strings.Repeat("x", MaxNameLen+1), Limits{}},
		{"negative limit", "acme", "", Limits{RPM: -1}},
	} {
		if _, _, err := r.CreateWithLimits(t.Context(), tc.tenant, tc.label, tc.limits); err == nil {
			t.Errorf("%s: Create succeeded", tc.name)
		}
	}
	if list, err := r.List(t.Context()); err != nil || len(list) != 0 {
		t.Errorf("List = %v, %v; want nothing", list, err)
	}
}

// Creates racing in one process all land in the index.
func TestRegistryConcurrentCreate(t *testing.T) {
	kv, _ := backends[0].open(t)
	r := newRegistry(t, kv, RegistryConfig{}, newClock())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := r.Create(t.Context(), "acme", ""); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if list, err := r.List(t.Context()); err != nil || len(list) != 8 {
		t.Errorf("List = %d keys, %v; want 8", len(list), err)
	}
}

// TestRegistryHasKeys is what startup asks before it accepts mode key: a
// static key, or a stored one (revoked or not), counts; nothing does not.
func TestRegistryHasKeys(t *testing.T) {
	ctx := t.Context()
	_, id, hash := newKey()
	static := []Key{{ID: id, Tenant: "acme", Hash: hash}}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			kv, _ := b.open(t)
			stored := newRegistry(t, kv, RegistryConfig{}, newClock())
			var got []bool
			for _, r := range []*Registry{newRegistry(t, nil, RegistryConfig{}, newClock()), newRegistry(t, nil, RegistryConfig{Static: static}, newClock()), stored} {
				has, err := r.HasKeys(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, has)
			}
			_, k, err := stored.Create(ctx, "acme", "")
			if err != nil {
				t.Fatal(err)
			}
			if err := stored.Revoke(ctx, k.ID); err != nil {
				t.Fatal(err)
			}
			has, err := stored.HasKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, has)
			if diff := cmp.Diff([]bool{false, true, false, true}, got); diff != "" {
				t.Errorf("HasKeys of none, static, empty store, store with a revoked key (-want +got):\n%s", diff)
			}
		})
	}
}

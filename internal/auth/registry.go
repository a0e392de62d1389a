package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"
)

// A KV is the storage a [Registry] needs: exactly the two methods the
// session stores already have (session.KV; redisstore and filestore
// implement it), so keys live in the configured store with no new
// dependency.
type KV interface {
	// Get returns the value under key, or nil and no error when there is
	// none.
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key; ttl 0 means no expiry.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// Store layout. Verify reads one record; only List reads the index.
const (
	recordPrefix = "auth:key:" // + id: the Key as JSON
	indexKey     = "auth:keys" // JSON array of ids, oldest first
)

// Defaults for a zero [RegistryConfig].
const (
	// DefaultCacheTTL bounds how long Verify trusts what it read. With it
	// a revocation takes effect on every instance within 5 s (#13): an
	// instance may answer from its cache for 2 s, then reads the store.
	DefaultCacheTTL = 2 * time.Second
	// DefaultCacheSize bounds the number of ids cached, found or not.
	DefaultCacheSize = 10000
)

// RegistryConfig tunes a [Registry]. A zero field means its default.
type RegistryConfig struct {
	// Static are keys from a key file (see [ParseKeyFile]). Verify
	// consults them first, then the store; they cannot be revoked but by
	// removing them from the file.
	Static []Key
	// CacheTTL is how long Verify reuses a lookup, positive or negative.
	// Zero means DefaultCacheTTL; negative turns the cache off. Keep it
	// under 5 s: it is most of the time a revocation takes to be seen.
	CacheTTL time.Duration
	// CacheSize bounds the cache. Zero means DefaultCacheSize.
	CacheSize int
}

// A Registry creates, lists, revokes and verifies API keys. Keys live in
// a [KV] (one JSON record per key, auth:key:<id>, and an index auth:keys
// for List) and, read-only, in a static key file. It is safe for
// concurrent use; any number of Registries, in any number of processes,
// may share one store.
type Registry struct {
	kv       KV
	static   map[string]Key
	cacheTTL time.Duration
	size     int
	now      func() time.Time // time.Now; tests move it

	// indexMu serialises this process's updates of the index.
	indexMu sync.Mutex

	mu sync.Mutex
	// cache maps a key id to what the store held, nil for nothing, and
	// when it was read. Guarded by mu.
	cache map[string]cached
}

type cached struct {
	key  *Key
	read time.Time
}

// NewRegistry returns a Registry over kv, which may be nil when keys come
// only from cfg.Static (then Create, List and Revoke return [ErrNoStore]).
// It does no I/O.
func NewRegistry(kv KV, cfg RegistryConfig) (*Registry, error) {
	if cfg.CacheSize < 0 {
		return nil, fmt.Errorf("auth: negative CacheSize %d", cfg.CacheSize)
	}
	r := &Registry{kv: kv, static: map[string]Key{}, cacheTTL: cfg.CacheTTL, size: cfg.CacheSize,
		now: time.Now, cache: map[string]cached{}}
	if r.cacheTTL == 0 {
		r.cacheTTL = DefaultCacheTTL
	}
	if r.size == 0 {
		r.size = DefaultCacheSize
	}
	for _, k := range cfg.Static {
		if err := k.validate(); err != nil {
			return nil, fmt.Errorf("auth: static %w", err)
		}
		if _, dup := r.static[k.ID]; dup {
			return nil, fmt.Errorf("auth: static key %s given twice", k.ID)
		}
		r.static[k.ID] = k
	}
	return r, nil
}

// Create makes a key for tenant, stores its hash and returns the
// plaintext key, which is never shown again, with its record. name is a
// label for people (at most [MaxNameLen] bytes, no control characters).
func (r *Registry) Create(ctx context.Context, tenant, name string) (string, Key, error) {
	return r.CreateWithLimits(ctx, tenant, name, Limits{})
}

// CreateWithLimits is [Registry.Create] for a key with its own limits.
func (r *Registry) CreateWithLimits(ctx context.Context, tenant, name string, l Limits) (string, Key, error) {
	if r.kv == nil {
		return "", Key{}, ErrNoStore
	}
	if err := ValidTenant(tenant); err != nil {
		return "", Key{}, err
	}
	if err := validName(name); err != nil {
		return "", Key{}, fmt.Errorf("auth: key %w", err)
	}
	if err := l.validate(); err != nil {
		return "", Key{}, fmt.Errorf("auth: %w", err)
	}
	plain, id, hash := newKey()
	k := Key{ID: id, Tenant: tenant, Name: name, Hash: hash, Created: r.now().UTC().Truncate(time.Second), Limits: l}
	// The record first: once it exists the key works, even if the index
	// update below fails and leaves it out of List.
	if err := r.put(ctx, &k); err != nil {
		return "", Key{}, err
	}
	r.forget(id)
	if err := r.addToIndex(ctx, id); err != nil {
		return "", Key{}, err
	}
	return plain, k, nil
}

// addToIndex adds id to the index. The KV has no compare-and-set, so two
// processes creating keys at once could each write back the list they
// read and drop the other's id. Reading the index back and retrying
// makes that unlikely; should it happen, the key still verifies and can
// be revoked by id, it is only missing from List. Keys are created by an
// operator, rarely, so this is enough.
func (r *Registry) addToIndex(ctx context.Context, id string) error {
	r.indexMu.Lock()
	defer r.indexMu.Unlock()
	for try := range 5 {
		ids, err := r.index(ctx)
		if err != nil {
			return err
		}
		if try > 0 && slices.Contains(ids, id) {
			return nil
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
		b, _ := json.Marshal(ids)
		if err := r.kv.Set(ctx, indexKey, b, 0); err != nil {
			return fmt.Errorf("auth: add key %s to the index: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("auth: add key %s to the index: %w", id, ctx.Err())
		case <-time.After(time.Duration(try*10) * time.Millisecond):
		}
	}
	ids, err := r.index(ctx)
	if err == nil && !slices.Contains(ids, id) {
		err = fmt.Errorf("auth: key %s created but left out of the index by concurrent creates; it works but List misses it", id)
	}
	return err
}

func (r *Registry) index(ctx context.Context) ([]string, error) {
	b, err := r.kv.Get(ctx, indexKey)
	if err != nil {
		return nil, fmt.Errorf("auth: read key index: %w", err)
	}
	if b == nil {
		return nil, nil
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("auth: read key index: %w", err)
	}
	return ids, nil
}

// HasKeys reports whether the Registry knows any key at all, static or
// stored (revoked ones included): startup refuses mode key without one
// (#13). It reads the index only, one store round trip.
func (r *Registry) HasKeys(ctx context.Context) (bool, error) {
	if len(r.static) > 0 {
		return true, nil
	}
	if r.kv == nil {
		return false, nil
	}
	ids, err := r.index(ctx)
	if err != nil {
		return false, err
	}
	return len(ids) > 0, nil
}

// List returns the stored keys, oldest first, revoked ones included. It
// never returns a secret (only hashes, which do not give a key away). It
// leaves out static keys: they are listed in their file.
func (r *Registry) List(ctx context.Context) ([]Key, error) {
	if r.kv == nil {
		return nil, ErrNoStore
	}
	ids, err := r.index(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]Key, 0, len(ids))
	for _, id := range ids {
		k, err := r.get(ctx, id)
		if err != nil {
			return nil, err
		}
		if k != nil {
			keys = append(keys, *k)
		}
	}
	return keys, nil
}

// Revoke marks the stored key id revoked; its record stays, so List still
// shows it and when. Revoking a revoked key changes nothing. An unknown id
// gives [ErrNotFound], a static key [ErrNoStore]. Every Registry sharing
// the store refuses the key within its CacheTTL.
func (r *Registry) Revoke(ctx context.Context, id string) error {
	if _, ok := r.static[id]; ok {
		return fmt.Errorf("auth: key %s is in the static key file; delete its line there: %w", id, ErrNoStore)
	}
	if r.kv == nil {
		return ErrNoStore
	}
	if err := validID(id); err != nil {
		return fmt.Errorf("auth: revoke: %w: %v", ErrNotFound, err)
	}
	k, err := r.get(ctx, id)
	if err != nil {
		return err
	}
	if k == nil {
		return fmt.Errorf("auth: revoke key %s: %w", id, ErrNotFound)
	}
	if k.Revoked != nil {
		return nil
	}
	t := r.now().UTC().Truncate(time.Second)
	k.Revoked = &t
	if err := r.put(ctx, k); err != nil {
		return err
	}
	r.forget(id)
	return nil
}

// Verify returns the principal of an API key token (as [ParseKey] reads
// it). It checks the static keys, then the store through a cache of at
// most CacheTTL. A token of the wrong form gives [ErrMalformed]; an
// unknown id or a wrong secret [ErrUnknownKey]; a revoked key, with the
// right secret, [ErrRevoked]. Other errors mean the store failed.
func (r *Registry) Verify(ctx context.Context, token string) (Principal, error) {
	id, secret, err := ParseKey(token)
	if err != nil {
		return Principal{}, err
	}
	var k *Key
	if sk, ok := r.static[id]; ok {
		k = &sk
	} else if r.kv != nil {
		if k, err = r.lookup(ctx, id); err != nil {
			return Principal{}, err
		}
	}
	if k == nil || !k.matches(secret) {
		return Principal{}, fmt.Errorf("%w %s", ErrUnknownKey, id)
	}
	if k.Revoked != nil {
		return Principal{}, fmt.Errorf("%w: %s", ErrRevoked, id)
	}
	return Principal{Tenant: k.Tenant, KeyID: k.ID, Limits: k.Limits, Method: MethodKey}, nil
}

// lookup reads id through the cache.
func (r *Registry) lookup(ctx context.Context, id string) (*Key, error) {
	now := r.now()
	if r.cacheTTL > 0 {
		r.mu.Lock()
		c, ok := r.cache[id]
		r.mu.Unlock()
		if ok && now.Sub(c.read) < r.cacheTTL && !now.Before(c.read) {
			return c.key, nil
		}
	}
	k, err := r.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.cacheTTL > 0 {
		r.mu.Lock()
		r.storeLocked(id, cached{key: k, read: now})
		r.mu.Unlock()
	}
	return k, nil
}

// storeLocked caches c under id. When the cache is full it drops expired
// entries, then, if still full, arbitrary ones: an attacker spraying
// unknown ids can only cost us lookups, never a stale answer.
func (r *Registry) storeLocked(id string, c cached) {
	if _, ok := r.cache[id]; !ok && len(r.cache) >= r.size {
		for k, v := range r.cache {
			if c.read.Sub(v.read) >= r.cacheTTL {
				delete(r.cache, k)
			}
		}
		for k := range r.cache {
			if len(r.cache) < r.size {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[id] = c
}

// forget drops id from this Registry's cache after it changed the key.
func (r *Registry) forget(id string) {
	r.mu.Lock()
	delete(r.cache, id)
	r.mu.Unlock()
}

func (r *Registry) get(ctx context.Context, id string) (*Key, error) {
	b, err := r.kv.Get(ctx, recordPrefix+id)
	if err != nil {
		return nil, fmt.Errorf("auth: read key %s: %w", id, err)
	}
	if b == nil {
		return nil, nil
	}
	var k Key
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("auth: read key %s: %w", id, err)
	}
	if k.ID != id {
		return nil, fmt.Errorf("auth: read key %s: record names key %q", id, k.ID)
	}
	if err := k.validate(); err != nil {
		return nil, fmt.Errorf("auth: read key %s: %w", id, err)
	}
	return &k, nil
}

func (r *Registry) put(ctx context.Context, k *Key) error {
	b, err := json.Marshal(k)
	if err != nil {
		return fmt.Errorf("auth: write key %s: %w", k.ID, err)
	}
	if err := r.kv.Set(ctx, recordPrefix+k.ID, b, 0); err != nil {
		return fmt.Errorf("auth: write key %s: %w", k.ID, err)
	}
	return nil
}

package storetest

import (
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/session"
)

// The subtests of session.KV, the deployment-wide values (such as the MCP
// session ids every process continues, #8).

func get(t *testing.T, kv session.KV, key string) []byte {
	t.Helper()
	v, err := kv.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	return v
}

func set(t *testing.T, kv session.KV, key, value string, ttl time.Duration) {
	t.Helper()
	if err := kv.Set(t.Context(), key, []byte(value), ttl); err != nil {
		t.Fatalf("Set(%s): %v", key, err)
	}
}

// testKV checks session.KV: missing keys, bytes kept as they are,
// overwrites, expiry, and that its keys and sessions do not mix.
func testKV(t *testing.T, s session.Store) {
	if v := get(t, s, "missing"); v != nil {
		t.Errorf("Get of a missing key = %q; want nil", v)
	}
	value := "{\"remote\":{\"id\":\"abc\"}}\x00\xff"
	set(t, s, "mcp:sessions", value, longLease)
	if v := get(t, s, "mcp:sessions"); string(v) != value {
		t.Errorf("Get = %q; want %q", v, value)
	}
	set(t, s, "mcp:sessions", "second", 0)
	if v := get(t, s, "mcp:sessions"); string(v) != "second" {
		t.Errorf("Get after overwrite = %q; want second", v)
	}

	set(t, s, "short", "soon gone", shortLease)
	if v := get(t, s, "short"); string(v) != "soon gone" {
		t.Errorf("Get before expiry = %q", v)
	}
	eventually(t, "KV value expired", func() bool { return get(t, s, "short") == nil })

	// A key named like a session is not that session, either way.
	set(t, s, "kv-session", "value", longLease)
	tok := token()
	st := begin(t, s, session.BeginRequest{ID: "kv-session", LeaseToken: tok, LeaseTTL: longLease})
	if st.Version != 0 {
		t.Errorf("Begin of a session named like a KV key: Version = %d; want 0", st.Version)
	}
	commit(t, s, session.Commit{ID: "kv-session", LeaseToken: tok, Version: 0, Messages: msgs(msgUser), Turns: 1, Release: true})
	if err := s.Delete(t.Context(), "kv-session"); err != nil {
		t.Fatal(err)
	}
	if v := get(t, s, "kv-session"); string(v) != "value" {
		t.Errorf("Get after deleting a session of the same name = %q; want value", v)
	}
	// Without a TTL the value stays (at least longer than a short one).
	time.Sleep(2 * shortLease)
	if v := get(t, s, "mcp:sessions"); string(v) != "second" {
		t.Errorf("Get of a value set without TTL = %q; want second", v)
	}
}

// testKVShared checks that two stores on one backend share their values:
// that is what lets a new process continue the MCP sessions of an old one.
func testKVShared(t *testing.T, a, b session.Store) {
	set(t, a, "shared", "from a", longLease)
	if v := get(t, b, "shared"); string(v) != "from a" {
		t.Errorf("Get on the second store = %q; want from a", v)
	}
}

package redistest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/redistest"
)

func TestStartShares(t *testing.T) {
	a := redistest.Start(t)
	b := redistest.Start(t)
	if a != b {
		t.Errorf("Start twice in one test = %q, %q; want one server", a, b)
	}
	if err := redistest.Client(t, a).Ping(t.Context()).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
}

func TestURL(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:6379", "redis://127.0.0.1:6379"},
		{"rediss://user:pw@example.com:6380/2", "rediss://user:pw@example.com:6380/2"},
	} {
		if got := redistest.URL(tc.addr); got != tc.want {
			t.Errorf("URL(%q) = %q; want %q", tc.addr, got, tc.want)
		}
		if _, err := redis.ParseURL(redistest.URL(tc.addr)); err != nil {
			t.Errorf("ParseURL(URL(%q)): %v", tc.addr, err)
		}
	}
}

func TestPrefix(t *testing.T) {
	a := redistest.Prefix(t)
	if b := redistest.Prefix(t); a != b {
		t.Errorf("Prefix twice with one t = %q, %q; want the same", a, b)
	}
	var sub string
	t.Run("sub{tag}", func(t *testing.T) { sub = redistest.Prefix(t) })
	if sub == a {
		t.Errorf("Prefix of a subtest = %q, the same as its parent's", sub)
	}
	for _, p := range []string{a, sub} {
		if !strings.HasSuffix(p, ":") || strings.ContainsAny(p, "{}") {
			t.Errorf("Prefix = %q; want a ':' suffix and no braces", p)
		}
	}
}

func TestServerKillRestart(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DialerRetries: 1, DialTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	ctx := t.Context()

	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	srv.Kill()
	if err := rdb.Ping(ctx).Err(); err == nil {
		t.Fatal("PING after Kill succeeded")
	}
	srv.Kill() // a second Kill does nothing
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		t.Fatalf("PING after Restart: %v", err)
	}
	// The server starts empty: nothing is saved.
	if err := rdb.Get(ctx, "k").Err(); err != redis.Nil {
		t.Errorf("GET after Restart: err = %v; want redis.Nil", err)
	}
	if err := srv.Restart(); err != nil { // restart a running server
		t.Fatal(err)
	}
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		t.Fatalf("PING after second Restart: %v", err)
	}
}

// TestClusterFailover kills a master and checks its replica takes over.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t)
	ctx := t.Context()
	m, err := c.MasterOf(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	rdb := redistest.Client(t, c.URL())
	if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.Kill(m)
	if err := c.WaitHealthy(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	m2, err := c.MasterOf(ctx, "k")
	if err != nil || m2 == m {
		t.Fatalf("master of k after the kill = %s, %v; want another than %s", m2, err, m)
	}
	t.Logf("replica %s promoted %v after %s was killed", m2, time.Since(start).Round(time.Millisecond), m)
	// A client that knew the old master finds the new one.
	var last error
	for time.Since(start) < 20*time.Second {
		if last = rdb.Set(ctx, "k", "w", 0).Err(); last == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("SET through the old client 20s after the kill: %v", last)
	}
	t.Logf("the old client wrote again %v after the kill", time.Since(start).Round(time.Millisecond))
}

// TestStartTLS checks that $REDISTEST_TLS makes Start hand out a rediss://
// URL that Client reaches, verified with the server's CA.
func TestStartTLS(t *testing.T) {
	t.Setenv(redistest.EnvURL, "")
	t.Setenv(redistest.EnvCluster, "")
	t.Setenv(redistest.EnvTLS, "1")
	u := redistest.Start(t)
	if !strings.HasPrefix(u, "rediss://") {
		t.Fatalf("Start = %q; want a rediss:// URL", u)
	}
	if err := redistest.Client(t, u).Ping(t.Context()).Err(); err != nil {
		t.Fatalf("PING over TLS: %v", err)
	}
}

package redisconn_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/redisconn"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

func TestNewParses(t *testing.T) {
	for _, tc := range []struct {
		name, url string
		cluster   bool
		addrs     []string
		tls       bool
		wantErr   string
	}{
		{"node", "redis://127.0.0.1:6379", false, []string{"127.0.0.1:6379"}, false, ""},
		{"node db password", "redis://u:pw@h:1/2", false, []string{"h:1"}, false, ""},
		{"tls node", "rediss://h:6380", false, []string{"h:6380"}, true, ""},
		{"cluster list", "redis://a:1,b:2,c:3", true, []string{"a:1", "b:2", "c:3"}, false, ""},
		{"cluster list password tls", "rediss://u:pw@a:1,b:2/?dial_timeout=1s", true, []string{"a:1", "b:2"}, true, ""},
		{"cluster flag", "redis://a:1?cluster=true", true, []string{"a:1"}, false, ""},
		{"cluster flag off", "redis://a:1?cluster=false", false, []string{"a:1"}, false, ""},
		{"list but flag off", "redis://a:1,b:2?cluster=false", false, nil, false, "cluster=false"},
		{"bad flag", "redis://a:1?cluster=maybe", false, nil, false, "want true or false"},
		{"cluster db", "redis://a:1,b:2/3", false, nil, false, "only database 0"},
		{"empty host", "redis://a:1,,b:2", false, nil, false, "empty host"},
		{"scheme", "http://a:1", false, nil, false, "want redis://"},
		{"unknown option, password kept out", "redis://u:secretpw@a:1?bogus=1", false, nil, false, "does not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, info, err := redisconn.New(redisconn.Config{URL: tc.url})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New(%q) = %v; want an error with %q", tc.url, err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secretpw") {
					t.Errorf("error %q quotes the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			_, isCluster := rdb.(*redis.ClusterClient)
			if isCluster != tc.cluster || info.Cluster != tc.cluster {
				t.Errorf("cluster client %v, info %v; want %v", isCluster, info.Cluster, tc.cluster)
			}
			if strings.Join(info.Addrs, " ") != strings.Join(tc.addrs, " ") || info.TLS != tc.tls {
				t.Errorf("info = %+v; want addrs %v tls %v", info, tc.addrs, tc.tls)
			}
		})
	}
}

func TestCAOnlyWithTLS(t *testing.T) {
	_, _, err := redisconn.New(redisconn.Config{URL: "redis://h:1", CA: string(redistest.NewCAPEM(t))})
	if err == nil || !strings.Contains(err.Error(), "not rediss://") {
		t.Errorf("CA with redis:// = %v; want an error saying it is unused", err)
	}
	_, _, err = redisconn.New(redisconn.Config{URL: "rediss://h:1", CA: "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"})
	if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad PEM = %v; want a no-certificate error", err)
	}
	_, _, err = redisconn.New(redisconn.Config{URL: "rediss://h:1", CA: "/nonexistent/ca.pem"})
	if err == nil || !strings.Contains(err.Error(), "LAMBDAGENT_REDIS_CA") {
		t.Errorf("missing file = %v; want an error naming LAMBDAGENT_REDIS_CA", err)
	}
}

// TestTLS checks rediss:// against a redis-server that speaks only TLS,
// with a certificate signed by a CA the test made: the CA as a file or
// as PEM works; the system's roots or another CA fail at Check, fast,
// with an error that says the CA is the problem.
func TestTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	for _, tc := range []struct {
		name, url, ca string
		wantErr       string // "" for success
		config        bool   // the error wraps ErrConfig
	}{
		{"CA file", srv.URL(), srv.CAFile, "", false},
		{"CA PEM", srv.URL(), string(srv.CA), "", false},
		{"CA PEM via localhost", "rediss://localhost:" + port(srv.Addr), string(srv.CA), "", false},
		{"system roots", srv.URL(), "", "LAMBDAGENT_REDIS_CA", true},
		{"wrong CA", srv.URL(), string(redistest.NewCAPEM(t)), "LAMBDAGENT_REDIS_CA", true},
		{"plain text to the TLS port", "redis://" + srv.Addr, "", "rediss://", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdb, _, err := redisconn.New(redisconn.Config{URL: tc.url, CA: tc.ca})
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			start := time.Now()
			err = redisconn.Check(t.Context(), rdb)
			took := time.Since(start)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				if err := rdb.Set(t.Context(), redistest.Prefix(t)+"k", "v", time.Minute).Err(); err != nil {
					t.Fatalf("SET over TLS: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Check = %v; want an error with %q", err, tc.wantErr)
			}
			if errors.Is(err, redisconn.ErrConfig) != tc.config {
				t.Errorf("errors.Is(%v, ErrConfig) = %v; want %v", err, !tc.config, tc.config)
			}
			if took > redisconn.DefaultCheckTimeout+time.Second {
				t.Errorf("Check took %v; want a fast failure", took)
			}
			t.Logf("%s: %v (in %v)", tc.name, err, took.Round(time.Millisecond))
		})
	}
}

// TestTLSPlainPort checks rediss:// to a port that speaks plain text:
// redis-server reads the TLS hello as the start of a command and never
// answers, so this is a timeout, bounded and explained.
func TestTLSPlainPort(t *testing.T) {
	addr := redistest.Start(t)
	if strings.Contains(addr, "://") {
		t.Skip("$REDIS_URL is set")
	}
	rdb, _, err := redisconn.New(redisconn.Config{URL: "rediss://" + addr, CA: string(redistest.NewCAPEM(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	start := time.Now()
	err = redisconn.Check(t.Context(), rdb)
	if err == nil || !strings.Contains(err.Error(), "plain-text port named by rediss://") {
		t.Errorf("Check = %v; want an error naming a plain-text port", err)
	}
	if took := time.Since(start); took > redisconn.DefaultCheckTimeout+time.Second {
		t.Errorf("Check took %v; want at most about %v", took, redisconn.DefaultCheckTimeout)
	}
}

func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	for _, u := range []string{c.URL(), "redis://" + c.Addrs[0] + "?cluster=true"} {
		rdb, info, err := redisconn.New(redisconn.Config{URL: u})
		if err != nil {
			t.Fatal(err)
		}
		if err := redisconn.Check(t.Context(), rdb); err != nil {
			t.Fatalf("%s: Check: %v", u, err)
		}
		// Keys on every master: the client follows the slots.
		for i := range 50 {
			k := redistest.Prefix(t) + string(rune('a'+i%26)) + strings.Repeat("x", i)
			if err := rdb.Set(t.Context(), k, i, time.Minute).Err(); err != nil {
				t.Fatalf("%s: SET %s: %v", u, k, err)
			}
		}
		if !info.Cluster {
			t.Errorf("%s: info.Cluster = false", u)
		}
		rdb.Close()
	}
}

func port(addr string) string { return addr[strings.LastIndex(addr, ":")+1:] }

// TestLargeValues sends and reads back values far larger than the
// connections' 4 KiB buffers, in one command and in a script, as a long
// session's history is.
func TestLargeValues(t *testing.T) {
	rdb, _, err := redisconn.New(redisconn.Config{URL: redistest.URL(redistest.Start(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	key := "{" + redistest.Prefix(t) + "}big"
	for _, n := range []int{4095, 4096, 70_000, 3 << 20} {
		want := strings.Repeat("x", n-1) + "!"
		if err := rdb.Set(t.Context(), key, want, time.Minute).Err(); err != nil {
			t.Fatalf("set %d bytes: %v", n, err)
		}
		got, err := rdb.Get(t.Context(), key).Result()
		if err != nil || got != want {
			t.Fatalf("get %d bytes: %d bytes, %v; want them back", n, len(got), err)
		}
		got, err = rdb.Eval(t.Context(), "return redis.call('GET', KEYS[1]) .. ARGV[1]", []string{key}, want).Text()
		if err != nil || got != want+want {
			t.Fatalf("script over %d bytes: %d bytes, %v; want %d", n, len(got), err, 2*n)
		}
	}
}

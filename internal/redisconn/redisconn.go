// Package redisconn builds the one Redis client of a process from a URL:
// a single node, a Redis Cluster, with or without verified TLS.
//
// Every part of lambdagent that talks to Redis (the session store, the
// rate limiter, the keys command) takes a [redis.UniversalClient] built
// here, so the URL syntax, the timeouts and the TLS checks are written
// once (see #17). The syntax is REDIS_URL's:
//
//	redis://[user:password@]host:port[/db]          one node
//	rediss://…                                      the same over TLS
//	redis://host1:port1,host2:port2,host3:port3     a Redis Cluster (seeds)
//	redis://host:port?cluster=true                  a cluster from one seed
//
// Several hosts, or cluster=true, select go-redis's cluster client, which
// learns the other nodes from the seeds and follows MOVED/ASK redirects
// and failovers. Other query parameters are go-redis's (dial_timeout,
// pool_size, …).
//
// A custom CA ([Config.CA]) replaces the system roots for rediss://; the
// server's certificate is always verified. [Check] sends a PING under a
// short timeout and names what is wrong (an unknown CA, a host name the
// certificate does not cover, a plain-text client on a TLS port, a
// password): a bad TLS setup fails at startup, not as a hang on the first
// turn.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of a zero [Config]: a turn whose Redis is away answers 503
// within seconds rather than hang.
const (
	DefaultDialTimeout = 2 * time.Second
	DefaultIOTimeout   = 3 * time.Second
	// DefaultCheckTimeout bounds [Check]'s PING.
	DefaultCheckTimeout = 3 * time.Second
	// bufferSize is each pooled connection's read and write buffer.
	// go-redis's default is 32 KiB each, 64 KiB a connection, most of
	// the Redis client's memory (see #17, memory per in-flight turn); a
	// turn's commands and replies are a few hundred bytes, and a longer
	// bulk reply is read straight into its own slice, past the buffer.
	bufferSize = 4 << 10
)

// Config says how to reach Redis. A zero field means its default.
type Config struct {
	// URL is REDIS_URL (see the package comment). Required.
	URL string
	// CA is the PEM of the certificate authorities that sign the server's
	// certificate (LAMBDAGENT_REDIS_CA), or the path of a file holding
	// it: a value that contains "-----BEGIN" is PEM. Empty means the
	// system's roots. Only for rediss://.
	CA string
	// DialTimeout bounds a connection's dial and TLS handshake. Zero means
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// IOTimeout bounds a command's write and read. Zero means
	// DefaultIOTimeout.
	IOTimeout time.Duration
}

// Info describes the client [New] built, for a startup log line. It holds
// no secret.
type Info struct {
	Addrs   []string // the seeds of a cluster, or the one node
	Cluster bool
	TLS     bool
	CA      bool // a custom CA, rather than the system's roots
}

// New builds the client cfg names. It does no I/O: call [Check] to find
// out whether Redis answers.
//
// Its errors never quote the URL, whose password go-redis would print.
func New(cfg Config) (redis.UniversalClient, Info, error) {
	urls, cluster, err := split(cfg.URL)
	if err != nil {
		return nil, Info{}, err
	}
	dial, io := cfg.DialTimeout, cfg.IOTimeout
	if dial == 0 {
		dial = DefaultDialTimeout
	}
	if io == 0 {
		io = DefaultIOTimeout
	}
	var info Info
	var tlsCfg *tls.Config
	if !cluster {
		opt, err := redis.ParseURL(urls)
		if err != nil {
			return nil, info, fmt.Errorf("REDIS_URL does not parse as a Redis URL (redis://[user:password@]host:port[/db]): %s", scrub(err))
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = dial, io, io
		opt.MaxRetries, opt.DialerRetries = 1, 1
		opt.ReadBufferSize, opt.WriteBufferSize = bufferSize, bufferSize
		if tlsCfg, err = withCA(opt.TLSConfig, cfg.CA); err != nil {
			return nil, info, err
		}
		opt.TLSConfig = tlsCfg
		info = Info{Addrs: []string{opt.Addr}, TLS: tlsCfg != nil, CA: cfg.CA != ""}
		return redis.NewClient(opt), info, nil
	}
	opt, err := redis.ParseClusterURL(urls)
	if err != nil {
		return nil, info, fmt.Errorf("REDIS_URL does not parse as a Redis Cluster URL (redis://[user:password@]host1:port1,host2:port2?cluster=true): %s", scrub(err))
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = dial, io, io
	opt.DialerRetries = 1
	opt.ReadBufferSize, opt.WriteBufferSize = bufferSize, bufferSize
	// MaxRetries stays go-redis's: a cluster client spends retries on
	// MOVED and TRYAGAIN while slots move, which is its job.
	if opt.TLSConfig != nil {
		// One TLS config serves every node: let each be checked against
		// its own host name rather than the first seed's.
		opt.TLSConfig.ServerName = ""
	}
	if tlsCfg, err = withCA(opt.TLSConfig, cfg.CA); err != nil {
		return nil, info, err
	}
	opt.TLSConfig = tlsCfg
	opt.ClusterStateReloadInterval = clusterStateReload
	info = Info{Addrs: opt.Addrs, Cluster: true, TLS: tlsCfg != nil, CA: cfg.CA != ""}
	c := redis.NewClusterClient(opt)
	c.AddHook(reloadOnNetError{c})
	return c, info, nil
}

// split checks the scheme of u and turns the comma form of a cluster
// URL into go-redis's (the first host, then addr= parameters), dropping
// the cluster parameter, which go-redis does not know.
func split(u string) (string, bool, error) {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || (scheme != "redis" && scheme != "rediss") {
		return "", false, errors.New("REDIS_URL: want redis://… or rediss://… (TLS)")
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	path, query, _ := strings.Cut(tail, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", false, errors.New("REDIS_URL: the query does not parse")
	}
	cluster, saidNo := false, false
	if v := q.Get("cluster"); v != "" {
		if cluster, err = strconv.ParseBool(v); err != nil {
			return "", false, fmt.Errorf("REDIS_URL: cluster=%q: want true or false", v)
		}
		saidNo = !cluster
	}
	q.Del("cluster")
	addrs := strings.Split(hosts, ",")
	if len(addrs) > 1 {
		if saidNo {
			return "", false, errors.New("REDIS_URL: several hosts name a Redis Cluster, but cluster=false")
		}
		cluster = true
	}
	for _, a := range addrs {
		if a == "" {
			return "", false, errors.New("REDIS_URL: an empty host in the list")
		}
	}
	if cluster {
		if path != "" && path != "/" && path != "/0" {
			return "", false, errors.New("REDIS_URL: a Redis Cluster has only database 0")
		}
		path = ""
		for _, a := range addrs[1:] {
			q.Add("addr", a)
		}
	}
	out := scheme + "://" + userinfo + addrs[0] + path
	if len(q) > 0 {
		out += "?" + q.Encode()
	}
	return out, cluster, nil
}

// withCA returns c with the roots of ca, which is PEM or a file of it.
func withCA(c *tls.Config, ca string) (*tls.Config, error) {
	if ca == "" {
		return c, nil
	}
	if c == nil {
		return nil, errors.New("LAMBDAGENT_REDIS_CA is set but REDIS_URL is not rediss://: the CA would not be used")
	}
	pem := []byte(ca)
	if !strings.Contains(ca, "-----BEGIN") {
		var err error
		if pem, err = os.ReadFile(ca); err != nil {
			return nil, fmt.Errorf("LAMBDAGENT_REDIS_CA: %w", err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("LAMBDAGENT_REDIS_CA holds no PEM certificate")
	}
	c = c.Clone()
	c.RootCAs = pool
	c.MinVersion = tls.VersionTLS12
	return c, nil
}

// scrub keeps the first line of a go-redis parse error without the URL
// it may quote.
func scrub(err error) string {
	s := err.Error()
	if i := strings.Index(s, "://"); i >= 0 {
		return "bad URL"
	}
	return s
}

// ErrConfig marks a [Check] failure that waiting will not cure: TLS
// verification, a plain-text client on a TLS port, a refused password.
// A process should stop rather than serve 503s.
var ErrConfig = errors.New("redisconn: Redis refuses this configuration")

// Check sends PING under [DefaultCheckTimeout] (or ctx's deadline, if
// sooner) and explains a failure. An error wrapping [ErrConfig] is a
// configuration to fix; any other (Redis down, unreachable) may pass.
func Check(ctx context.Context, rdb redis.UniversalClient) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultCheckTimeout)
	defer cancel()
	err := rdb.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	return Explain(err)
}

// Explain names the likely cause of a connection error err: the TLS
// checks, the protocol and the password errors wrap [ErrConfig].
func Explain(err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var record tls.RecordHeaderError
	var verify *tls.CertificateVerificationError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: TLS: Redis's certificate is signed by an authority this process does not trust: set LAMBDAGENT_REDIS_CA to the CA that signed it (%v)", ErrConfig, err)
	case errors.As(err, &host):
		return fmt.Errorf("%w: TLS: Redis's certificate does not name the host in REDIS_URL (%v)", ErrConfig, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("%w: TLS: Redis's certificate is not valid (%v)", ErrConfig, err)
	case errors.As(err, &verify):
		return fmt.Errorf("%w: TLS: Redis's certificate fails verification (%v)", ErrConfig, err)
	case errors.As(err, &record):
		return fmt.Errorf("%w: TLS: Redis answered in plain text: use redis:// for this port, or its TLS port (%v)", ErrConfig, err)
	case redis.HasErrorPrefix(err, "WRONGPASS"), redis.HasErrorPrefix(err, "NOAUTH"), redis.HasErrorPrefix(err, "NOPERM"):
		return fmt.Errorf("%w: Redis refuses the user or password of REDIS_URL (%v)", ErrConfig, err)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("redis closed the connection at once: if this port speaks TLS, use rediss:// (%w)", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("redis did not answer PING within %v: down, unreachable, or a plain-text port named by rediss:// (%w)", DefaultCheckTimeout, err)
	}
	return fmt.Errorf("redis does not answer PING: %w", err)
}

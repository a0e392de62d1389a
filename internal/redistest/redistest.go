// Package redistest gives tests a real Redis instead of a mock.
//
// [Start] returns $REDIS_URL when it is set (CI may run Redis as a
// service) and otherwise runs redis-server from PATH on a free loopback
// port, without persistence, shared by the tests of one binary that run
// at the same time: a server costs a few milliseconds to start, and tests
// stay apart through [Prefix]. A test that must kill or restart Redis
// takes a server of its own with [StartServer].
//
// redis-server is a child of the test binary. On Linux it gets SIGKILL
// when the test binary dies, so a test that panics or times out leaves no
// server behind.
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/redisconn"
)

// EnvURL names the environment variable that points the tests at an
// existing Redis, as a redis:// or rediss:// URL.
const EnvURL = "REDIS_URL"

// startTimeout bounds how long a fresh redis-server may take to answer PING.
const startTimeout = 10 * time.Second

// shared is the redis-server handed out by Start. It runs while at least
// one test that asked for it is running.
var shared struct {
	mu   sync.Mutex
	srv  *proc // guarded by mu
	dir  string
	refs int
}

// Start returns the address of a Redis for t, to pass to [Client]: the
// value of $REDIS_URL as given when it is set, else host:port of a
// redis-server started for this test binary and stopped once no running
// test uses it. Tests that share it must keep their keys apart, with
// [Prefix]. If redis-server is not on PATH, Start fails the test: .ci/run
// installs it.
func Start(t testing.TB) string {
	t.Helper()
	if u := os.Getenv(EnvURL); u != "" {
		if _, _, err := redisconn.New(redisconn.Config{URL: u}); err != nil {
			t.Fatalf("redistest: $%s: %v", EnvURL, err)
		}
		return u
	}
	if os.Getenv(EnvCluster) != "" {
		return startSharedCluster(t)
	}
	if os.Getenv(EnvTLS) != "" {
		return startSharedTLS(t)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.refs == 0 {
		dir, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		p, err := startFreePort(dir)
		if err != nil {
			os.RemoveAll(dir)
			t.Fatalf("redistest: %v", err)
		}
		shared.srv, shared.dir = p, dir
	}
	shared.refs++
	addr := shared.srv.addr
	t.Cleanup(func() {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		shared.refs--
		if shared.refs == 0 {
			shared.srv.kill()
			os.RemoveAll(shared.dir)
			shared.srv, shared.dir = nil, ""
		}
	})
	return addr
}

// Client returns a client for addr, a host:port or a redis:// URL as
// [Start] returns them: a cluster client for a cluster's URL. The client
// is closed when t ends.
func Client(t testing.TB, addr string) redis.UniversalClient {
	t.Helper()
	var rdb redis.UniversalClient
	if strings.Contains(addr, "://") {
		var err error
		if rdb, _, err = redisconn.New(redisconn.Config{URL: addr, CA: sharedCA(addr)}); err != nil {
			t.Fatalf("redistest: %v", err)
		}
	} else {
		rdb = redis.NewClient(&redis.Options{Addr: addr})
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// URL returns addr, as [Start] returns it, as a redis:// URL: the form a
// child process configured through $REDIS_URL needs.
func URL(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "redis://" + addr
}

var (
	runID    = strings.ToLower(rand.Text()[:6])
	nprefix  atomic.Int64
	prefixes sync.Map // testing.TB → string, while the test runs
)

// Prefix returns a key prefix for t: the same on every call with the same
// t, and one that no other test, nor another run against the same
// $REDIS_URL, uses. It ends in ':' and holds no braces, so it never
// disturbs a Redis Cluster hash tag.
func Prefix(t testing.TB) string {
	if p, ok := prefixes.Load(t); ok {
		return p.(string)
	}
	name := strings.NewReplacer("{", "_", "}", "_").Replace(t.Name())
	p := fmt.Sprintf("test:%s.%d:%s:", runID, nprefix.Add(1), name)
	if got, loaded := prefixes.LoadOrStore(t, p); loaded {
		return got.(string)
	}
	t.Cleanup(func() { prefixes.Delete(t) })
	return p
}

// A Server is a redis-server owned by one test, which may kill and
// restart it. Its methods are safe for concurrent use.
type Server struct {
	// Addr is host:port; it stays the same across [Server.Restart].
	Addr string

	dir string
	t   testing.TB

	mu sync.Mutex
	// p is the running process, nil after Kill. Guarded by mu.
	p *proc
}

// StartServer starts a redis-server for t alone, even when $REDIS_URL is
// set, and stops it when t ends. If redis-server is not on PATH,
// StartServer fails the test: .ci/run installs it.
func StartServer(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	p, err := startFreePort(dir)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{Addr: p.addr, dir: dir, t: t, p: p}
	t.Cleanup(s.Kill)
	return s
}

// Kill stops the server at once with SIGKILL, as a crash would, and waits
// for it to exit. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		s.p.kill()
		s.p = nil
	}
}

// Restart kills the server if it runs, then starts a new one, empty, on
// the same address and waits until it answers PING.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p != nil {
		s.p.kill()
		s.p = nil
	}
	_, port, _ := net.SplitHostPort(s.Addr)
	// The port was ours a moment ago, but another process may grab it in
	// between; a few tries cover a slow release.
	var err error
	for range 5 {
		var p *proc
		if p, err = startProc(s.dir, port); err == nil {
			s.p = p
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("redistest: restart on %s: %w", s.Addr, err)
}

// A proc is one run of redis-server.
type proc struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	log  string        // path of its output
}

// startFreePort starts redis-server in dir on a free port, trying a few
// ports in case another process takes ours between choosing and binding.
func startFreePort(dir string) (*proc, error) {
	var err error
	for range 3 {
		var port string
		if port, err = freePort(); err != nil {
			return nil, err
		}
		var p *proc
		if p, err = startProc(dir, port); err == nil {
			return p, nil
		}
	}
	return nil, err
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

func startProc(dir, port string) (*proc, error) {
	return startProcWith(dir, port, []string{"--port", port}, ping)
}

// startProcWith starts redis-server in dir with args (which name its
// port) and the test settings, and waits until ready answers for its
// address 127.0.0.1:port.
func startProcWith(dir, port string, args []string, ready func(addr string) error) (*proc, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, errors.New("redis-server not found on PATH; .ci/run installs it (or set $" + EnvURL + ")")
	}
	logPath := filepath.Join(dir, "redis-"+port+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child keeps its own descriptor
	cmd := exec.Command(bin, append(args,
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
	)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	p := &proc{addr: net.JoinHostPort("127.0.0.1", port), cmd: cmd, done: make(chan struct{}), log: logPath}

	// On Linux the child dies with the thread that started it
	// (Pdeathsig). This goroutine keeps that thread until the child has
	// exited, and never unlocks it, so the thread ends only with the child
	// or with the test binary.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			cmd.Wait()
		}
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	if err := p.waitReady(ready); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// waitReady polls with PING until the server answers PONG.
func (p *proc) waitReady(ping func(addr string) error) error {
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server on %s exited at start:\n%s", p.addr, p.tail())
		default:
		}
		if ping(p.addr) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING within %v:\n%s", p.addr, startTimeout, p.tail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return pingConn(c)
}

// pingConn sends PING on c, expects PONG within a second, and closes c.
func pingConn(c net.Conn) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("PING: %q", line)
	}
	return nil
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// tail returns the end of the server's output, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Keys returns the keys matching pattern, from every master when rdb is a
// cluster client: its KEYS reaches one node, which may not hold them.
func Keys(ctx context.Context, rdb redis.UniversalClient, pattern string) ([]string, error) {
	c, ok := rdb.(*redis.ClusterClient)
	if !ok {
		return rdb.Keys(ctx, pattern).Result()
	}
	var mu sync.Mutex
	var out []string
	err := c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
		ks, err := n.Keys(ctx, pattern).Result()
		mu.Lock()
		out = append(out, ks...)
		mu.Unlock()
		return err
	})
	return out, err
}

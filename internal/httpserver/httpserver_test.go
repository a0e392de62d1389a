package httpserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpserver"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

// serve serves the real API (the agent on a simulator, the embedded
// store) through httpserver.Serve on a loopback port, and returns its
// address and the stack.
func serve(t *testing.T, cfg httpserver.Config) (string, *stacktest.Stack) {
	t.Helper()
	s := stacktest.Start(t, stacktest.Options{Sim: claudesim.Config{}, NoServer: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	go func() { done <- httpserver.Serve(ctx, ln, s.Handler, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), s
}

// turn runs one turn through a fresh connection, as a well-behaved client.
func turn(addr, id string) error {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Post("http://"+addr+"/agent", "application/json", strings.NewReader(`{"session_id":"`+id+`","message":"hello"}`))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return errors.New("status " + resp.Status + ": " + string(b))
	}
	return nil
}

// cutOff waits for the server to close conn, reading (and discarding)
// whatever it sends, and returns how long that took from start and the
// bytes read. It fails the test if the connection is still open at
// start+within.
func cutOff(t *testing.T, conn net.Conn, start time.Time, within time.Duration) (time.Duration, int64) {
	t.Helper()
	conn.SetReadDeadline(start.Add(within))
	n, err := io.Copy(io.Discard, conn)
	t.Logf("closed by the server after %v, %d bytes read (%v)", time.Since(start).Round(time.Millisecond), n, err)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v (%d bytes read)", within, n)
	}
	// EOF (io.Copy returns nil) or a reset: the server closed it.
	return time.Since(start), n
}

// Slowloris: clients that trickle their headers or their body, idle on a
// keep-alive connection or never read a large answer are cut off by the
// server's timeouts, and meanwhile other clients are served as usual.
func TestSlowClientsAreCutOff(t *testing.T) {
	cfg := httpserver.Config{
		ReadHeaderTimeout: 1 * time.Second,
		ReadTimeout:       2 * time.Second,
		WriteTimeout:      2 * time.Second,
		IdleTimeout:       1 * time.Second,
	}
	addr, s := serve(t, cfg)

	// A large session, for an answer that does not fit in the sockets'
	// buffers: 6 MB of history.
	ctx := t.Context()
	big := json.RawMessage(`{"role":"user","content":"` + strings.Repeat("x", 6<<20) + `"}`)
	if _, err := s.Store.Begin(ctx, session.BeginRequest{ID: "big", LeaseToken: "t", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Store.Commit(ctx, session.Commit{ID: "big", LeaseToken: "t", Messages: []json.RawMessage{big, json.RawMessage(`{"role":"assistant","content":"ok"}`)}, Turns: 1, Release: true}); err != nil {
		t.Fatal(err)
	}

	dial := func(t *testing.T, rcvbuf int) net.Conn {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			if rcvbuf == 0 {
				return nil
			}
			var serr error
			err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
			return errors.Join(err, serr)
		}}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	write := func(conn net.Conn, s string) error {
		_, err := io.WriteString(conn, s)
		return err
	}

	tests := []struct {
		name string
		// run misbehaves on conn from start; the server must close conn
		// within cutWithin of start.
		run       func(t *testing.T, conn net.Conn)
		rcvbuf    int
		cutWithin time.Duration
		check     func(t *testing.T, took time.Duration, read int64)
	}{
		{
			name: "headers one byte a second",
			run: func(t *testing.T, conn net.Conn) {
				req := "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + strings.Repeat("a", 100)
				go func() {
					for i := 0; i < len(req); i++ {
						if write(conn, req[i:i+1]) != nil {
							return
						}
						time.Sleep(time.Second)
					}
				}()
			},
			cutWithin: cfg.ReadHeaderTimeout + 3*time.Second,
		},
		{
			name: "body one byte a second",
			run: func(t *testing.T, conn net.Conn) {
				body := `{"session_id":"slow","message":"` + strings.Repeat("a", 200) + `"}`
				head := "POST /agent HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
				if err := write(conn, head); err != nil {
					t.Fatal(err)
				}
				go func() {
					for i := 0; i < len(body); i++ {
						if write(conn, body[i:i+1]) != nil {
							return
						}
						time.Sleep(time.Second)
					}
				}()
			},
			cutWithin: cfg.ReadTimeout + 3*time.Second,
			check: func(t *testing.T, took time.Duration, read int64) {
				if took < cfg.ReadTimeout-100*time.Millisecond {
					t.Errorf("cut after %v, before the read timeout of %v", took, cfg.ReadTimeout)
				}
			},
		},
		{
			name: "idle keep-alive",
			run: func(t *testing.T, conn net.Conn) {
				if err := write(conn, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Close {
					t.Fatalf("healthz: %d, close %v", resp.StatusCode, resp.Close)
				}
				// Then say nothing more.
			},
			cutWithin: cfg.IdleTimeout + 3*time.Second,
		},
		{
			name: "never reads a large answer",
			run: func(t *testing.T, conn net.Conn) {
				if err := write(conn, "GET /v1/sessions/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				// Read nothing until the write timeout has passed.
				time.Sleep(cfg.WriteTimeout + time.Second)
			},
			rcvbuf:    4096,
			cutWithin: cfg.WriteTimeout + 6*time.Second,
			check: func(t *testing.T, took time.Duration, read int64) {
				if read >= 6<<20 {
					t.Errorf("read the whole answer (%d bytes): the write was not cut", read)
				}
			},
		},
	}
	var wg sync.WaitGroup
	for _, tc := range tests {
		conn := dial(t, tc.rcvbuf)
		start := time.Now()
		tc.run(t, conn)
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(tc.name, func(t *testing.T) {
				took, read := cutOff(t, conn, start, tc.cutWithin)
				if tc.check != nil {
					tc.check(t, took, read)
				}
			})
		}()
	}
	// Meanwhile, everyone else is served.
	for i := range 5 {
		if err := turn(addr, "good-"+strconv.Itoa(i)); err != nil {
			t.Errorf("a well-behaved client while slow ones hold connections: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	wg.Wait()
	if err := turn(addr, "after"); err != nil {
		t.Errorf("a well-behaved client after the slow ones: %v", err)
	}
}

// On a loopback listener only loopback Host names (and the allowed ones)
// are served: a DNS-rebinding page's Host gets 403 with the JSON error.
func TestHostCheck(t *testing.T) {
	addr, _ := serve(t, httpserver.Config{AllowedHosts: []string{"Agent.Example.COM"}})
	port := addr[strings.LastIndexByte(addr, ':'):]
	tests := []struct {
		host string
		want int
	}{
		{"127.0.0.1" + port, 200},
		{"localhost" + port, 200},
		{"LOCALHOST", 200},
		{"localhost.:80", 200},
		{"[::1]:8080", 200},
		{"127.1.2.3", 200},
		{"app.localhost", 200},
		{"agent.example.com:443", 200},
		{"attacker.example", 403},
		{"attacker.example" + port, 403},
		{"localhost.attacker.example", 403},
		{"127.0.0.1.attacker.example", 403},
		{"10.0.0.1", 403},
		{"[::ffff:10.0.0.1]", 403},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			req, err := http.NewRequest("GET", "http://"+addr+"/healthz", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tc.host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, b, tc.want)
			}
			if tc.want == 403 {
				var e struct {
					Error struct{ Type, Message string }
				}
				if json.Unmarshal(b, &e) != nil || e.Error.Type != "forbidden" || strings.Contains(e.Error.Message, "attacker") {
					t.Errorf("body %s: want a JSON forbidden error that does not echo the Host", b)
				}
			}
		})
	}
}

func TestHostName(t *testing.T) {
	tests := []struct {
		in, name string
		loopback bool
	}{
		{"localhost:8080", "localhost", true},
		{"LocalHost", "localhost", true},
		{"localhost.", "localhost", true},
		{"127.0.0.1:1", "127.0.0.1", true},
		{"[::1]:80", "::1", true},
		{"[::1]", "::1", true},
		{"::1", "::1", true},
		{"[::ffff:127.0.0.1]:80", "::ffff:127.0.0.1", true},
		{"", "", true},
		{"example.com:80", "example.com", false},
		{"[fe80::1%25eth0]:80", "fe80::1%25eth0", false},
		{"0.0.0.0", "0.0.0.0", false},
	}
	for _, tc := range tests {
		name := httpserver.HostName(tc.in)
		if name != tc.name || httpserver.LoopbackHost(name) != tc.loopback {
			t.Errorf("HostName(%q) = %q (loopback %v), want %q (%v)", tc.in, name, httpserver.LoopbackHost(name), tc.name, tc.loopback)
		}
	}
}

func FuzzHostName(f *testing.F) {
	for _, s := range []string{"localhost:8080", "[::1]:80", "127.0.0.1", "evil.example", "[", "]:", "a:b:c", "localhost.evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		name := httpserver.HostName(host)
		if !httpserver.LoopbackHost(name) {
			return
		}
		// A loopback name is localhost, under .localhost, a loopback IP,
		// or empty: never a name an attacker's DNS answers for.
		if name != "" && name != "localhost" && !strings.HasSuffix(name, ".localhost") && net.ParseIP(strings.TrimPrefix(name, "::ffff:")) == nil {
			t.Fatalf("HostName(%q) = %q counts as loopback", host, name)
		}
	})
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 80}, true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 80}, false},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 80}, false},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 80}, false},
		{&net.UnixAddr{Name: "/tmp/x", Net: "unix"}, false},
	}
	for _, tc := range tests {
		if got := httpserver.IsLoopback(tc.addr); got != tc.want {
			t.Errorf("IsLoopback(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}

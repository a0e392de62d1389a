package claude_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// TestRelease: Request.Release comes once per Create, only when the
// transport is done with the body, so the caller may reuse the buffer
// (the agent pools its request buffers, see #14). The released buffer is
// overwritten at once: under -race a transport still reading it is a
// reported race, and without -race the simulator sees a broken body.
func TestRelease(t *testing.T) {
	sim := claudesim.New(claudesim.Config{})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	c, err := claude.New(claude.Config{APIKey: "test-key", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	// Streamed, a body that asks for the stream itself (Streaming) is
	// sent as is, and released the same way.
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			field := ""
			if stream {
				field = `,"stream":true`
			}
			body := []byte(`{"model":"` + sonnet + `","max_tokens":100,"messages":[{"role":"user","content":"` + strings.Repeat("weather ", 40000) + `"}]` + field + `}`)
			buf := make([]byte, len(body))
			for i := range 20 {
				copy(buf, body)
				var calls atomic.Int32
				var deltas int
				released := make(chan struct{})
				req := claude.Request{Model: sonnet, MaxTokens: 100, Body: buf, Release: func() {
					if calls.Add(1) == 1 {
						clear(buf)
						close(released)
					}
				}}
				if stream {
					req.OnDelta, req.Streaming = func(claude.Delta) { deltas++ }, true
				}
				r, err := c.Create(t.Context(), req)
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if r.Usage.InputTokens == 0 {
					t.Fatalf("call %d: usage %+v, want input tokens", i, r.Usage)
				}
				if stream && deltas == 0 {
					t.Fatalf("call %d: no deltas", i)
				}
				select {
				case <-released:
				case <-time.After(5 * time.Second):
					t.Fatalf("call %d: Release not called 5 s after Create returned", i)
				}
				if n := calls.Load(); n != 1 {
					t.Fatalf("call %d: Release called %d times, want once", i, n)
				}
			}
			// The simulator records a request once its answer is out.
			n := 0
			for deadline := time.Now().Add(2 * time.Second); n < 20 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				n = 0
				for _, r := range sim.Requests() {
					if r.Stream == stream {
						n++
					}
				}
			}
			if n != 20 {
				t.Errorf("the simulator saw %d requests with stream=%v, want 20", n, stream)
			}
		})
	}
}

// TestReleaseEarlyReply: a server that answers before reading the body
// (an error, as an API front end may) leaves the transport writing it
// after Create returned; Release still comes, once, and only after the
// write: the server would read the cleared bytes. (Go's HTTP/1
// transport, today, stops or ends that write before Create returns, so
// this guards the contract for transports that do not, HTTP/2's.)
func TestReleaseEarlyReply(t *testing.T) {
	var read, zeros atomic.Int64
	drained := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		msg := `{"type":"error","error":{"type":"invalid_request_error","message":"no"}}`
		_, _ = fmt.Fprintf(rw, "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(msg), msg)
		_ = rw.Flush()
		time.Sleep(300 * time.Millisecond) // the client has its reply, and is still writing
		b := make([]byte, 1<<20)
		for {
			n, err := rw.Read(b)
			read.Add(int64(n))
			zeros.Add(int64(n - bytes.Count(b[:n], []byte("x"))))
			if err != nil {
				break
			}
		}
		close(drained)
	}))
	t.Cleanup(srv.Close)
	c, err := claude.New(claude.Config{APIKey: "test-key", BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	buf := bytes.Repeat([]byte("x"), 32<<20)
	var calls atomic.Int32
	released := make(chan struct{})
	_, err = c.Create(t.Context(), claude.Request{Model: sonnet, MaxTokens: 100, Body: buf, Release: func() {
		if calls.Add(1) == 1 {
			clear(buf)
			close(released)
		}
	}})
	var se *claude.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Fatalf("Create = %v, want a 400 StatusError", err)
	}
	select {
	case <-released:
	case <-time.After(10 * time.Second):
		t.Fatal("Release not called 10 s after Create returned")
	}
	<-drained
	if n := calls.Load(); n != 1 {
		t.Fatalf("Release called %d times, want once", n)
	}
	t.Logf("the server read %d bytes after the reply", read.Load())
	if z := zeros.Load(); z > 0 {
		t.Errorf("the server read %d bytes of the released (cleared) buffer: Release came while the transport was writing", z)
	}
}

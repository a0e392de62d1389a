package claude

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
)

// errBodyClosed is what a request body read after its Close returns.
var errBodyClosed = errors.New("claude: request body read after close")

// sentBody hands a Request's Body to the HTTP transport and calls its
// Release once nothing can read the bytes any more: Create holds one
// reference until it returns, and each body the transport was given
// (the first, and any GetBody made for a retry on a fresh connection)
// holds one until the transport closes it. The transport may close a
// body after RoundTrip returned, when it was still writing the request
// as the reply came (net/http.RoundTripper's contract says to wait for
// that Close before reusing a body), so Create's return alone is not
// enough. A body the transport never closes is never released: its
// buffer goes to the garbage collector, which is safe.
type sentBody struct {
	buf     []byte
	release func()
	refs    atomic.Int32
}

func newSentBody(buf []byte, release func()) *sentBody {
	s := &sentBody{buf: buf, release: release}
	s.refs.Store(1) // Create's
	return s
}

func (s *sentBody) unref() {
	if s.refs.Add(-1) == 0 {
		s.release()
	}
}

// body returns a new reader of the bytes, holding a reference.
func (s *sentBody) body() io.ReadCloser {
	s.refs.Add(1)
	return &bodyReader{r: bytes.NewReader(s.buf), s: s}
}

// middleware puts a reference-holding reader in place of the SDK's body
// (which it made of the same bytes: its ContentLength stays right).
func (s *sentBody) middleware(req *http.Request, next func(*http.Request) (*http.Response, error)) (*http.Response, error) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
	req.Body = s.body()
	req.GetBody = func() (io.ReadCloser, error) { return s.body(), nil }
	return next(req)
}

// bodyReader reads a sentBody's bytes. Close may come from another
// goroutine than a read in progress (an HTTP/2 stream's abort, say): the
// reference is dropped when the last read returns, never under it.
type bodyReader struct {
	r      *bytes.Reader
	s      *sentBody
	mu     sync.Mutex
	active int
	closed bool
	done   bool // the reference is dropped
}

func (b *bodyReader) enter() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.active++
	return true
}

func (b *bodyReader) leave() {
	b.mu.Lock()
	b.active--
	drop := b.closed && b.active == 0 && !b.done
	b.done = b.done || drop
	b.mu.Unlock()
	if drop {
		b.s.unref()
	}
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if !b.enter() {
		return 0, errBodyClosed
	}
	defer b.leave()
	return b.r.Read(p)
}

// WriteTo lets the transport write the body in one call rather than
// through a small buffer.
func (b *bodyReader) WriteTo(w io.Writer) (int64, error) {
	if !b.enter() {
		return 0, errBodyClosed
	}
	defer b.leave()
	return b.r.WriteTo(w)
}

func (b *bodyReader) Close() error {
	b.mu.Lock()
	first := !b.closed
	b.closed = true
	drop := first && b.active == 0 && !b.done
	b.done = b.done || drop
	b.mu.Unlock()
	if drop {
		b.s.unref()
	}
	return nil
}

package lambdafn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/aws/aws-lambda-go/events"
)

// A Streamer is what lambda.Start takes for a function whose Function URL
// streams its answers (InvokeMode RESPONSE_STREAM, see #15): Function URL
// requests get their answer as a stream, written while the handler runs
// (server-sent events of a turn arrive as they happen); every other event
// is answered by Buffered, in one piece, as before.
//
// It is a func and not a lambda.Handler on purpose: aws-lambda-go sends an
// io.Reader answer to the Runtime API as it is read only for a handler
// func; a Handler's Invoke returns bytes, read to the end first.
type Streamer func(ctx context.Context, payload json.RawMessage) (io.Reader, error)

// Streamer returns f's Streamer. buffered answers the events that do not
// stream; nil means f itself (pass f wrapped, by telemetry say, to keep
// the wrapping for them).
//
// Only a Function URL whose InvokeMode is RESPONSE_STREAM may be served
// by it: the event does not say which mode the URL has, and a BUFFERED
// URL cannot read the streamed answer's framing.
func (f *Function) Streamer(buffered interface {
	Invoke(context.Context, []byte) ([]byte, error)
}) Streamer {
	if buffered == nil {
		buffered = f
	}
	return func(ctx context.Context, payload json.RawMessage) (io.Reader, error) {
		if kind, err := detect(payload); err == nil && kind == kindFunctionURL {
			ev, err := decode(payload)
			if err != nil {
				return nil, invokeError(err)
			}
			return f.streamHTTP(ctx, ev), nil
		}
		out, err := buffered.Invoke(ctx, payload)
		if err != nil {
			return nil, err
		}
		return bytes.NewBuffer(out), nil
	}
}

// streamHTTP runs a Function URL request through the handler on its own
// goroutine and answers as soon as the handler has decided its status
// and headers: the body is read from the handler's writes as it makes
// them, and ends when the handler returns. aws-lambda-go reads the body
// to its end before it asks for the next invocation, so the handler runs
// within this one.
func (f *Function) streamHTTP(ctx context.Context, ev *event) *events.LambdaFunctionURLStreamingResponse {
	ctx, cancel := f.turnContext(ctx)
	r := ev.http.WithContext(ctx)
	pr, pw := io.Pipe()
	w := &streamWriter{header: http.Header{}, pipe: pw, ready: make(chan struct{})}
	go func() {
		defer cancel()
		defer func() {
			if p := recover(); p != nil {
				f.log.ErrorContext(ctx, "lambdafn: handler panicked", slog.String("method", r.Method),
					slog.String("path", r.URL.Path), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
				if w.commit(http.StatusInternalServerError, func(h http.Header) {
					clear(h)
					h.Set("Content-Type", "application/json")
				}) {
					_, _ = pw.Write(internalError)
				} else {
					// The status is out: cut the stream, which the
					// Runtime API client reports as the invocation's
					// error.
					pw.CloseWithError(fmt.Errorf("lambdafn: handler panicked: %v", p))
					return
				}
			}
			w.commit(http.StatusOK, nil) // a handler that wrote nothing
			pw.Close()
		}()
		f.h.ServeHTTP(w, r)
	}()
	<-w.ready
	res := &events.LambdaFunctionURLStreamingResponse{StatusCode: w.code, Body: pr}
	header := w.sent
	res.Cookies = header.Values("Set-Cookie")
	header.Del("Set-Cookie")
	if len(header) > 0 {
		res.Headers = make(map[string]string, len(header))
		for k, vs := range header {
			res.Headers[k] = strings.Join(vs, ", ")
		}
	}
	return res
}

// streamWriter is the http.ResponseWriter of a streamed answer: the
// status and headers are fixed by the first WriteHeader, Write or Flush,
// and each Write reaches the Runtime API as it is read there (an io.Pipe:
// it returns once read, so a slow client slows the writer, not memory).
type streamWriter struct {
	header http.Header
	pipe   *io.PipeWriter
	once   sync.Once
	ready  chan struct{} // closed when code and sent are set
	code   int
	sent   http.Header // the headers as committed
}

func (w *streamWriter) Header() http.Header { return w.header }

// commit fixes the status and headers (edit may change them first); it
// reports whether this call did.
func (w *streamWriter) commit(code int, edit func(http.Header)) (did bool) {
	w.once.Do(func() {
		if edit != nil {
			edit(w.header)
		}
		h := w.header.Clone()
		for _, k := range []string{"Content-Length", "Connection", "Transfer-Encoding", "Keep-Alive", "Trailer", "Upgrade"} {
			h.Del(k)
		}
		w.code, w.sent, did = code, h, true
		close(w.ready)
	})
	return did
}

func (w *streamWriter) WriteHeader(code int) {
	if code < 200 {
		return // informational statuses are dropped, as by the recorder
	}
	w.commit(code, nil)
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.commit(http.StatusOK, func(h http.Header) {
		if h.Get("Content-Type") == "" && len(p) > 0 {
			h.Set("Content-Type", http.DetectContentType(p))
		}
	})
	return w.pipe.Write(p)
}

// Flush sends the status and headers; written bytes need no flushing,
// they are already read.
func (w *streamWriter) Flush() { w.commit(http.StatusOK, nil) }

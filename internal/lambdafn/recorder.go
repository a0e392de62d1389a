package lambdafn

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// recorder is the http.ResponseWriter the handler writes into: the whole
// answer is buffered, because every event source wants it as one value.
// (net/http/httptest would do, but it registers a command-line flag in
// whatever binary imports it.)
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.code != 0 || code < 200 {
		return // informational statuses and second calls are dropped, as by net/http
	}
	w.code = code
}

func (w *recorder) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.body.Write(p)
}

// Flush is a no-op: there is nothing to flush to before the handler returns.
func (w *recorder) Flush() {}

// result is what the handler answered.
type result struct {
	code   int
	header http.Header
	body   []byte
}

func (w *recorder) result() result {
	code := w.code
	if code == 0 {
		code = http.StatusOK
	}
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		// As net/http does for a handler that set no Content-Type.
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	return result{code: code, header: w.header, body: w.body.Bytes()}
}

func (r result) ok() bool { return r.code >= 200 && r.code < 300 }

// statusError describes a non-2xx result from its JSON error body.
func (r result) statusError() *StatusError {
	e := &StatusError{Code: r.code, RetryAfter: retryAfter(r.header)}
	var body struct {
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(r.body, &body) == nil {
		e.Type, e.Message = body.Error.Type, body.Error.Message
	}
	if e.Type == "" {
		e.Type = "http_" + strconv.Itoa(r.code)
	}
	if e.Message == "" {
		e.Message = http.StatusText(r.code)
	}
	return e
}

// textual reports whether a body with this header can travel as a JSON
// string as is; otherwise it is base64-encoded.
func textual(h http.Header, body []byte) bool {
	if h.Get("Content-Encoding") != "" || !utf8.Valid(body) {
		return false
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch {
	case strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "/json"), strings.HasSuffix(mt, "+json"),
		strings.HasSuffix(mt, "/xml"), strings.HasSuffix(mt, "+xml"),
		mt == "application/javascript", mt == "application/x-www-form-urlencoded",
		mt == "application/x-ndjson":
		return true
	}
	return false
}

// retryAfter reads a Retry-After header given in seconds or as an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

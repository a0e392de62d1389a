package mcptools

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// An idSpace keeps this process's JSON-RPC request ids apart from every
// other process's on a shared MCP session. Processes continue one stored
// Streamable HTTP session (see [Session]), and go-sdk numbers a client's
// requests from 1 in every process, so two processes calling at once
// would send the same id in one session, which a stateful server refuses
// ("duplicate in-flight request ID"). On the wire, a request's numeric id
// n leaves as the string "<space>n", and the response's id is turned back
// into n before go-sdk reads it. It works on HTTP bodies because go-sdk's
// transport connection cannot be wrapped without losing its session
// bookkeeping.
type idSpace struct {
	next  http.RoundTripper
	space string
}

func newIDSpace(next http.RoundTripper) *idSpace {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on Linux
	return &idSpace{next: next, space: "lga-" + hex.EncodeToString(b[:]) + "-"}
}

func (s *idSpace) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		closeBody(req)
		if err != nil {
			return nil, err
		}
		body = s.out(body)
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	resp, err := s.next.RoundTrip(req)
	if err != nil || resp.Body == nil {
		return resp, err
	}
	switch ct := resp.Header.Get("Content-Type"); {
	case strings.HasPrefix(ct, "application/json"):
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		body = s.in(body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Del("Content-Length")
	case strings.HasPrefix(ct, "text/event-stream"):
		resp.Body = &sseIDs{src: bufio.NewReader(resp.Body), body: resp.Body, space: s}
	}
	return resp, nil
}

// out moves a request's numeric id into the space; anything else (a
// notification, a response to the server, a batch) leaves as it is.
func (s *idSpace) out(msg []byte) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(msg, &m) != nil || m["method"] == nil || len(m["id"]) == 0 || m["id"][0] == '"' || string(m["id"]) == "null" {
		return msg
	}
	id, err := json.Marshal(s.space + string(m["id"]))
	if err != nil {
		return msg
	}
	m["id"] = id
	if b, err := json.Marshal(m); err == nil {
		return b
	}
	return msg
}

// in gives a response to one of this process's requests its number back.
func (s *idSpace) in(msg []byte) []byte {
	if !bytes.Contains(msg, []byte(s.space)) {
		return msg
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(msg, &m) != nil || m["method"] != nil {
		return msg
	}
	var id string
	if json.Unmarshal(m["id"], &id) != nil || !strings.HasPrefix(id, s.space) {
		return msg
	}
	n := id[len(s.space):]
	if !json.Valid([]byte(n)) {
		return msg
	}
	m["id"] = json.RawMessage(n)
	if b, err := json.Marshal(m); err == nil {
		return b
	}
	return msg
}

// sseIDs is a response stream whose data lines pass through idSpace.in.
type sseIDs struct {
	src   *bufio.Reader
	body  io.Closer
	space *idSpace
	buf   []byte // what is read but not yet handed out
	err   error
}

func (r *sseIDs) Read(p []byte) (int, error) {
	for len(r.buf) == 0 && r.err == nil {
		line, err := r.src.ReadBytes('\n')
		if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
			body := bytes.TrimRight(bytes.TrimPrefix(data, []byte(" ")), "\r\n")
			eol := data[len(bytes.TrimRight(data, "\r\n")):]
			line = append(append([]byte("data: "), r.space.in(body)...), eol...)
		}
		r.buf, r.err = line, err
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	if len(r.buf) == 0 && r.err != nil {
		return n, r.err
	}
	return n, nil
}

func (r *sseIDs) Close() error { return r.body.Close() }

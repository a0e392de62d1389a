package chatui_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/chatui"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/stacktest"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// cutter proxies to the stack, but ends the first streamed answer after
// a few hundred bytes, as a dropped connection would.
type cutter struct {
	target  string
	cuts    atomic.Int32
	resumes atomic.Int32 // GETs of /v1/streams/
}

func (c *cutter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/v1/streams/") {
		c.resumes.Add(1)
	}
	body, _ := io.ReadAll(r.Body)
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, c.target+r.URL.RequestURI(), bytes.NewReader(body))
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	var src io.Reader = resp.Body
	if r.Method == http.MethodPost && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") && c.cuts.Add(1) == 1 {
		src = io.LimitReader(resp.Body, 400)
	}
	_, _ = io.Copy(w, src)
}

// A chat in a terminal prints the answer as it streams, and when the
// connection drops mid-answer it resumes from the last event: the whole
// answer is on the screen once, followed by its figures.
func TestStreamResumes(t *testing.T) {
	stack := stacktest.Start(t, stacktest.Options{Sim: claudesim.Config{Latency: 300 * time.Millisecond},
		HTTP: httpapi.Config{Streams: stream.NewMemory(0)}})
	cut := &cutter{target: stack.URL}
	proxy := httptest.NewServer(cut)
	t.Cleanup(proxy.Close)
	c, err := chatui.New(chatui.Config{URL: proxy.URL, SessionID: "s1", Terminal: true, Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	msg := strings.Repeat("a streamed answer is printed as it comes; ", 8)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := c.Run(ctx, chatui.PlainLines(strings.NewReader(msg+"\n")), &out); err != nil {
		t.Fatal(err)
	}
	want := "claude> echo: " + strings.TrimSpace(msg) + " (messages: 1)\n"
	if !strings.Contains(out.String(), want) || strings.Count(out.String(), "claude>") != 1 || !strings.Contains(out.String(), "turn 1") {
		t.Errorf("screen:\n%q\nwant it to hold, once:\n%q", out.String(), want)
	}
	if cut.cuts.Load() != 1 || cut.resumes.Load() != 1 {
		t.Errorf("%d streamed answers cut, %d resumed; want 1 and 1", cut.cuts.Load(), cut.resumes.Load())
	}
}

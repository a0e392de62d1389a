package main

// Streaming tests of #15 against real `lambdagent serve` processes
// sharing a real redis-server: a client that reconnects to another
// process, and a producer killed mid-stream.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/loadgen"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// slowEnv is the environment of serve processes on one Redis and one
// simulator that takes latency to stream each reply.
func slowEnv(t *testing.T, latency time.Duration) []string {
	redisAddr := redistest.Start(t)
	sim := httptest.NewServer(claudesim.New(claudesim.Config{Latency: latency}))
	t.Cleanup(sim.Close)
	return []string{
		"REDIS_URL=" + redistest.URL(redisAddr),
		"LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t),
		"ANTHROPIC_API_KEY=test-key",
		"ANTHROPIC_BASE_URL=" + sim.URL,
		"LAMBDAGENT_LEASE_TTL=1s", // a killed holder blocks its session for at most a second
	}
}

// longMessage makes an echo reply of many text deltas.
var longMessage = strings.Repeat("the quick brown fox jumps over the lazy dog; ", 15)

// openStream sends a streamed request (POST with a body, or GET) and
// calls fn with each event until fn returns an error or the stream ends.
func openStream(ctx context.Context, method, url, body string, hdr map[string]string, fn func(stream.Event) error) error {
	var rd *bytes.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b.String())
	}
	return stream.ReadSSE(resp.Body, fn)
}

var errEnough = errors.New("enough")

// textOf joins the text deltas of evs after the last turn_start.
func textOf(t *testing.T, evs []stream.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		switch ev.Name {
		case stream.TurnStart:
			b.Reset()
		case stream.TextDelta:
			var d struct{ Text string }
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			b.WriteString(d.Text)
		}
	}
	return b.String()
}

func responseOf(t *testing.T, ev stream.Event) string {
	var a answer
	if err := json.Unmarshal(ev.Data, &a); err != nil {
		t.Fatalf("turn_end %s: %v", ev.Data, err)
	}
	return a.Response
}

// sessionTurns reads GET /v1/sessions/{id}: its turns and messages.
func sessionTurns(t *testing.T, base, id string) (int64, int) {
	resp, err := http.Get(base + "/v1/sessions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Turns    int64             `json:"turns"`
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Turns, len(s.Messages)
}

// storedAnswer is the text of the session's last message, as stored.
func storedAnswer(t *testing.T, base, id string) string {
	resp, err := http.Get(base + "/v1/sessions/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		Messages []struct {
			Content []struct {
				Type, Text string
			} `json:"content"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || len(s.Messages) == 0 {
		t.Fatalf("session %s: %v", id, err)
	}
	var texts []string
	for _, b := range s.Messages[len(s.Messages)-1].Content {
		if b.Type == "text" {
			texts = append(texts, b.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// A client reads part of a stream from one process, hangs up, and
// resumes with Last-Event-ID on another: it gets the rest exactly once,
// and the text is the stored answer byte for byte. The turn is not
// stopped by the hang-up.
func TestStreamResumesOnAnotherProcess(t *testing.T) {
	env := slowEnv(t, 3*time.Second)
	p1 := start(t, "serve", env...)
	p2 := start(t, "serve", env...)

	var first []stream.Event
	body := fmt.Sprintf(`{"session_id":"r1","message":%q}`, longMessage)
	began := time.Now()
	err := openStream(t.Context(), "POST", "http://"+p1.addr+"/agent", body, nil, func(ev stream.Event) error {
		first = append(first, ev)
		if len(first) == 6 {
			return errEnough // hang up mid-stream
		}
		return nil
	})
	if !errors.Is(err, errEnough) {
		t.Fatalf("first part: %v (events %d)", err, len(first))
	}
	// The simulator spreads the reply over 3 s: events that came well
	// before its end were streamed, not buffered.
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("the first 6 events took %v: the answer was not streamed", d)
	}
	var start struct {
		StreamID string `json:"stream_id"`
	}
	if err := json.Unmarshal(first[0].Data, &start); err != nil || first[0].Name != stream.TurnStart || start.StreamID == "" {
		t.Fatalf("first event %s %s", first[0].Name, first[0].Data)
	}
	last := first[len(first)-1].Seq
	var rest []stream.Event
	err = openStream(t.Context(), "GET", "http://"+p2.addr+"/v1/streams/"+start.StreamID, "",
		map[string]string{"Last-Event-ID": fmt.Sprint(last)}, func(ev stream.Event) error {
			rest = append(rest, ev)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	all := append(first, rest...)
	for i, ev := range all {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has id %d: a gap or a repeat (first part %d events, rest %d)", i, ev.Seq, len(first), len(rest))
		}
	}
	end := all[len(all)-1]
	if end.Name != stream.TurnEnd {
		t.Fatalf("the stream ended with %s %s", end.Name, end.Data)
	}
	if got, want := textOf(t, all), responseOf(t, end); got != want || !strings.Contains(want, "lazy dog") {
		t.Errorf("text deltas %q\nanswer      %q", got, want)
	}
	if turns, msgs := sessionTurns(t, "http://"+p2.addr, "r1"); turns != 1 || msgs != 2 {
		t.Errorf("session holds %d turns, %d messages; want 1 and 2", turns, msgs)
	}
	if stored := storedAnswer(t, "http://"+p2.addr, "r1"); stored != textOf(t, all) {
		t.Errorf("stored answer %q\ntext deltas   %q", stored, textOf(t, all))
	}
	t.Logf("first part %d events on one process, rest %d on the other", len(first), len(rest))
}

// The process producing a stream is SIGKILLed mid-stream: a reader on
// another process gets the error event (interrupted); the retry with the
// same Idempotency-Key finishes the turn on the same stream, and the
// session holds the turn once.
func TestStreamProducerKilled(t *testing.T) {
	env := slowEnv(t, 4*time.Second)
	p1 := start(t, "serve", env...)
	p2 := start(t, "serve", env...)
	body := fmt.Sprintf(`{"session_id":"k1","message":%q}`, longMessage)
	key := map[string]string{"Idempotency-Key": "kill-1"}

	started := make(chan string, 1)
	seen := make(chan int64, 16)
	go func() {
		_ = openStream(context.Background(), "POST", "http://"+p1.addr+"/agent", body, key, func(ev stream.Event) error {
			if ev.Name == stream.TurnStart {
				var s struct {
					StreamID string `json:"stream_id"`
				}
				_ = json.Unmarshal(ev.Data, &s)
				started <- s.StreamID
			}
			if ev.Name == stream.TextDelta {
				seen <- ev.Seq
			}
			return nil
		})
	}()
	var sid string
	select {
	case sid = <-started:
	case <-time.After(20 * time.Second):
		t.Fatalf("no turn_start; output:\n%s", p1.out)
	}
	for range 3 {
		<-seen
	}
	// A reader on the other process, from the start.
	var read []stream.Event
	readDone := make(chan error, 1)
	go func() {
		readDone <- openStream(context.Background(), "GET", "http://"+p2.addr+"/v1/streams/"+sid, "", nil, func(ev stream.Event) error {
			read = append(read, ev)
			return nil
		})
	}()
	time.Sleep(100 * time.Millisecond)
	if err := p1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	p1.cmd.Wait()
	killed := time.Now()
	select {
	case err := <-readDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the reader of a dead producer's stream never ended")
	}
	t.Logf("reader told of the interruption %v after the kill", time.Since(killed))
	lastEv := read[len(read)-1]
	if lastEv.Name != stream.Error || !strings.Contains(string(lastEv.Data), `"interrupted"`) {
		t.Fatalf("reader's last event %s %s; want error interrupted", lastEv.Name, lastEv.Data)
	}

	// The retry, same key, on the surviving process: same stream id,
	// numbered after the events already there, and it ends the turn.
	var retry []stream.Event
	if err := openStream(t.Context(), "POST", "http://"+p2.addr+"/agent", body, key, func(ev stream.Event) error {
		retry = append(retry, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var s struct {
		StreamID string `json:"stream_id"`
	}
	_ = json.Unmarshal(retry[0].Data, &s)
	if s.StreamID != sid || retry[0].Seq <= lastEv.Seq {
		t.Errorf("retry streams on %s from id %d; want %s after %d", s.StreamID, retry[0].Seq, sid, lastEv.Seq)
	}
	end := retry[len(retry)-1]
	if end.Name != stream.TurnEnd || textOf(t, retry) != responseOf(t, end) {
		t.Fatalf("retry ended with %s %s; text %q", end.Name, end.Data, textOf(t, retry))
	}
	if turns, msgs := sessionTurns(t, "http://"+p2.addr, "k1"); turns != 1 || msgs != 2 {
		t.Errorf("session holds %d turns, %d messages; want 1 and 2", turns, msgs)
	}
	// A reader resuming from the error's id gets the retry's events.
	var after []stream.Event
	if err := openStream(t.Context(), "GET", "http://"+p2.addr+"/v1/streams/"+sid, "",
		map[string]string{"Last-Event-ID": fmt.Sprint(lastEv.Seq)}, func(ev stream.Event) error {
			after = append(after, ev)
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	if len(after) != len(retry) || after[0].Seq != retry[0].Seq {
		t.Errorf("resume after the error: %d events from %d; the retry sent %d from %d", len(after), after[0].Seq, len(retry), retry[0].Seq)
	}
}

// 200 streams at once through one serve process on Redis, with the
// history check on: every turn answered, every answer's text deltas
// equal to its response, no violation.
func TestStreamLoad(t *testing.T) {
	env := slowEnv(t, 200*time.Millisecond)
	p := start(t, "serve", env...)
	rep, err := loadgen.Run(t.Context(), loadgen.Config{URL: "http://" + p.addr, Sessions: 200, Turns: 2, Stream: true,
		ModelLatency: 200 * time.Millisecond, Timeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := rep.History
	if rep.Turns != 400 || rep.FailedTurns != 0 || h.Violations != 0 || h.SessionsChecked != 200 || rep.TTFT.Count != 400 {
		t.Errorf("%d turns answered, %d failed, errors %v; history %d violations %v in %d sessions checked; %d first tokens",
			rep.Turns, rep.FailedTurns, rep.Errors, h.Violations, h.ByKind, h.SessionsChecked, rep.TTFT.Count)
		for _, v := range h.Details[:min(5, len(h.Details))] {
			t.Logf("violation: %+v", v)
		}
	}
	t.Logf("latency p50 %.1f ms p99 %.1f ms; first token p50 %.1f ms p99 %.1f ms", rep.Latency.P50, rep.Latency.P99, rep.TTFT.P50, rep.TTFT.P99)
}

// A client hangs up right after turn_start and the process is stopped
// (SIGTERM) while the turn runs: the process finishes the turn before it
// exits, so the session holds it and the stream ends with turn_end.
func TestStreamFinishesOnShutdown(t *testing.T) {
	env := slowEnv(t, 2*time.Second)
	p1 := start(t, "serve", env...)
	var sid string
	err := openStream(t.Context(), "POST", "http://"+p1.addr+"/agent", `{"session_id":"d1","message":"drain me"}`, nil, func(ev stream.Event) error {
		var s struct {
			StreamID string `json:"stream_id"`
		}
		_ = json.Unmarshal(ev.Data, &s)
		sid = s.StreamID
		return errEnough
	})
	if !errors.Is(err, errEnough) || sid == "" {
		t.Fatalf("no turn_start: %v", err)
	}
	p1.stop(t)
	p2 := start(t, "serve", env...)
	if turns, msgs := sessionTurns(t, "http://"+p2.addr, "d1"); turns != 1 || msgs != 2 {
		t.Errorf("session holds %d turns, %d messages; want 1 and 2", turns, msgs)
	}
	var last stream.Event
	if err := openStream(t.Context(), "GET", "http://"+p2.addr+"/v1/streams/"+sid, "", nil, func(ev stream.Event) error {
		last = ev
		return nil
	}); err != nil || last.Name != stream.TurnEnd {
		t.Errorf("stream after the shutdown ends with %s %s (%v); want turn_end", last.Name, last.Data, err)
	}
}

package httpapi_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/stacktest"
	"github.com/lambdagent/lambdagent/internal/stream"
)

func newStreamServer(t *testing.T) string {
	t.Helper()
	return stacktest.Start(t, stacktest.Options{Sim: claudesim.Config{}, Retry: retry.Policy{Attempts: 1},
		HTTP: httpapi.Config{Streams: stream.NewMemory(0), TenantHeader: "X-Tenant"}}).URL
}

// sseReply is a streamed answer, read to its end.
type sseReply struct {
	status int
	header http.Header
	events []stream.Event
	body   string // when it is not a stream
}

func doSSE(t *testing.T, srv, method, path, body string, hdr ...string) sseReply {
	t.Helper()
	req, err := http.NewRequest(method, srv+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method == "POST" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := sseReply{status: resp.StatusCode, header: resp.Header}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		out.body = string(b)
		return out
	}
	if err := stream.ReadSSE(resp.Body, func(ev stream.Event) error {
		out.events = append(out.events, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// check asserts the shape of a whole streamed turn: turn_start first,
// turn_end last, ids counting up by one from first, and the text deltas
// joining to the answer's response. It returns the turn_start and
// turn_end data.
func check(t *testing.T, evs []stream.Event, first int64) (start struct {
	SessionID string `json:"session_id"`
	Turn      int64  `json:"turn"`
	StreamID  string `json:"stream_id"`
}, end map[string]any) {
	t.Helper()
	if len(evs) < 3 || evs[0].Name != stream.TurnStart || evs[len(evs)-1].Name != stream.TurnEnd {
		t.Fatalf("events %v: want turn_start … turn_end", names(evs))
	}
	var text strings.Builder
	for i, ev := range evs {
		if ev.Seq != first+int64(i) {
			t.Errorf("event %d has id %d, want %d", i, ev.Seq, first+int64(i))
		}
		if ev.Name == stream.TextDelta {
			var d struct{ Text string }
			if err := json.Unmarshal(ev.Data, &d); err != nil {
				t.Fatal(err)
			}
			text.WriteString(d.Text)
		}
	}
	if err := json.Unmarshal(evs[0].Data, &start); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(evs[len(evs)-1].Data, &end); err != nil {
		t.Fatal(err)
	}
	if text.String() != end["response"] {
		t.Errorf("text deltas %q, response %q", text.String(), end["response"])
	}
	return start, end
}

func names(evs []stream.Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, fmt.Sprintf("%d:%s", ev.Seq, ev.Name))
	}
	return out
}

func TestStreamedTurn(t *testing.T) {
	srv := newStreamServer(t)

	// Accept: text/event-stream on POST /agent.
	r := doSSE(t, srv, "POST", "/agent", `{"session_id":"s1","message":"hello <stream> & ünïcode"}`, "Accept", "text/event-stream")
	if r.status != 200 || r.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("status %d, headers %v, body %s", r.status, r.header, r.body)
	}
	start, end := check(t, r.events, 1)
	if start.SessionID != "s1" || start.Turn != 1 || start.StreamID == "" || end["session_id"] != "s1" {
		t.Errorf("turn_start %+v, turn_end %v", start, end)
	}
	// The answer is the session's: the same as GET shows.
	sess := do(t, srv, "GET", "/v1/sessions/s1", "")
	if !strings.Contains(sess.body, fmt.Sprint(end["response"])[:10]) {
		t.Errorf("session %s lacks the streamed answer %q", sess.body, end["response"])
	}

	// "stream": true on POST /v1/sessions/{id}/turns.
	r2 := doSSE(t, srv, "POST", "/v1/sessions/s1/turns", `{"message":"again","stream":true}`)
	if start2, _ := check(t, r2.events, 1); start2.Turn != 2 || start2.StreamID == start.StreamID {
		t.Errorf("second turn_start %+v (first stream %s)", start2, start.StreamID)
	}

	// A resume from Last-Event-ID gets the rest exactly, header or query.
	for _, how := range []string{"header", "query"} {
		var g sseReply
		if how == "header" {
			g = doSSE(t, srv, "GET", "/v1/streams/"+start.StreamID, "", "Last-Event-ID", "2")
		} else {
			g = doSSE(t, srv, "GET", "/v1/streams/"+start.StreamID+"?last_event_id=2", "")
		}
		if diff := cmp.Diff(names(r.events[2:]), names(g.events)); diff != "" || g.status != 200 {
			t.Errorf("resume by %s: status %d (-want +got):\n%s", how, g.status, diff)
		}
	}
	// From the start, the whole turn.
	if g := doSSE(t, srv, "GET", "/v1/streams/"+start.StreamID, ""); len(g.events) != len(r.events) {
		t.Errorf("resume from 0: %v, want %v", names(g.events), names(r.events))
	}

	// Another tenant's stream is not found; so is an unknown one.
	for _, tc := range []struct{ name, path, tenant string }{
		{"other tenant", "/v1/streams/" + start.StreamID, "acme"},
		{"unknown", "/v1/streams/st_nothing", ""},
	} {
		if g := doSSE(t, srv, "GET", tc.path, "", "X-Tenant", tc.tenant); g.status != 404 || !strings.Contains(g.body, "not_found") {
			t.Errorf("%s: status %d body %s, want 404 not_found", tc.name, g.status, g.body)
		}
	}
}

func TestStreamedIdempotentRepeat(t *testing.T) {
	srv := newStreamServer(t)
	body := `{"session_id":"k1","message":"once","stream":true}`
	first := doSSE(t, srv, "POST", "/agent", body, "Idempotency-Key", "key-1")
	_, end := check(t, first.events, 1)
	again := doSSE(t, srv, "POST", "/agent", body, "Idempotency-Key", "key-1")
	// The repeat continues the same stream, numbering after it, and
	// carries the stored answer byte for byte.
	_, end2 := check(t, again.events, int64(len(first.events))+1)
	if diff := cmp.Diff(end, end2); diff != "" {
		t.Errorf("repeat's turn_end (-first +repeat):\n%s", diff)
	}
	if string(first.events[len(first.events)-1].Data) != string(again.events[len(again.events)-1].Data) {
		t.Errorf("turn_end data differs:\n%s\n%s", first.events[len(first.events)-1].Data, again.events[len(again.events)-1].Data)
	}
	var s1, s2 struct {
		StreamID string `json:"stream_id"`
	}
	_ = json.Unmarshal(first.events[0].Data, &s1)
	_ = json.Unmarshal(again.events[0].Data, &s2)
	if s1.StreamID != s2.StreamID {
		t.Errorf("repeat streams on %s, first on %s", s2.StreamID, s1.StreamID)
	}
	if st := do(t, srv, "GET", "/v1/sessions/k1", ""); !strings.Contains(st.body, `"turns":1`) {
		t.Errorf("session after a repeat: %s", st.body)
	}
}

func TestStreamBadRequests(t *testing.T) {
	srv := newStreamServer(t)
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
	}{
		{"empty message", "POST", "/agent", `{"session_id":"b","message":"","stream":true}`, nil, 400},
		{"bad session id", "POST", "/v1/sessions/a%20b/turns", `{"message":"x","stream":true}`, nil, 400},
		{"bad Last-Event-ID", "GET", "/v1/streams/st_x", "", []string{"Last-Event-ID", "abc"}, 400},
		{"negative last_event_id", "GET", "/v1/streams/st_x?last_event_id=-1", "", nil, 400},
		{"bad stream id", "GET", "/v1/streams/a%7Bb", "", nil, 400},
		{"POST a stream", "POST", "/v1/streams/st_x", "{}", nil, 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := doSSE(t, srv, tc.method, tc.path, tc.body, tc.hdr...)
			if r.status != tc.status || !strings.Contains(r.body, `"error"`) {
				t.Errorf("status %d body %q, want %d and a JSON error", r.status, r.body, tc.status)
			}
		})
	}
}

// A turn that fails after it started ends its stream with an error event
// holding the JSON error body the plain call would get; nothing is saved.
func TestStreamedTurnFails(t *testing.T) {
	srv := stacktest.Start(t, stacktest.Options{Sim: claudesim.Config{Rate529: 1}, Retry: retry.Policy{Attempts: 1},
		HTTP: httpapi.Config{Streams: stream.NewMemory(0)}}).URL
	r := doSSE(t, srv, "POST", "/agent", `{"session_id":"f1","message":"hi","stream":true}`)
	if got := names(r.events); len(got) != 2 || r.events[0].Name != stream.TurnStart || r.events[1].Name != stream.Error {
		t.Fatalf("events %v; want turn_start, error", got)
	}
	plain := do(t, srv, "POST", "/agent", `{"session_id":"f1","message":"hi"}`)
	// The same shape, but for Claude's request id, new on every call.
	strip := func(b string) string {
		var e map[string]map[string]any
		if err := json.Unmarshal([]byte(b), &e); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		delete(e["error"], "request_id")
		out, _ := json.Marshal(e)
		return string(out)
	}
	if strip(string(r.events[1].Data)) != strip(plain.body) || plain.status != 503 {
		t.Errorf("error event %s; the plain call answers %d %s", r.events[1].Data, plain.status, plain.body)
	}
	if st := do(t, srv, "GET", "/v1/sessions/f1", ""); st.status != 404 {
		t.Errorf("session after a failed turn: %d %s", st.status, st.body)
	}
}

// A repeat of a request (same Idempotency-Key) while its turn still runs,
// after its client hung up, follows that turn's stream from the start:
// one turn, one stream, every event once.
func TestStreamedRepeatWhileRunning(t *testing.T) {
	srv := stacktest.Start(t, stacktest.Options{Sim: claudesim.Config{Latency: time.Second}, Retry: retry.Policy{Attempts: 1},
		HTTP: httpapi.Config{Streams: stream.NewMemory(0)}}).URL
	body := `{"session_id":"rw","message":"` + strings.Repeat("still running ", 20) + `","stream":true}`
	req, _ := http.NewRequest("POST", srv+"/agent", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "rw-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("hang up")
	_ = stream.ReadSSE(resp.Body, func(stream.Event) error { return stop })
	resp.Body.Close()

	again := doSSE(t, srv, "POST", "/agent", body, "Idempotency-Key", "rw-1")
	check(t, again.events, 1)
	if st := do(t, srv, "GET", "/v1/sessions/rw", ""); !strings.Contains(st.body, `"turns":1,`) {
		t.Errorf("session: %s", st.body)
	}
}

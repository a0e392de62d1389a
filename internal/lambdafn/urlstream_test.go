package lambdafn

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/httpapi"
	"github.com/lambdagent/lambdagent/internal/lambdafn/internal/apistub"
	"github.com/lambdagent/lambdagent/internal/lambdafn/rietest"
	"github.com/lambdagent/lambdagent/internal/retry"
	"github.com/lambdagent/lambdagent/internal/stacktest"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// urlEvent is a Function URL event.
func urlEvent(method, path, body string, header map[string]string) json.RawMessage {
	const domain = "k3xqlpz7w2abcdefgh4ijklmno5pqrs.lambda-url.us-east-1.on.aws"
	h := map[string]string{"host": domain, "content-type": "application/json"}
	for k, v := range header {
		h[k] = v
	}
	b, _ := json.Marshal(map[string]any{
		"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": h,
		"requestContext": map[string]any{"domainName": domain, "http": map[string]string{"method": method, "path": path, "sourceIp": "198.51.100.23"}},
		"body":           body, "isBase64Encoded": false,
	})
	return b
}

// prelude reads what a RESPONSE_STREAM answer starts with: the status and
// headers as JSON, then 8 zero bytes.
func prelude(t *testing.T, r *bufio.Reader) (p struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Cookies    []string          `json:"cookies"`
}) {
	t.Helper()
	b, err := r.ReadBytes(0)
	if err != nil {
		t.Fatalf("read prelude: %v", err)
	}
	if err := json.Unmarshal(b[:len(b)-1], &p); err != nil {
		t.Fatalf("prelude %q: %v", b, err)
	}
	zeros := make([]byte, 7)
	if _, err := io.ReadFull(r, zeros); err != nil || !bytes.Equal(zeros, make([]byte, 7)) {
		t.Fatalf("prelude separator: %q, %v", zeros, err)
	}
	return p
}

// TestStreamerStreamsTurn reads a streamed turn at the aws-lambda-go
// boundary, the io.Reader the handler func returns, which the runtime
// client posts to the Runtime API as it reads it: the events arrive
// while the turn runs, not when it ends, and they are the whole turn.
func TestStreamerStreamsTurn(t *testing.T) {
	const latency = 1500 * time.Millisecond // spread over the reply's events
	st := stacktest.Start(t, stacktest.Options{Sim: claudesim.Config{Latency: latency}, Retry: retry.Policy{Attempts: 1},
		HTTP: httpapi.Config{Streams: stream.NewMemory(0)}, NoServer: true})
	fn, err := New(st.Handler, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	begin := time.Now()
	out, err := fn.Streamer(nil)(ctx, urlEvent("POST", "/agent", `{"session_id":"url-stream-1","message":"write me a few sentences"}`,
		map[string]string{"accept": "text/event-stream"}))
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := out.(interface{ ContentType() string }); !ok || c.ContentType() != "application/vnd.awslambda.http-integration-response" {
		t.Fatalf("answer %T is not a Function URL streaming response", out)
	}
	if rc, ok := out.(io.Closer); ok {
		defer rc.Close()
	}
	r := bufio.NewReader(out)
	p := prelude(t, r)
	if p.StatusCode != http.StatusOK || !strings.HasPrefix(p.Headers["Content-Type"], "text/event-stream") {
		t.Fatalf("prelude %+v: want 200 text/event-stream", p)
	}
	var evs []stream.Event
	var started, firstDelta time.Duration
	if err := stream.ReadSSE(r, func(ev stream.Event) error {
		if ev.Name == stream.TurnStart {
			started = time.Since(begin)
		}
		if ev.Name == stream.TextDelta && firstDelta == 0 {
			firstDelta = time.Since(begin)
		}
		evs = append(evs, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	total := time.Since(begin)
	if len(evs) < 3 || evs[0].Name != stream.TurnStart || evs[len(evs)-1].Name != stream.TurnEnd {
		t.Fatalf("events %d: want turn_start … turn_end", len(evs))
	}
	var text strings.Builder
	for _, ev := range evs {
		if ev.Name == stream.TextDelta {
			var d struct{ Text string }
			_ = json.Unmarshal(ev.Data, &d)
			text.WriteString(d.Text)
		}
	}
	var end struct{ Response string }
	if err := json.Unmarshal(evs[len(evs)-1].Data, &end); err != nil || end.Response == "" || text.String() != end.Response {
		t.Fatalf("deltas %q != turn_end response %q (%v)", text.String(), end.Response, err)
	}
	// turn_start was read while the model was still answering: the
	// stream was not held back until the turn finished.
	if total-started < latency/2 {
		t.Fatalf("turn_start read at %v, stream ended at %v: not streamed", started, total)
	}
	t.Logf("turn_start after %v, first text_delta after %v, turn_end after %v, %d events", started, firstDelta, total, len(evs))
}

// TestStreamerBuffersOthers: a plain answer through a Function URL is a
// streaming response with the status, headers and cookies in the prelude
// and the body after; other event sources are answered as before.
func TestStreamerBuffersOthers(t *testing.T) {
	fn, err := New(apistub.New(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := fn.Streamer(nil)
	ctx := context.Background()

	out, err := s(ctx, urlEvent("GET", "/nope", "", nil))
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(out)
	p := prelude(t, r)
	body, _ := io.ReadAll(r)
	want, _ := fn.Invoke(ctx, urlEvent("GET", "/nope", "", nil))
	var buffered v2Response
	if err := json.Unmarshal(want, &buffered); err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != buffered.StatusCode || string(body) != buffered.Body || p.Headers["Content-Type"] != buffered.Headers["Content-Type"] {
		t.Fatalf("streamed %d %v %q, buffered %d %v %q", p.StatusCode, p.Headers, body, buffered.StatusCode, buffered.Headers, buffered.Body)
	}

	event := v2Event("GET", "/nope", "")
	out, err = s(ctx, event)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out)
	want, _ = fn.Invoke(ctx, event)
	if !bytes.Equal(got, want) {
		t.Fatalf("API Gateway answer through the Streamer %s, through Invoke %s", got, want)
	}
}

// TestEmulatorStreaming runs the Streamer under the Runtime Interface
// Emulator, as a RESPONSE_STREAM function is started: a Function URL
// answer is the streaming framing (prelude, 8 zero bytes, body) with the
// status, headers and body of the buffered golden answer, and an API
// Gateway event is answered as before. The emulator reads the whole
// answer before it replies, so this checks the bytes, not their timing
// (TestStreamerStreamsTurn does that).
func TestEmulatorStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bootstrap and runs the emulator")
	}
	bootstrap := buildBootstrap(t)
	rie := rietest.Start(t, bootstrap, map[string]string{"LAMBDAGENT_FUNCTION_URL_STREAMING": "true"}, 5*time.Second)
	golden := func(name string) (event, want []byte) {
		a, event := httpCase(t, name)
		for _, f := range a.Files {
			if f.Name == "response.json" {
				want = f.Data
			}
		}
		return event, want
	}

	event, want := golden("function-url-echo")
	res := rie.Invoke(t, event)
	if res.Status != 200 {
		t.Fatalf("emulator answered %d: %s", res.Status, res.Payload)
	}
	r := bufio.NewReader(bytes.NewReader(res.Payload))
	p := prelude(t, r)
	body, _ := io.ReadAll(r)
	var buffered v2Response
	if err := json.Unmarshal(want, &buffered); err != nil {
		t.Fatal(err)
	}
	if p.StatusCode != buffered.StatusCode || string(body) != buffered.Body {
		t.Errorf("streamed %d %q, golden %d %q", p.StatusCode, body, buffered.StatusCode, buffered.Body)
	}
	for k, v := range buffered.Headers {
		if p.Headers[k] != v {
			t.Errorf("streamed header %s = %q, golden %q", k, p.Headers[k], v)
		}
	}

	event, want = golden("apigw-v2-echo-stage")
	res = rie.Invoke(t, event)
	var got, wantJSON bytes.Buffer
	if err := json.Indent(&got, res.Payload, "", "  "); err != nil {
		t.Fatalf("API Gateway answer %s: %v", res.Payload, err)
	}
	_ = json.Indent(&wantJSON, want, "", "  ")
	if strings.TrimSpace(got.String()) != strings.TrimSpace(wantJSON.String()) {
		t.Errorf("API Gateway answer through the Streamer:\n%s\nwant\n%s", got.String(), wantJSON.String())
	}
}

package lambdafn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/tools/txtar"

	"github.com/lambdagent/lambdagent/internal/lambdafn/internal/apistub"
)

var update = flag.Bool("update", false, "rewrite the response.json sections of testdata/http/*.txtar")

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newFunction(t *testing.T, h http.Handler, cfg Config) *Function {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	f, err := New(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// httpCase reads an event from testdata/http/<name>.txtar.
func httpCase(t *testing.T, name string) (*txtar.Archive, []byte) {
	t.Helper()
	a, err := txtar.ParseFile(filepath.Join("testdata", "http", name+".txtar"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range a.Files {
		if f.Name == "event.json" {
			return a, f.Data
		}
	}
	t.Fatalf("%s.txtar has no event.json", name)
	return nil, nil
}

// TestHTTPGolden runs every testdata/http event through the adapter and
// the stand-in API and compares the whole answer with its response.json
// section (-update rewrites them).
func TestHTTPGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "http", "*.txtar"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/http/*.txtar: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) {
			a, event := httpCase(t, name)
			f := newFunction(t, apistub.New(), Config{})
			// A deadline, as every Lambda invocation has.
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			out, err := f.Invoke(ctx, event)
			if err != nil {
				t.Fatal(err)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, out, "", "  "); err != nil {
				t.Fatalf("answer is not JSON: %v\n%s", err, out)
			}
			pretty.WriteByte('\n')
			var want []byte
			idx := -1
			for i, f := range a.Files {
				if f.Name == "response.json" {
					want, idx = f.Data, i
				}
			}
			if *update {
				if idx < 0 {
					a.Files = append(a.Files, txtar.File{Name: "response.json"})
					idx = len(a.Files) - 1
				}
				a.Files[idx].Data = pretty.Bytes()
				if err := os.WriteFile(file, txtar.Format(a), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if diff := cmp.Diff(string(want), pretty.String()); diff != "" {
				t.Errorf("answer differs from response.json (-want +got); run with -update if intended:\n%s", diff)
			}
		})
	}
}

// echoOf invokes an /echo event and returns what the handler saw and
// the decoded answer.
func echoOf(t *testing.T, name string) (apistub.Echo, map[string]any) {
	t.Helper()
	_, event := httpCase(t, name)
	f := newFunction(t, apistub.New(), Config{})
	out, err := f.Invoke(t.Context(), event)
	if err != nil {
		t.Fatal(err)
	}
	var resp map[string]any
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	body, _ := resp["body"].(string)
	if b64, _ := resp["isBase64Encoded"].(bool); b64 {
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
	}
	var e apistub.Echo
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("echo body: %v\n%s", err, body)
	}
	return e, resp
}

// TestHTTPRequest checks what the handler sees for each HTTP source.
func TestHTTPRequest(t *testing.T) {
	type seen struct {
		Method, Path, EscapedPath, Rest, Host, RemoteAddr, RequestURI string
		Query                                                         map[string][]string
		Cookies                                                       []string
		XMulti                                                        []string
		ContentLength                                                 int64
		Body                                                          string
	}
	tests := []struct {
		name string
		want seen
	}{
		{"apigw-v1-echo", seen{
			Method: "POST", Path: "/echo/a b/café", EscapedPath: "/echo/a%20b/caf%C3%A9", Rest: "a b/café",
			Host: "abc123defg.execute-api.us-east-1.amazonaws.com", RemoteAddr: "[2001:db8::7]:0",
			RequestURI: "/echo/a%20b/caf%C3%A9?q=x+y&q=z&s=a+b%26c",
			Query:      map[string][]string{"q": {"x y", "z"}, "s": {"a b&c"}},
			Cookies:    []string{"session=abc", "theme=dark"}, XMulti: []string{"1", "2"},
			ContentLength: 7, Body: "AAEC/wBoaQ==",
		}},
		{"apigw-v2-echo-stage", seen{
			Method: "DELETE", Path: "/echo/a b/café?", EscapedPath: "/echo/a%20b/caf%C3%A9%3F", Rest: "a b/café?",
			Host: "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com", RemoteAddr: "203.0.113.9:0",
			RequestURI: "/echo/a%20b/caf%C3%A9%3F?q=x%20y&q=z&s=a%20b%26c",
			Query:      map[string][]string{"q": {"x y", "z"}, "s": {"a b&c"}},
			Cookies:    []string{"session=abc", "theme=dark"}, XMulti: []string{"1,2"},
			Body: "",
		}},
		{"function-url-echo", seen{
			Method: "PUT", Path: "/echo/up/load", EscapedPath: "/echo/up%2Fload", Rest: "up/load",
			Host: "k3xqlpz7w2abcdefgh4ijklmno5pqrs.lambda-url.us-east-1.on.aws", RemoteAddr: "198.51.100.23:0",
			RequestURI:    "/echo/up%2Fload?v=1",
			Query:         map[string][]string{"v": {"1"}},
			Cookies:       []string{"session=abc"},
			ContentLength: 13, Body: "/9j/4AAQSkZJRgABAQ==",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, resp := echoOf(t, tc.name)
			got := seen{
				Method: e.Method, Path: e.Path, EscapedPath: e.EscapedPath, Rest: e.Rest, Host: e.Host,
				RemoteAddr: e.RemoteAddr, RequestURI: e.RequestURI, Query: e.Query, Cookies: e.Cookies,
				XMulti: e.Header["X-Multi"], ContentLength: e.ContentLength, Body: e.Body,
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("request the handler saw (-want +got):\n%s", diff)
			}
			if _, ok := e.Header["Host"]; ok {
				t.Errorf("Host left in the header map: %v", e.Header)
			}
			if code := resp["statusCode"]; code != 200.0 {
				t.Errorf("statusCode = %v, want 200", code)
			}
		})
	}
}

// TestHTTPResponse checks the answer shapes: multiValueHeaders for v1,
// joined headers and cookies for v2, base64 for binary bodies.
func TestHTTPResponse(t *testing.T) {
	t.Run("v1 keeps repeated headers", func(t *testing.T) {
		_, resp := echoOf(t, "apigw-v1-echo")
		mv, _ := resp["multiValueHeaders"].(map[string]any)
		if diff := cmp.Diff([]any{"a=1; Path=/", "b=2; Path=/"}, mv["Set-Cookie"]); diff != "" {
			t.Errorf("Set-Cookie (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]any{"one", "two"}, mv["X-Multi"]); diff != "" {
			t.Errorf("X-Multi (-want +got):\n%s", diff)
		}
		if _, ok := resp["headers"]; ok {
			t.Errorf("v1 answer has headers as well as multiValueHeaders: %v", resp)
		}
	})
	t.Run("v2 joins headers and returns cookies", func(t *testing.T) {
		_, resp := echoOf(t, "function-url-echo")
		if diff := cmp.Diff([]any{"a=1; Path=/", "b=2; Path=/"}, resp["cookies"]); diff != "" {
			t.Errorf("cookies (-want +got):\n%s", diff)
		}
		h, _ := resp["headers"].(map[string]any)
		if h["X-Multi"] != "one, two" || h["Set-Cookie"] != nil || h["Content-Length"] != nil {
			t.Errorf("headers = %v, want X-Multi joined, no Set-Cookie, no Content-Length", h)
		}
	})
	for _, name := range []string{"apigw-v1-binary", "function-url-binary"} {
		t.Run(name, func(t *testing.T) {
			_, event := httpCase(t, name)
			out, err := newFunction(t, apistub.New(), Config{}).Invoke(t.Context(), event)
			if err != nil {
				t.Fatal(err)
			}
			var resp struct {
				Body            string
				IsBase64Encoded bool
			}
			if err := json.Unmarshal(out, &resp); err != nil {
				t.Fatal(err)
			}
			b, err := base64.StdEncoding.DecodeString(resp.Body)
			if !resp.IsBase64Encoded || err != nil || len(b) != 256 || b[255] != 255 {
				t.Errorf("binary answer: isBase64Encoded=%v, %d bytes, err %v", resp.IsBase64Encoded, len(b), err)
			}
		})
	}
}

func TestTextual(t *testing.T) {
	tests := []struct {
		contentType, encoding string
		body                  []byte
		want                  bool
	}{
		{"application/json", "", []byte(`{"a":1}`), true},
		{"application/json; charset=utf-8", "", []byte(`{}`), true},
		{"application/problem+json", "", []byte(`{}`), true},
		{"text/html; charset=utf-8", "", []byte("<p>é</p>"), true},
		{"", "", []byte("plain"), true},
		{"text/plain", "", []byte{0xff, 0xfe}, false},
		{"application/json", "gzip", []byte("{}"), false},
		{"image/png", "", []byte("PNG-looking text"), false},
		{"application/octet-stream", "", []byte("abc"), false},
		{"bad/;;", "", []byte("abc"), false},
	}
	for _, tc := range tests {
		t.Run(tc.contentType+"/"+tc.encoding, func(t *testing.T) {
			h := http.Header{}
			if tc.contentType != "" {
				h.Set("Content-Type", tc.contentType)
			}
			if tc.encoding != "" {
				h.Set("Content-Encoding", tc.encoding)
			}
			if got := textual(h, tc.body); got != tc.want {
				t.Errorf("textual = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSQSText(t *testing.T) {
	for _, tc := range []struct {
		s        string
		text, id bool
	}{
		{"sqs:059f36b4-87a3-44ab-83d2-661975830a7d", true, true},
		{"alice@example.com:chat-1", true, true},
		{"two words", true, false},
		{"café", true, false},
		{"tab\tnewline\n", true, false},
		{"bell\a", false, false},
		{"", false, false},
		{"\xff", false, false},
		{strings.Repeat("x", 129), true, false},
	} {
		if got := sqsText(tc.s); got != tc.text {
			t.Errorf("sqsText(%q) = %v, want %v", tc.s, got, tc.text)
		}
		if got := sqsID(tc.s); got != tc.id {
			t.Errorf("sqsID(%q) = %v, want %v", tc.s, got, tc.id)
		}
	}
}

func TestEscapePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/agent", "/agent"},
		{"/a%20b/caf%C3%A9", "/a%20b/caf%C3%A9"}, // already encoded: unchanged
		{"/a b/café", "/a%20b/caf%C3%A9"},
		{"/x?y#z", "/x%3Fy%23z"},
		{"/100%", "/100%25"},
		{"/%zz", "/%25zz"},
		{"/q\"<>\\^`{|}", "/q%22%3C%3E%5C%5E%60%7B%7C%7D"},
		{"/ctl\x00\x7f", "/ctl%00%7F"},
	}
	for _, tc := range tests {
		if got := escapePath(tc.in); got != tc.want {
			t.Errorf("escapePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDetect checks which source each payload is taken for, and that
// every refusal wraps one of the package's sentinels.
func TestDetect(t *testing.T) {
	v2 := func(domain string) string {
		return `{"version":"2.0","rawPath":"/","requestContext":{"domainName":"` + domain + `","http":{"method":"GET"}}}`
	}
	tests := []struct {
		name    string
		payload string
		want    kind
		wantErr error
	}{
		{"empty", ``, 0, ErrUnknownEvent},
		{"array", `[1,2]`, 0, ErrUnknownEvent},
		{"string", `"hello"`, 0, ErrUnknownEvent},
		{"null", `null`, 0, ErrUnknownEvent},
		{"broken JSON", `{"session_id":`, 0, ErrInvalidEvent},
		{"unknown object", `{"foo":1,"bar":2}`, 0, ErrUnknownEvent},
		{"s3 records", `{"Records":[{"eventSource":"aws:s3","s3":{}}]}`, 0, ErrUnsupportedEvent},
		{"sns records", `{"Records":[{"EventSource":"aws:sns","Sns":{}}]}`, 0, ErrUnsupportedEvent},
		{"no records", `{"Records":[]}`, 0, ErrInvalidEvent},
		{"records not a list", `{"Records":"x"}`, 0, ErrInvalidEvent},
		{"sqs record without id", `{"Records":[{"eventSource":"aws:sqs","body":"{}"}]}`, 0, ErrInvalidEvent},
		{"sqs", `{"Records":[{"messageId":"m1","eventSource":"aws:sqs","body":"{}"}]}`, kindSQS, nil},
		{"alb", `{"httpMethod":"GET","path":"/","requestContext":{"elb":{"targetGroupArn":"arn"}}}`, 0, ErrUnsupportedEvent},
		{"websocket", `{"requestContext":{"connectionId":"c1","eventType":"MESSAGE"}}`, 0, ErrUnsupportedEvent},
		{"bare requestContext", `{"requestContext":{}}`, 0, ErrUnsupportedEvent},
		{"requestContext not an object", `{"requestContext":7,"httpMethod":"GET"}`, 0, ErrInvalidEvent},
		{"v1", `{"httpMethod":"GET","path":"/healthz","requestContext":{}}`, kindAPIGatewayV1, nil},
		{"v1 without method", `{"httpMethod":"","path":"/","requestContext":{}}`, 0, ErrInvalidEvent},
		{"v1 bad method", `{"httpMethod":"GE T","path":"/","requestContext":{}}`, 0, ErrInvalidEvent},
		{"v1 bad base64", `{"httpMethod":"POST","path":"/","body":"%%%","isBase64Encoded":true,"requestContext":{}}`, 0, ErrInvalidEvent},
		{"v1 wrong type", `{"httpMethod":"GET","path":"/","headers":["x"],"requestContext":{}}`, 0, ErrInvalidEvent},
		{"v2", v2("a1b2c3.execute-api.us-east-1.amazonaws.com"), kindAPIGatewayV2, nil},
		{"function url", v2("abc.lambda-url.eu-west-1.on.aws"), kindFunctionURL, nil},
		{"v2 version 1.0 without httpMethod", `{"version":"1.0","requestContext":{"http":{"method":"GET"}}}`, 0, ErrUnsupportedEvent},
		{"v2 relative path", `{"version":"2.0","rawPath":"healthz","requestContext":{"http":{"method":"GET"}}}`, kindAPIGatewayV2, nil},
		{"eventbridge", string(readFile(t, "eventbridge.json")), kindEventBridge, nil},
		{"eventbridge without id", `{"detail-type":"x","source":"s","detail":{}}`, 0, ErrInvalidEvent},
		{"eventbridge bad reply_to", `{"id":"e1","detail-type":"x","source":"s","detail":{"session_id":"s","message":"m","reply_to":[1]}}`, 0, ErrInvalidEvent},
		{"direct", string(readFile(t, "invoke.json")), kindDirect, nil},
		{"direct bad key", `{"session_id":"s","message":"m","idempotency_key":7}`, 0, ErrInvalidEvent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := decode([]byte(tc.payload))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("decode error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if ev.kind != tc.want {
				t.Errorf("kind = %v, want %v", ev.kind, tc.want)
			}
		})
	}
}

// sqsFailures invokes an SQS event and returns the itemIdentifiers of
// batchItemFailures.
func sqsFailures(t *testing.T, ctx context.Context, f *Function, payload []byte) []string {
	t.Helper()
	out, err := f.Invoke(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		BatchItemFailures []struct{ ItemIdentifier string } `json:"batchItemFailures"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.BatchItemFailures == nil {
		t.Fatalf("SQS answer %s: want a batchItemFailures list (%v)", out, err)
	}
	ids := []string{}
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestSQSBatch delivers a realistic batch twice: the malformed records are
// listed (there is no dead-letter URL: the queue's redrive policy takes
// them, see TestSQSPoison), the busy one is redelivered, and the second delivery runs no
// turn again but sends the replies again.
func TestSQSBatch(t *testing.T) {
	peer := startSQSPeer(t)
	api := apistub.New()
	f := newFunction(t, api, Config{SQS: peer.client(t)})
	batch := readFile(t, "sqs-batch.json")
	const (
		alice1 = "059f36b4-87a3-44ab-83d2-661975830a7d"
		bob    = "2e1424d4-f796-459a-8184-9c92662be6da"
		alice2 = "3a6a1c1e-3c1c-4a57-a1b5-2cbe6e0e5d10"
		carol  = "5c8c3e3a-5e3e-4c79-c3d7-4ed08a2a7f32"
	)
	wantReplies := []sentMessage{
		{
			QueueURL: "https://sqs.us-east-1.amazonaws.com/123456789012/lambdagent-replies",
			Body:     `{"response":"echo: hello bob","session_id":"bob"}` + "\n",
			Attributes: map[string]string{"status": "Number=200", "idempotency_key": "String=sqs:" + bob,
				"session_id": "String=bob"},
		},
		{
			QueueURL: "https://sqs.us-east-1.amazonaws.com/123456789012/lambdagent-replies.fifo",
			Body:     `{"response":"echo: two","session_id":"alice"}` + "\n",
			Attributes: map[string]string{"status": "Number=200", "idempotency_key": "String=sqs:" + alice2,
				"session_id": "String=alice"},
			GroupID: "alice", DedupID: sha256hex("sqs:" + alice2),
		},
	}
	byQueue := func(a, b sentMessage) int { return strings.Compare(a.QueueURL, b.QueueURL) }
	for delivery := 1; delivery <= 2; delivery++ {
		malformed1, malformed2 := "4b7b2d2f-4d2d-4b68-b2c6-3dcf7f1f6e21", "6d9d4f4b-6f4f-4d8a-d4e8-5fe19b3b8043"
		if diff := cmp.Diff([]string{malformed1, carol, malformed2}, sqsFailures(t, t.Context(), f, batch)); diff != "" {
			t.Errorf("delivery %d: batchItemFailures (-want +got):\n%s", delivery, diff)
		}
		for _, id := range []string{alice1, bob, alice2} {
			if n := api.Runs("sqs:" + id); n != 1 {
				t.Errorf("delivery %d: turn sqs:%s ran %d times, want 1", delivery, id, n)
			}
		}
		if diff := cmp.Diff([]string{"one", "two"}, api.Messages("alice")); diff != "" {
			t.Errorf("delivery %d: alice's turns (-want +got):\n%s", delivery, diff)
		}
		sent := peer.Sent()
		if len(sent) != 2*delivery {
			t.Fatalf("delivery %d: %d replies sent, want %d: %+v", delivery, len(sent), 2*delivery, sent)
		}
		got := sent[2*(delivery-1):]
		slices.SortFunc(got, byQueue)
		if diff := cmp.Diff(wantReplies, got); diff != "" {
			t.Errorf("delivery %d: replies (-want +got):\n%s", delivery, diff)
		}
	}
	if n := api.Runs("sqs:" + carol); n != 0 {
		t.Errorf("busy turn ran %d times", n)
	}
}

// TestSQSFIFO: after a failure in a message group, the group's later
// records are redelivered behind it without running; other groups go on.
func TestSQSFIFO(t *testing.T) {
	api := apistub.New()
	f := newFunction(t, api, Config{})
	got := sqsFailures(t, t.Context(), f, readFile(t, "sqs-fifo.json"))
	want := []string{"11111111-aaaa-4aaa-8aaa-000000000002", "11111111-aaaa-4aaa-8aaa-000000000003"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("batchItemFailures (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"first"}, api.Messages("g1")); diff != "" {
		t.Errorf("group g1 turns (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"other group"}, api.Messages("g2")); diff != "" {
		t.Errorf("group g2 turns (-want +got):\n%s", diff)
	}
}

// sqsRecordJSON is one record of a made-up batch.
func sqsRecordJSON(id, body string, attrs map[string]string) map[string]any {
	if attrs == nil {
		attrs = map[string]string{}
	}
	attrs["ApproximateReceiveCount"] = "1"
	return map[string]any{"messageId": id, "receiptHandle": "rh-" + id, "body": body, "attributes": attrs,
		"messageAttributes": map[string]any{}, "eventSource": "aws:sqs",
		"eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"}
}

func sqsBatchJSON(t *testing.T, records ...map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"Records": records})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func turnBody(session, msg string) string {
	return fmt.Sprintf(`{"session_id":%q,"message":%q}`, session, msg)
}

// maxInFlight wraps a handler and records the most requests it served at
// once.
type maxInFlight struct {
	h http.Handler

	mu sync.Mutex
	// guarded by mu
	now, max int
}

func (m *maxInFlight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.now++
	m.max = max(m.max, m.now)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.now--
		m.mu.Unlock()
	}()
	m.h.ServeHTTP(w, r)
}

// TestSQSOrder interleaves the records of four sessions: each session's
// turns run in batch order, one at a time (the stub answers 409 to a
// second concurrent turn of a session), while sessions run in parallel
// up to MaxConcurrency.
func TestSQSOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		api := apistub.New()
		m := &maxInFlight{h: api}
		f := newFunction(t, m, Config{MaxConcurrency: 3})
		var records []map[string]any
		want := map[string][]string{}
		for i := range 5 {
			for _, s := range []string{"s1", "s2", "s3", "s4"} {
				msg := fmt.Sprintf("sleep:10ms %s-%d", s, i)
				want[s] = append(want[s], msg)
				records = append(records, sqsRecordJSON(fmt.Sprintf("%s-%d", s, i), turnBody(s, msg), nil))
			}
		}
		start := time.Now()
		if got := sqsFailures(t, t.Context(), f, sqsBatchJSON(t, records...)); len(got) != 0 {
			t.Errorf("batchItemFailures = %v, want none", got)
		}
		for s, msgs := range want {
			if diff := cmp.Diff(msgs, api.Messages(s)); diff != "" {
				t.Errorf("session %s turns (-want +got):\n%s", s, diff)
			}
		}
		if m.max != 3 {
			t.Errorf("at most %d turns ran at once, want MaxConcurrency 3", m.max)
		}
		// 4 sessions of 5×10ms on 3 workers: the fourth starts when the
		// first three end, at 50ms.
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("batch took %v", d)
		}
	})
}

// TestSQSGroups checks that records sharing a session or a message group,
// even transitively, form one ordered group.
func TestSQSGroups(t *testing.T) {
	job := func(session, group string) sqsJob {
		j := sqsJob{t: turn{sessionID: session}}
		if group != "" {
			j.rec.Attributes = map[string]string{"MessageGroupId": group}
		}
		return j
	}
	jobs := []sqsJob{
		job("a", ""),   // 0
		job("b", "g1"), // 1
		job("", ""),    // 2: alone
		job("c", "g1"), // 3: g1 joins it to b
		job("a", ""),   // 4
		job("c", ""),   // 5: c, so with b
		job("d", "g2"), // 6
	}
	want := [][]int{{0, 4}, {1, 3, 5}, {2}, {6}}
	if diff := cmp.Diff(want, sqsGroups(jobs)); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
}

func TestSQSReplyProblems(t *testing.T) {
	t.Run("no SQS client: not run, redelivered", func(t *testing.T) {
		api := apistub.New()
		f := newFunction(t, api, Config{})
		body := `{"session_id":"s","message":"m","reply_to":"https://sqs.us-east-1.amazonaws.com/1/q"}`
		got := sqsFailures(t, t.Context(), f, sqsBatchJSON(t, sqsRecordJSON("m1", body, nil)))
		if diff := cmp.Diff([]string{"m1"}, got); diff != "" {
			t.Errorf("batchItemFailures (-want +got):\n%s", diff)
		}
		if n := api.Runs("sqs:m1"); n != 0 {
			t.Errorf("turn ran %d times without a way to reply", n)
		}
	})
	t.Run("send fails: turn kept, record redelivered, replayed", func(t *testing.T) {
		peer := startSQSPeer(t)
		api := apistub.New()
		f := newFunction(t, api, Config{SQS: peer.client(t)})
		rec := sqsRecordJSON("m2", turnBody("s", "hello"), nil)
		rec["messageAttributes"] = map[string]any{"reply_to": map[string]any{"stringValue": "https://sqs.us-east-1.amazonaws.com/1/missing", "dataType": "String"}}
		batch := sqsBatchJSON(t, rec)
		for range 2 {
			if diff := cmp.Diff([]string{"m2"}, sqsFailures(t, t.Context(), f, batch)); diff != "" {
				t.Errorf("batchItemFailures (-want +got):\n%s", diff)
			}
		}
		if n := api.Runs("sqs:m2"); n != 1 {
			t.Errorf("turn ran %d times, want 1", n)
		}
	})
	t.Run("session id unfit for a FIFO group", func(t *testing.T) {
		peer := startSQSPeer(t)
		f := newFunction(t, apistub.New(), Config{SQS: peer.client(t)})
		body := `{"session_id":"two words\u0001","message":"hi","reply_to":"https://sqs.us-east-1.amazonaws.com/1/r.fifo"}`
		if got := sqsFailures(t, t.Context(), f, sqsBatchJSON(t, sqsRecordJSON("m4", body, nil))); len(got) != 0 {
			t.Errorf("batchItemFailures = %v, want none", got)
		}
		want := []sentMessage{{
			QueueURL:   "https://sqs.us-east-1.amazonaws.com/1/r.fifo",
			Body:       `{"response":"echo: hi","session_id":"two words\u0001"}` + "\n",
			Attributes: map[string]string{"status": "Number=200", "idempotency_key": "String=sqs:m4"},
			GroupID:    sha256hex("sqs:m4"), DedupID: sha256hex("sqs:m4"),
		}}
		if diff := cmp.Diff(want, peer.Sent()); diff != "" {
			t.Errorf("replies (-want +got):\n%s", diff)
		}
	})
	t.Run("permanent error is replied and dropped", func(t *testing.T) {
		peer := startSQSPeer(t)
		f := newFunction(t, apistub.New(), Config{SQS: peer.client(t)})
		body := `{"session_id":"s","reply_to":"https://sqs.us-east-1.amazonaws.com/1/q"}` // no message: 400
		if got := sqsFailures(t, t.Context(), f, sqsBatchJSON(t, sqsRecordJSON("m3", body, nil))); len(got) != 0 {
			t.Errorf("batchItemFailures = %v, want none", got)
		}
		sent := peer.Sent()
		if len(sent) != 1 || sent[0].Attributes["status"] != "Number=400" || !strings.Contains(sent[0].Body, `"invalid_request"`) {
			t.Errorf("replies = %+v, want one 400 invalid_request", sent)
		}
	})
}

// TestEventBridge runs the EventBridge fixture twice: one turn, two
// replies; a failing turn fails the invocation with its error type.
func TestEventBridge(t *testing.T) {
	peer := startSQSPeer(t)
	api := apistub.New()
	f := newFunction(t, api, Config{SQS: peer.client(t)})
	event := readFile(t, "eventbridge.json")
	want := `{"response":"echo: summarise order 42","session_id":"order-42"}` + "\n"
	for range 2 {
		out, err := f.Invoke(t.Context(), event)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != want {
			t.Errorf("answer = %s, want %s", out, want)
		}
	}
	if n := api.Runs("eventbridge:6a7e8feb-b491-4cf7-a9f1-bf3703467718"); n != 1 {
		t.Errorf("turn ran %d times, want 1", n)
	}
	sent := peer.Sent()
	if len(sent) != 2 || sent[0].Body != want || sent[0].QueueURL != "https://sqs.us-east-1.amazonaws.com/123456789012/lambdagent-replies" {
		t.Errorf("replies = %+v, want the answer twice", sent)
	}

	busy := bytes.Replace(event, []byte(`"summarise order 42"`), []byte(`"busy"`), 1)
	busy = bytes.Replace(busy, []byte(`"6a7e8feb`), []byte(`"7b7e8feb`), 1)
	_, err := f.Invoke(t.Context(), busy)
	var ie messages.InvokeResponse_Error
	if !errors.As(err, &ie) || ie.Type != "lambdagent.session_busy" || !strings.Contains(ie.Message, "409") {
		t.Errorf("busy turn: error %#v, want errorType lambdagent.session_busy", err)
	}
	if len(peer.Sent()) != 2 {
		t.Errorf("a failed turn sent a reply")
	}
}

// keyRecorder records the Idempotency-Key and body of each request.
type keyRecorder struct {
	h http.Handler

	mu sync.Mutex
	// guarded by mu
	keys, bodies, agents []string
}

func (k *keyRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	k.mu.Lock()
	k.keys = append(k.keys, r.Header.Get("Idempotency-Key"))
	k.bodies = append(k.bodies, string(b))
	k.agents = append(k.agents, r.Method+" "+r.RequestURI+" "+r.Header.Get("Content-Type")+" "+r.Header.Get("User-Agent"))
	k.mu.Unlock()
	k.h.ServeHTTP(w, r)
}

func TestDirectInvoke(t *testing.T) {
	withRequestID := func(id string) context.Context {
		return lambdacontext.NewContext(t.Context(), &lambdacontext.LambdaContext{AwsRequestID: id})
	}
	tests := []struct {
		name     string
		ctx      context.Context
		payload  string
		wantOut  string
		wantType string // errorType of a failed invocation
		wantKey  string
		wantBody string
	}{
		{
			name: "request id is the key", ctx: withRequestID("8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
			payload:  string(readFile(t, "invoke.json")),
			wantOut:  `{"response":"echo: hello from Invoke","session_id":"direct-1"}` + "\n",
			wantKey:  "invoke:8476a536-e9f4-11e8-9739-2dfe598c3fcd",
			wantBody: `{"session_id": "direct-1", "message": "hello from Invoke"}` + "\n",
		},
		{
			name: "own key, taken out of the body", ctx: withRequestID("r2"),
			payload:  `{"session_id":"direct-2","message":"hi","idempotency_key":"order-7"}`,
			wantOut:  `{"response":"echo: hi","session_id":"direct-2"}` + "\n",
			wantKey:  "order-7",
			wantBody: `{"message":"hi","session_id":"direct-2"}`,
		},
		{
			name: "no lambda context, no key", ctx: t.Context(),
			payload: `{"session_id":"direct-3","message":"hi"}`,
			wantOut: `{"response":"echo: hi","session_id":"direct-3"}` + "\n", wantBody: `{"session_id":"direct-3","message":"hi"}`,
		},
		{
			name: "error status fails the invocation", ctx: withRequestID("r4"),
			payload: `{"session_id":"direct-4","message":"fail"}`, wantType: "lambdagent.store_unavailable",
			wantKey: "invoke:r4", wantBody: `{"session_id":"direct-4","message":"fail"}`,
		},
		{
			name: "400 fails the invocation", ctx: withRequestID("r5"),
			payload: `{"session_id":"direct-5"}`, wantType: "lambdagent.invalid_request",
			wantKey: "invoke:r5", wantBody: `{"session_id":"direct-5"}`,
		},
		{name: "unknown payload", ctx: t.Context(), payload: `{"hello":"world"}`, wantType: "lambdagent.unknown_event"},
		{name: "reply_to without a client", ctx: t.Context(), payload: `{"session_id":"s","message":"m","reply_to":"https://q"}`, wantType: "lambdagent.no_reply_client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kr := &keyRecorder{h: apistub.New()}
			f := newFunction(t, kr, Config{})
			out, err := f.Invoke(tc.ctx, []byte(tc.payload))
			if tc.wantType != "" {
				var ie messages.InvokeResponse_Error
				if !errors.As(err, &ie) || ie.Type != tc.wantType {
					t.Errorf("error = %#v, want errorType %s", err, tc.wantType)
				}
			} else if err != nil || string(out) != tc.wantOut {
				t.Errorf("Invoke = %q, %v; want %q", out, err, tc.wantOut)
			}
			if tc.wantBody == "" {
				if len(kr.keys) != 0 {
					t.Errorf("handler called for a refused payload")
				}
				return
			}
			if len(kr.keys) != 1 || kr.keys[0] != tc.wantKey || kr.bodies[0] != tc.wantBody {
				t.Errorf("handler saw keys %q bodies %q; want %q %q", kr.keys, kr.bodies, tc.wantKey, tc.wantBody)
			}
			if want := "POST /agent application/json lambdafn/invoke"; kr.agents[0] != want {
				t.Errorf("request %q, want %q", kr.agents[0], want)
			}
		})
	}
}

// TestDeadline: the handler's context ends DeadlineMargin before the
// invocation's deadline, and the invocation answers before the deadline.
func TestDeadline(t *testing.T) {
	slowV2 := `{"version":"2.0","rawPath":"/agent","headers":{},"requestContext":{"domainName":"x.execute-api.us-east-1.amazonaws.com","http":{"method":"POST","sourceIp":"1.2.3.4"}},"body":` +
		fmt.Sprintf("%q", turnBody("s", "slow")) + `}`
	tests := []struct {
		name    string
		margin  time.Duration
		payload string
		check   func(t *testing.T, out []byte, err error)
		want    time.Duration // when the invocation answers
	}{
		{
			name: "direct, default margin", payload: turnBody("s", "slow"), want: 1500 * time.Millisecond,
			check: func(t *testing.T, out []byte, err error) {
				var ie messages.InvokeResponse_Error
				if !errors.As(err, &ie) || ie.Type != "lambdagent.timeout" || !strings.Contains(ie.Message, "504") {
					t.Errorf("error = %#v, want lambdagent.timeout", err)
				}
			},
		},
		{
			name: "direct, 300ms margin", margin: 300 * time.Millisecond, payload: turnBody("s", "slow"), want: 1700 * time.Millisecond,
			check: func(t *testing.T, out []byte, err error) {
				if err == nil {
					t.Errorf("slow turn succeeded: %s", out)
				}
			},
		},
		{
			name: "http api", payload: slowV2, want: 1500 * time.Millisecond,
			check: func(t *testing.T, out []byte, err error) {
				if err != nil || !bytes.Contains(out, []byte(`"statusCode":504`)) {
					t.Errorf("Invoke = %s, %v; want a 504 answer", out, err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFunction(t, apistub.New(), Config{DeadlineMargin: tc.margin})
				ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
				defer cancel()
				start := time.Now()
				out, err := f.Invoke(ctx, []byte(tc.payload))
				if d := time.Since(start); d != tc.want {
					t.Errorf("answered after %v, want %v", d, tc.want)
				}
				tc.check(t, out, err)
			})
		})
	}

	t.Run("sqs", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			api := apistub.New()
			f := newFunction(t, api, Config{})
			ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
			defer cancel()
			batch := sqsBatchJSON(t,
				sqsRecordJSON("a", turnBody("s1", "sleep:800ms a"), nil),  // 0–0.8s
				sqsRecordJSON("b", turnBody("s1", "sleep:800ms b"), nil),  // 0.8–1.6s
				sqsRecordJSON("c", turnBody("s1", "sleep:800ms c"), nil),  // 1.6–2.0s: 504
				sqsRecordJSON("d", turnBody("s1", "d"), nil),              // not run
				sqsRecordJSON("e", turnBody("s2", "slow"), nil),           // 504 at 2.0s
				sqsRecordJSON("f", turnBody("s3", "sleep:1900ms f"), nil), // done in time
			)
			start := time.Now()
			got := sqsFailures(t, ctx, f, batch)
			slices.Sort(got)
			if diff := cmp.Diff([]string{"c", "d", "e"}, got); diff != "" {
				t.Errorf("batchItemFailures (-want +got):\n%s", diff)
			}
			if d := time.Since(start); d != 2*time.Second {
				t.Errorf("batch answered after %v, want 2s (the deadline less the margin)", d)
			}
			if diff := cmp.Diff([]string{"sleep:800ms a", "sleep:800ms b"}, api.Messages("s1")); diff != "" {
				t.Errorf("s1 turns (-want +got):\n%s", diff)
			}
		})
	})

	t.Run("sqs with no time left", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			api := apistub.New()
			f := newFunction(t, api, Config{})
			ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond) // less than the margin
			defer cancel()
			got := sqsFailures(t, ctx, f, sqsBatchJSON(t, sqsRecordJSON("a", turnBody("s1", "a"), nil), sqsRecordJSON("b", turnBody("s2", "b"), nil)))
			slices.Sort(got)
			if diff := cmp.Diff([]string{"a", "b"}, got); diff != "" {
				t.Errorf("batchItemFailures (-want +got):\n%s", diff)
			}
			if n := api.Runs("sqs:a") + api.Runs("sqs:b"); n != 0 {
				t.Errorf("%d turns ran with no time left", n)
			}
		})
	})
}

// TestPanic: a panicking handler answers 500 for that request only.
func TestPanic(t *testing.T) {
	api := apistub.New()
	f := newFunction(t, api, Config{})
	batch := sqsBatchJSON(t, sqsRecordJSON("p", turnBody("s1", "panic"), nil), sqsRecordJSON("ok", turnBody("s2", "fine"), nil))
	if diff := cmp.Diff([]string{"p"}, sqsFailures(t, t.Context(), f, batch)); diff != "" {
		t.Errorf("batchItemFailures (-want +got):\n%s", diff)
	}
	if n := api.Runs("sqs:ok"); n != 1 {
		t.Errorf("the other record ran %d times, want 1", n)
	}
	_, err := f.Invoke(t.Context(), []byte(turnBody("s3", "panic")))
	var ie messages.InvokeResponse_Error
	if !errors.As(err, &ie) || ie.Type != "lambdagent.internal_error" {
		t.Errorf("error = %#v, want lambdagent.internal_error", err)
	}
}

func TestNew(t *testing.T) {
	h := http.NotFoundHandler()
	tests := []struct {
		name string
		h    http.Handler
		cfg  Config
		ok   bool
	}{
		{"defaults", h, Config{}, true},
		{"nil handler", nil, Config{}, false},
		{"negative margin", h, Config{DeadlineMargin: -time.Second}, false},
		{"negative concurrency", h, Config{MaxConcurrency: -1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.h, tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New error = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (f.margin != DefaultDeadlineMargin || f.maxConc != DefaultMaxConcurrency || f.log == nil) {
				t.Errorf("defaults not applied: %+v", f)
			}
		})
	}
	if _, err := NewSQSClient(SQSClientConfig{AccessKeyID: "a", SecretAccessKey: "b"}); err == nil || !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("NewSQSClient without region: %v", err)
	}
	if _, err := NewSQSClient(SQSClientConfig{Region: "us-east-1"}); err == nil || !strings.Contains(err.Error(), "AWS_ACCESS_KEY_ID") {
		t.Errorf("NewSQSClient without credentials: %v", err)
	}
}

// FuzzDecode feeds arbitrary payloads through detection, decoding and a
// whole invocation: nothing panics, every refusal wraps a sentinel, and
// HTTP and SQS answers are JSON. Seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"sqs-batch.json", "sqs-fifo.json", "eventbridge.json", "invoke.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "http", "*.txtar"))
	for _, file := range files {
		a, err := txtar.ParseFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(a.Files[0].Data)
	}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Set-Cookie", "a=b")
		_, _ = w.Write(b)
	})
	fn, err := New(echo, Config{Logger: quietLogger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, err := decode(payload)
		if err != nil {
			if !errors.Is(err, ErrUnknownEvent) && !errors.Is(err, ErrUnsupportedEvent) && !errors.Is(err, ErrInvalidEvent) {
				t.Fatalf("decode error wraps no sentinel: %v", err)
			}
			return
		}
		out, err := fn.invoke(t.Context(), payload)
		switch ev.kind {
		case kindAPIGatewayV1, kindAPIGatewayV2, kindFunctionURL, kindSQS:
			if err != nil || !json.Valid(out) {
				t.Fatalf("%v answer %q, %v: want JSON", ev.kind, out, err)
			}
		}
	})
}

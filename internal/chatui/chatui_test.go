package chatui_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/chatui"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

// startStack serves lambdagent with the embedded store and the simulator,
// and returns its URL.
func startStack(t *testing.T) string {
	return stacktest.Start(t, stacktest.Options{}).URL
}

// TestScript drives a chat through plain lines, as `lambdagent chat`
// does when stdin is not a terminal.
func TestScript(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{
			name:  "turns and history",
			input: "hello\n\n  how are you  \n/history\n",
			want: `echo: hello (messages: 1)
echo: how are you (messages: 3)
session s1: 2 turns, 4 messages
  you: hello
  claude: echo: hello (messages: 1)
  you: how are you
  claude: echo: how are you (messages: 3)
`,
		},
		{
			name:  "quit stops reading",
			input: "one\n/quit\ntwo\n",
			want:  "echo: one (messages: 1)\n",
		},
		{
			name:  "unknown command and empty session",
			input: "/nope\n/history\n/usage\n",
			want:  "unknown command /nope; /help lists them\nsession s1 has no turns yet\nsession s1 has no turns yet\n",
		},
		{
			name:  "switch session",
			input: "a\n/session other\nb\n/session s1\nc\n",
			want:  "echo: a (messages: 1)\nsession other\necho: b (messages: 1)\nsession s1\necho: c (messages: 3)\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := chatui.New(chatui.Config{URL: startStack(t) + "/agent", SessionID: "s1"})
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if err := c.Run(t.Context(), chatui.PlainLines(strings.NewReader(tc.input)), &out); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, out.String()); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUsage reads the session's counters and the last turn's usage.
func TestUsage(t *testing.T) {
	c, err := chatui.New(chatui.Config{URL: startStack(t), SessionID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := c.Run(t.Context(), chatui.PlainLines(strings.NewReader("hi\nthere\n/usage\n")), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"session u1: 2 turns, 2 model calls\n  tokens: input ", "  last turn: input "} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "tokens: input 0, output 0") {
		t.Errorf("no tokens counted:\n%s", got)
	}
}

// TestTerminal checks what a person sees: a banner, labelled answers and
// a line of figures.
func TestTerminal(t *testing.T) {
	c, err := chatui.New(chatui.Config{URL: startStack(t), Terminal: true})
	if err != nil {
		t.Fatal(err)
	}
	first := c.Session()
	var out strings.Builder
	if err := c.Run(t.Context(), chatui.PlainLines(strings.NewReader("hello\n/help\n/new\n")), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"lambdagent chat · session " + first, "claude> echo: hello (messages: 1)\n", "turn 1 · ", " out tokens", "/history ", "new session chat-"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

// TestOtherServers: a seed-style endpoint with no session API, one that
// is busy twice then answers (the retries keep the idempotency key), and
// one that is down.
func TestOtherServers(t *testing.T) {
	var mu sync.Mutex
	keys := map[string]int{} // guarded by mu
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		keys[r.Header.Get("Idempotency-Key")]++
		n := keys[r.Header.Get("Idempotency-Key")]
		mu.Unlock()
		if strings.Contains(string(b), "busy") && n <= 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusConflict)
			fmt.Fprint(w, `{"error":{"type":"session_busy","message":"another turn is running"}}`)
			return
		}
		if strings.Contains(string(b), "fail") {
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, `{"error":{"type":"upstream_error","message":"Claude answered 500"}}`)
			return
		}
		fmt.Fprint(w, `{"response":"ok","usage":{"input_tokens":3,"output_tokens":2}}`)
	}))
	defer srv.Close()
	c, err := chatui.New(chatui.Config{URL: srv.URL + "/chat", SessionID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := c.Run(t.Context(), chatui.PlainLines(strings.NewReader("busy\nfail\nhi\n/history\n/usage\n")), &out); err != nil {
		t.Fatal(err)
	}
	want := `ok
error: 502 upstream_error: Claude answered 500
ok
this server has no session API (` + srv.URL + `/v1/sessions/)
this server has no session API (` + srv.URL + `/v1/sessions/)
this chat: 2 turns
  tokens: input 6, output 4, cache write 0, cache read 0
  last turn: input 3, output 2, cache write 0, cache read 0
`
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 3 {
		t.Errorf("%d idempotency keys for 3 messages: %v", len(keys), keys)
	}

	srv.Close()
	out.Reset()
	_ = c.Run(t.Context(), chatui.PlainLines(strings.NewReader("hi\n")), &out)
	if !strings.Contains(out.String(), "nothing answers at "+srv.URL+"/chat") {
		t.Errorf("server down: output %q", out.String())
	}
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"localhost:8080", "ftp://h", "http://"} {
		if _, err := chatui.New(chatui.Config{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

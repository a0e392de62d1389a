package claude_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/retry"
)

// simClient is a Client against a fresh simulator, with a retry policy
// whose own backoff is tiny, so that what a test waits is the server's.
func simClient(t *testing.T, attempts int) (*claude.Client, *claudesim.Server) {
	t.Helper()
	sim := claudesim.New(claudesim.Config{})
	hs := httptest.NewServer(sim)
	t.Cleanup(hs.Close)
	c, err := claude.New(claude.Config{APIKey: "test-key", BaseURL: hs.URL,
		Retry: retry.Policy{Attempts: attempts, Base: time.Millisecond, Cap: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return c, sim
}

func simBody(text string, stream bool) []byte {
	b, _ := json.Marshal(map[string]any{"model": "claude-sonnet-5-5", "max_tokens": 1024, "stream": stream,
		"tools":    []any{map[string]any{"name": "lookup", "input_schema": map[string]any{"type": "object"}}},
		"messages": []any{map[string]any{"role": "user", "content": text}}})
	return b
}

// TestRetrySignals: the client's retry reads the simulator's retry
// headers as the SDK's own retry would (see #14): retry-after-ms and long
// retry-after are waited (past Policy.Cap), x-should-retry overrides the
// status, a 429 without retry-after waits for the exhausted limit's
// reset, and a wait past the deadline fails at once, saying so.
func TestRetrySignals(t *testing.T) {
	tests := []struct {
		name      string
		marker    string
		timeout   time.Duration
		wantCalls int // requests the simulator answered
		wantCode  int // StatusError code; 0 for success
		minWait   time.Duration
		maxWait   time.Duration
		deadline  bool // a *retry.DeadlineError
	}{
		{name: "retry-after-ms", marker: "[[fail 529 retry-after-ms=300]]", wantCalls: 2, minWait: 300 * time.Millisecond, maxWait: 2 * time.Second},
		{name: "retry-after past the cap", marker: "[[fail 429 retry-after=1.2]]", wantCalls: 2, minWait: 1200 * time.Millisecond, maxWait: 3 * time.Second},
		{name: "should-retry false stops a 529", marker: "[[fail 529 should-retry=false]]", wantCalls: 1, wantCode: 529, maxWait: time.Second},
		{name: "should-retry true retries a 400", marker: "[[fail 400 should-retry=true]]", wantCalls: 2, maxWait: time.Second},
		{name: "a 400 stays", marker: "[[fail 400]]", wantCalls: 1, wantCode: 400, maxWait: time.Second},
		{name: "exhausted limit's reset, not the earliest", marker: "[[fail 429 exhausted=output-tokens reset=3]]", wantCalls: 2, minWait: 1500 * time.Millisecond, maxWait: 5 * time.Second},
		{name: "wait past the deadline fails at once", marker: "[[fail 429 retry-after=120]]", timeout: 5 * time.Second, wantCalls: 1, wantCode: 429, maxWait: time.Second, deadline: true},
		{name: "mid-stream overloaded is retried", marker: "[[fail 529 mid-stream times=2]]", wantCalls: 3, maxWait: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, sim := simClient(t, 3)
			ctx := t.Context()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			began := time.Now()
			reply, err := c.Create(ctx, claude.Request{Model: "claude-sonnet-5-5", MaxTokens: 1024, Body: simBody("hi "+tc.marker, strings.Contains(tc.marker, "mid-stream"))})
			took := time.Since(began)
			if tc.wantCode == 0 {
				if err != nil {
					t.Fatalf("Create: %v", err)
				}
				if reply.Attempts != tc.wantCalls || !strings.Contains(string(reply.Content), "echo: hi") {
					t.Errorf("reply after %d attempts: %s", reply.Attempts, reply.Content)
				}
			} else {
				se, ok := errors.AsType[*claude.StatusError](err)
				if !ok || se.Code != tc.wantCode {
					t.Fatalf("Create = %v, want a %d StatusError", err, tc.wantCode)
				}
			}
			// The simulator records a request after its answer is out:
			// give the last record a moment.
			for i := 0; len(sim.Requests()) < tc.wantCalls && i < 100; i++ {
				time.Sleep(10 * time.Millisecond)
			}
			if got := len(sim.Requests()); got != tc.wantCalls {
				t.Errorf("%d requests, want %d", got, tc.wantCalls)
			}
			if took < tc.minWait || took > tc.maxWait {
				t.Errorf("took %v, want between %v and %v", took, tc.minWait, tc.maxWait)
			}
			if de, ok := errors.AsType[*retry.DeadlineError](err); ok != tc.deadline {
				t.Errorf("err = %v; a DeadlineError: %v, want %v", err, ok, tc.deadline)
			} else if ok && (de.Wait != 120*time.Second || !strings.Contains(err.Error(), "due in 2m0s")) {
				t.Errorf("DeadlineError = %v, want the 120s wait", err)
			}
		})
	}
}

// TestStreamedReply: a body that asks to stream gets the same Reply as
// one that does not (content, stop reason, usage), and a mid-stream error
// event is the StatusError of its type.
func TestStreamedReply(t *testing.T) {
	c, _ := simClient(t, 1)
	ctx := t.Context()
	for _, text := range []string{"hello <b> & \"you\"", "[[refusal]]", "[[pause_turn]] go", `[[tool lookup {"q":"a long query that takes several deltas","n":[1,2,3]}]]`} {
		t.Run(text, func(t *testing.T) {
			plain, err := c.Create(ctx, claude.Request{Body: simBody(text, false)})
			if err != nil {
				t.Fatal(err)
			}
			streamed, err := c.Create(ctx, claude.Request{Body: simBody(text, true)})
			if err != nil {
				t.Fatal(err)
			}
			// The same blocks (keys may come in another order); the ids
			// differ.
			var pc, sc any
			if err := json.Unmarshal(plain.Content, &pc); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(streamed.Content, &sc); err != nil {
				t.Fatal(err)
			}
			ignoreIDs := cmpopts.IgnoreMapEntries(func(k string, _ any) bool { return k == "id" })
			if diff := cmp.Diff(pc, sc, ignoreIDs); diff != "" || strings.Contains(string(streamed.Content), `\u003c`) {
				t.Errorf("content (-plain +streamed):\n%s\n%s", diff, streamed.Content)
			}
			if plain.StopReason != streamed.StopReason ||
				string(plain.StopDetails) != string(streamed.StopDetails) || plain.Usage.OutputTokens != streamed.Usage.OutputTokens ||
				plain.Usage.InputTokens != streamed.Usage.InputTokens {
				t.Errorf("plain:\n%s %s %s %+v\nstreamed:\n%s %s %s %+v", plain.Content, plain.StopReason, plain.StopDetails, plain.Usage,
					streamed.Content, streamed.StopReason, streamed.StopDetails, streamed.Usage)
			}
		})
	}
	_, err := c.Create(ctx, claude.Request{Body: simBody("[[fail 500 mid-stream]]", true)})
	se, ok := errors.AsType[*claude.StatusError](err)
	if !ok || se.Code != 500 || se.Type != "api_error" || !se.MidStream || !se.Retryable() || se.RequestID == "" {
		t.Errorf("mid-stream error = %#v, want a retryable 500 api_error, marked MidStream, with its request-id", err)
	}
}

// TestShouldRetryOverridesStatus: x-should-retry decides over the status,
// both ways.
func TestShouldRetryOverridesStatus(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		code   int
		should *bool
		want   bool
	}{{529, &no, false}, {429, &no, false}, {400, &yes, true}, {529, nil, true}, {400, nil, false}} {
		t.Run(fmt.Sprint(tc.code, tc.should != nil), func(t *testing.T) {
			if got := (&claude.StatusError{Code: tc.code, ShouldRetry: tc.should}).Retryable(); got != tc.want {
				t.Errorf("Retryable() = %v, want %v", got, tc.want)
			}
		})
	}
}

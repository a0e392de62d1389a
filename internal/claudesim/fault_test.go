package claudesim_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// sdkWithRetries is the official client with its own retries on, so that
// the simulator's retry headers are read by the SDK's retry, not ours.
func sdkWithRetries(url string, retries int) anthropic.Client {
	return anthropic.NewClient(option.WithBaseURL(url), option.WithAPIKey("sk-test"), option.WithMaxRetries(retries))
}

func newParams(text string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, Messages: userText(text)}
}

// TestFailMarkerWithSDK: anthropic-sdk-go's own retry reads the headers a
// [[fail …]] marker sends as it reads the API's: retry-after-ms is waited,
// x-should-retry false stops even a 529, x-should-retry true retries even
// a 400.
func TestFailMarkerWithSDK(t *testing.T) {
	tests := []struct {
		name       string
		marker     string
		wantErr    int // status of the error the SDK returns; 0 for success
		wantStatus map[int]int
		minWait    time.Duration
	}{
		{"529 twice then ok", "[[fail 529 times=2 retry-after-ms=10]]", 0, map[int]int{529: 2, 200: 1}, 20 * time.Millisecond},
		{"retry-after-ms is waited", "[[fail 500 retry-after-ms=400]]", 0, map[int]int{500: 1, 200: 1}, 400 * time.Millisecond},
		{"should-retry false stops a 529", "[[fail 529 should-retry=false retry-after-ms=1]]", 529, map[int]int{529: 1}, 0},
		{"should-retry true retries a 400", "[[fail 400 should-retry=true retry-after-ms=1]]", 0, map[int]int{400: 1, 200: 1}, 0},
		{"a 400 is not retried", "[[fail 400 retry-after-ms=1]]", 400, map[int]int{400: 1}, 0},
		{"times=0 never fails", "[[fail 529 times=0]]", 0, map[int]int{200: 1}, 0},
		{"malformed is text", "[[fail 529 often]]", 0, map[int]int{200: 1}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sim, _, url := start(t, claudesim.Config{})
			client := sdkWithRetries(url, 3)
			began := time.Now()
			msg, err := client.Messages.New(t.Context(), newParams("hello "+tc.marker))
			if tc.wantErr != 0 {
				if status, _ := apiStatus(t, err); status != tc.wantErr {
					t.Fatalf("status = %d, want %d", status, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if !strings.Contains(msg.Content[len(msg.Content)-1].Text, "echo: hello") {
				t.Errorf("reply = %+v, want the echo", msg.Content)
			}
			got := settled(sim, tc.wantStatus)
			if !mapsEqual(got, tc.wantStatus) {
				t.Errorf("statuses = %v, want %v", got, tc.wantStatus)
			}
			if d := time.Since(began); d < tc.minWait {
				t.Errorf("took %v, want at least %v of retry waits", d, tc.minWait)
			}
		})
	}
}

// settled waits up to a second for the simulator's statuses to reach
// want (it records a request after its answer is out) and returns them.
func settled(sim *claudesim.Server, want map[int]int) map[int]int {
	got := sim.Stats().ByStatus
	for i := 0; !mapsEqual(got, want) && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
		got = sim.Stats().ByStatus
	}
	return got
}

func mapsEqual(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestFailMarkerHeaders: the marker's headers, as sent.
func TestFailMarkerHeaders(t *testing.T) {
	clock := newClock()
	_, _, url := start(t, claudesim.Config{Now: clock.Now})
	send := func(t *testing.T, text string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", url+"/v1/messages", strings.NewReader(mustJSON(t, map[string]any{
			"model": "claude-sonnet-5-5", "max_tokens": 1024, "messages": []any{map[string]any{"role": "user", "content": text}},
		})))
		req.Header.Set("content-type", "application/json")
		req.Header.Set("anthropic-version", "2023-06-01")
		req.Header.Set("x-api-key", "sk-test")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := send(t, "[[fail 429 exhausted=input-tokens reset=30]]")
	now := clock.Now().UTC()
	want := map[string]string{
		"anthropic-ratelimit-input-tokens-remaining": "0",
		"anthropic-ratelimit-input-tokens-reset":     now.Add(30 * time.Second).Format(time.RFC3339),
		"anthropic-ratelimit-requests-reset":         now.Add(time.Second).Format(time.RFC3339),
		"anthropic-ratelimit-output-tokens-reset":    now.Add(time.Second).Format(time.RFC3339),
		"retry-after": "",
	}
	if resp.StatusCode != 429 {
		t.Fatalf("status = %d, want 429", resp.StatusCode)
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	resp = send(t, "[[fail 503 retry-after=120 should-retry=true]]")
	if resp.StatusCode != 503 || resp.Header.Get("retry-after") != "120" || resp.Header.Get("x-should-retry") != "true" {
		t.Errorf("got %d retry-after %q x-should-retry %q, want 503, 120, true", resp.StatusCode, resp.Header.Get("retry-after"), resp.Header.Get("x-should-retry"))
	}
}

// TestMidStreamErrorWithSDK: [[fail 529 mid-stream]] on a streamed
// request starts a 200 stream and breaks it off with an error event, which
// the SDK reports as an overloaded_error; the same request again streams
// the whole reply. A request that does not stream gets the 529 itself.
func TestMidStreamErrorWithSDK(t *testing.T) {
	sim, client, _ := start(t, claudesim.Config{})
	params := newParams("hi [[fail 529 mid-stream]]")
	stream := client.Messages.NewStreaming(t.Context(), params)
	var events []string
	for stream.Next() {
		events = append(events, stream.Current().Type)
	}
	err := stream.Err()
	apiErr, ok := errors.AsType[*anthropic.Error](err)
	if !ok {
		t.Fatalf("err = %v, want *anthropic.Error", err)
	}
	if apiErr.StatusCode != 200 || apiErr.Type() != anthropic.ErrorTypeOverloadedError {
		t.Errorf("error = %d %s, want an overloaded_error in a 200 stream", apiErr.StatusCode, apiErr.Type())
	}
	if len(events) == 0 || events[0] != "message_start" {
		t.Errorf("events before the error = %v, want message_start first", events)
	}
	// The same request again: the whole reply.
	stream = client.Messages.NewStreaming(t.Context(), params)
	var msg anthropic.Message
	for stream.Next() {
		if err := msg.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil || msg.StopReason != "end_turn" {
		t.Fatalf("retry: err %v, stop %q", err, msg.StopReason)
	}
	// A refusal has no block: the stream breaks off after ping.
	stream = client.Messages.NewStreaming(t.Context(), newParams("[[refusal]] [[fail 529 mid-stream]]"))
	events = nil
	for stream.Next() {
		events = append(events, stream.Current().Type)
	}
	if _, ok := errors.AsType[*anthropic.Error](stream.Err()); !ok || len(events) != 1 || events[0] != "message_start" {
		t.Errorf("refusal stream: events %v, err %v; want message_start then the error", events, stream.Err())
	}
	// Not streamed: the status.
	_, err = client.Messages.New(t.Context(), newParams("again [[fail 529 mid-stream]]"))
	if status, _ := apiStatus(t, err); status != 529 {
		t.Errorf("non-streamed status = %d, want 529", status)
	}
	if got := settled(sim, map[int]int{200: 3, 529: 1}); got[200] != 3 || got[529] != 1 {
		t.Errorf("statuses = %v, want 3 (streams) × 200 and 1 × 529", got)
	}
}

// TestStopReasonsWithSDK: the official client reads the simulator's
// refusal (stop_details), pause_turn and its continuation, and accepts a
// role "system" message.
func TestStopReasonsWithSDK(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{})
	ctx := t.Context()
	msg, err := client.Messages.New(ctx, newParams("[[refusal]] please"))
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != anthropic.StopReasonRefusal || msg.StopDetails.Type != "refusal" || msg.StopDetails.Explanation == "" || len(msg.Content) != 0 {
		t.Errorf("refusal = %s %+v %v", msg.StopReason, msg.StopDetails, msg.Content)
	}

	first := userText("[[pause_turn]] a long job")
	msg, err = client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, Messages: first})
	if err != nil || msg.StopReason != anthropic.StopReasonPauseTurn {
		t.Fatalf("pause: %v %v", err, msg)
	}
	cont, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, Messages: append(first, msg.ToParam())})
	if err != nil || cont.StopReason != anthropic.StopReasonEndTurn || !strings.HasPrefix(cont.Content[len(cont.Content)-1].Text, "resumed: ") {
		t.Fatalf("continuation: %v %+v", err, cont)
	}

	hello, err := client.Messages.New(ctx, newParams("hello"))
	if err != nil {
		t.Fatal(err)
	}
	history := append(userText("hello"), hello.ToParam(), anthropic.MessageParam{
		Role: anthropic.MessageParamRoleSystem, Content: []anthropic.ContentBlockParamUnion{anthropic.NewTextBlock("The system prompt changed.")},
	}, anthropic.NewUserMessage(anthropic.NewTextBlock("next")))
	msg, err = client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, Messages: history})
	if err != nil {
		t.Fatalf("system message: %v", err)
	}
	if text := msg.Content[len(msg.Content)-1].Text; !strings.Contains(text, "messages: 4") {
		t.Errorf("reply %q, want the system message counted (messages: 4)", text)
	}
}

// TestPrefixBindingWithSDK: through the official client, a changed system
// prompt gets the 400 of a thinking block bound to another conversation;
// with drop_block and its beta header the reply lists the dropped block in
// input_transformations and bills it no input tokens, while the kept
// block bills its full reasoning (preserved thinking is billed, see #14).
func TestPrefixBindingWithSDK(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{})
	ctx := t.Context()
	system := func(s string) []anthropic.TextBlockParam { return []anthropic.TextBlockParam{{Text: s}} }
	first := userText("hello")
	reply, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, System: system("Be brief."), Messages: first})
	if err != nil {
		t.Fatal(err)
	}
	if reply.Content[0].Type != "thinking" || reply.Content[0].Thinking != "" {
		t.Fatalf("first block = %+v, want omitted thinking", reply.Content[0])
	}
	history := append(first, reply.ToParam(), anthropic.NewUserMessage(anthropic.NewTextBlock("again")))
	withoutThinking := append(append(userText("hello"), anthropic.NewAssistantMessage(anthropic.NewTextBlock(reply.Content[1].Text))), history[2])

	kept, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, System: system("Be brief."), Messages: history})
	if err != nil {
		t.Fatal(err)
	}
	bare, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, System: system("Be brief."), Messages: withoutThinking})
	if err != nil {
		t.Fatal(err)
	}
	// The omitted thinking came back as "" but its reasoning is billed.
	if kept.Usage.InputTokens <= bare.Usage.InputTokens {
		t.Errorf("input tokens with preserved thinking %d, without %d: want the thinking billed", kept.Usage.InputTokens, bare.Usage.InputTokens)
	}

	_, err = client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, System: system("Be thorough."), Messages: history})
	if status, body := apiStatus(t, err); status != 400 || !strings.Contains(body, "bound to a different conversation") {
		t.Fatalf("changed system: %d %s, want the binding 400", status, body)
	}

	dropped, err := client.Messages.New(ctx, anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, System: system("Be thorough."), Messages: history},
		option.WithJSONSet("thinking", map[string]any{"type": "adaptive", "block_binding": map[string]any{"prefix_mismatch_behavior": "drop_block"}}),
		option.WithHeaderAdd("anthropic-beta", "thinking-binding-controls-2026-08-01"))
	if err != nil {
		t.Fatalf("drop_block: %v", err)
	}
	raw := dropped.RawJSON()
	if !strings.Contains(raw, `"input_transformations":[{"type":"thinking_dropped","path":"messages.1.content.0","reason":"prefix_mismatch"}]`) {
		t.Errorf("reply %s, want the dropped block in input_transformations", raw)
	}
	// "Be thorough." is one token more than "Be brief."; the dropped
	// block bills nothing.
	if dropped.Usage.InputTokens >= kept.Usage.InputTokens {
		t.Errorf("input tokens with the block dropped %d, kept %d: want the dropped block not billed", dropped.Usage.InputTokens, kept.Usage.InputTokens)
	}
}

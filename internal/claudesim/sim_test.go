package claudesim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"
	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
)

// A fakeClock is a Config.Now that moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, time.November, 24, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start serves a Server built from cfg and returns it with an SDK client
// pointed at it.
func start(t *testing.T, cfg claudesim.Config) (*claudesim.Server, anthropic.Client, string) {
	t.Helper()
	sim := claudesim.New(cfg)
	ts := httptest.NewServer(sim)
	t.Cleanup(ts.Close)
	client := anthropic.NewClient(
		option.WithBaseURL(ts.URL),
		option.WithAPIKey("sk-test"),
		option.WithMaxRetries(0),
	)
	return sim, client, ts.URL
}

func userText(s string) []anthropic.MessageParam {
	return []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(s))}
}

var weatherTool = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name:        "get_weather",
	Description: anthropic.String("Get the weather for a city."),
	InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}},
}}

var timeTool = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name:        "get_time",
	InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{}},
}}

// apiStatus returns the status of an *anthropic.Error, or fails.
func apiStatus(t *testing.T, err error) (int, string) {
	t.Helper()
	apiErr, ok := errors.AsType[*anthropic.Error](err)
	if !ok {
		t.Fatalf("err = %v, want *anthropic.Error", err)
	}
	return apiErr.StatusCode, apiErr.RawJSON()
}

// blockTypes lists the types of a reply's content blocks.
func blockTypes(m *anthropic.Message) []string {
	var out []string
	for _, b := range m.Content {
		out = append(out, b.Type)
	}
	return out
}

func TestMessagesNew(t *testing.T) {
	tests := []struct {
		name      string
		model     string
		thinking  anthropic.ThinkingConfigParamUnion
		wantTypes []string
		wantShown bool // thinking text returned
	}{
		{name: "adaptive default", model: "claude-sonnet-5-5", wantTypes: []string{"thinking", "text"}},
		{
			name:      "adaptive summarized",
			model:     "claude-opus-5-5",
			thinking:  anthropic.ThinkingConfigParamUnion{OfAdaptive: &anthropic.ThinkingConfigAdaptiveParam{Display: "summarized"}},
			wantTypes: []string{"thinking", "text"},
			wantShown: true,
		},
		{name: "older model thinks only when asked", model: "claude-sonnet-4-5", wantTypes: []string{"text"}},
		{
			name:      "older model with budget",
			model:     "claude-sonnet-4-5",
			thinking:  anthropic.ThinkingConfigParamOfEnabled(2048),
			wantTypes: []string{"thinking", "text"},
			wantShown: true,
		},
		{
			name:      "between_tools without tools",
			model:     "claude-sonnet-5-5",
			thinking:  anthropic.ThinkingConfigParamUnion{OfBetweenTools: &anthropic.ThinkingConfigBetweenToolsParam{}},
			wantTypes: []string{"text"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, client, _ := start(t, claudesim.Config{})
			msg, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{
				Model:     tc.model,
				MaxTokens: 4096,
				Messages:  userText("hello there"),
				Thinking:  tc.thinking,
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.wantTypes, blockTypes(msg)); diff != "" {
				t.Errorf("content types (-want +got):\n%s", diff)
			}
			last := msg.Content[len(msg.Content)-1]
			if want := "echo: hello there (messages: 1)"; last.Text != want {
				t.Errorf("text = %q, want %q", last.Text, want)
			}
			if msg.Content[0].Type == "thinking" {
				if msg.Content[0].Signature == "" {
					t.Error("thinking block has no signature")
				}
				if shown := msg.Content[0].Thinking != ""; shown != tc.wantShown {
					t.Errorf("thinking shown = %v, want %v", shown, tc.wantShown)
				}
			}
			if !strings.HasPrefix(msg.ID, "msg_01") || msg.StopReason != "end_turn" || msg.Model != tc.model {
				t.Errorf("id %q, stop_reason %q, model %q", msg.ID, msg.StopReason, msg.Model)
			}
			if msg.Usage.InputTokens != 3 { // "hello there": 11 bytes
				t.Errorf("input_tokens = %d, want 3", msg.Usage.InputTokens)
			}
			if msg.Usage.OutputTokens == 0 {
				t.Error("output_tokens = 0")
			}
		})
	}
}

func TestStreamingMatchesNonStreaming(t *testing.T) {
	tests := []struct {
		name   string
		params anthropic.MessageNewParams
	}{
		{"echo", anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 1024, Messages: userText("stream <me> & more, please")}},
		{"summarized thinking", anthropic.MessageNewParams{
			Model: "claude-sonnet-5-5", MaxTokens: 1024, Messages: userText("think out loud"),
			Thinking: anthropic.ThinkingConfigParamUnion{OfAdaptive: &anthropic.ThinkingConfigAdaptiveParam{Display: "summarized"}},
		}},
		{"tool calls", anthropic.MessageNewParams{
			Model: "claude-sonnet-5-5", MaxTokens: 1024, Tools: []anthropic.ToolUnionParam{weatherTool, timeTool},
			Messages: userText(`go [[tool get_weather {"city": "Paris", "note": "]] inside"}]] and [[tool get_time]]`),
		}},
		{"older model", anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 1024, Messages: userText("plain")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, client, _ := start(t, claudesim.Config{})
			want, err := client.Messages.New(t.Context(), tc.params)
			if err != nil {
				t.Fatal(err)
			}
			stream := client.Messages.NewStreaming(t.Context(), tc.params)
			var got anthropic.Message
			var events []string
			for stream.Next() {
				ev := stream.Current()
				events = append(events, ev.Type)
				if err := got.Accumulate(ev); err != nil {
					t.Fatal(err)
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			if events[0] != "message_start" || events[len(events)-1] != "message_stop" || events[len(events)-2] != "message_delta" {
				t.Errorf("event flow %v", events)
			}
			// Same reply but for the ids.
			got.ID = want.ID
			for i := range got.Content {
				if i < len(want.Content) && got.Content[i].Type == "tool_use" {
					got.Content[i].ID = want.Content[i].ID
				}
			}
			if diff := cmp.Diff(toJSON(t, want.Content), toJSON(t, got.Content)); diff != "" {
				t.Errorf("content (-non-streaming +streaming):\n%s", diff)
			}
			if got.StopReason != want.StopReason || got.Usage.OutputTokens != want.Usage.OutputTokens || got.Usage.InputTokens != want.Usage.InputTokens {
				t.Errorf("streamed stop %q usage %+v; non-streamed stop %q usage %+v", got.StopReason, got.Usage, want.StopReason, want.Usage)
			}
		})
	}
}

func toJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestToolRoundTrip(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "stream"}[streaming], func(t *testing.T) {
			sim, client, _ := start(t, claudesim.Config{})
			call := func(params anthropic.MessageNewParams) *anthropic.Message {
				t.Helper()
				if !streaming {
					msg, err := client.Messages.New(t.Context(), params)
					if err != nil {
						t.Fatal(err)
					}
					return msg
				}
				stream := client.Messages.NewStreaming(t.Context(), params)
				var msg anthropic.Message
				for stream.Next() {
					if err := msg.Accumulate(stream.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatal(err)
				}
				return &msg
			}
			params := anthropic.MessageNewParams{
				Model:     "claude-sonnet-5-5",
				MaxTokens: 4096,
				Tools:     []anthropic.ToolUnionParam{weatherTool, timeTool},
				Messages:  userText(`What's on? [[tool get_weather {"city":"Paris"}]] [[tool get_time {}]] [[tool unknown_tool]]`),
			}
			first := call(params)
			if diff := cmp.Diff([]string{"thinking", "text", "tool_use", "tool_use"}, blockTypes(first)); diff != "" {
				t.Fatalf("first reply (-want +got):\n%s", diff)
			}
			if first.StopReason != "tool_use" {
				t.Errorf("stop_reason = %q", first.StopReason)
			}
			weather, clock := first.Content[2], first.Content[3]
			if weather.Name != "get_weather" || string(weather.Input) != `{"city":"Paris"}` || !strings.HasPrefix(weather.ID, "toolu_01") {
				t.Errorf("tool_use = %s %s %s", weather.ID, weather.Name, weather.Input)
			}

			params.Messages = append(params.Messages, first.ToParam(), anthropic.NewUserMessage(
				anthropic.NewToolResultBlock(weather.ID, "sunny", false),
				anthropic.NewToolResultBlock(clock.ID, "no clock", true),
			))
			second := call(params)
			if second.StopReason != "end_turn" {
				t.Errorf("stop_reason = %q", second.StopReason)
			}
			want := "tool results: get_weather=sunny; get_time=(error) no clock"
			if got := second.Content[len(second.Content)-1].Text; got != want {
				t.Errorf("summary = %q, want %q", got, want)
			}

			// The second request carried the whole history, thinking first.
			reqs := sim.Requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests recorded", len(reqs))
			}
			turns := reqs[1].Turns()
			wantTurns := []claudesim.Turn{
				{Role: "user", Text: `What's on? [[tool get_weather {"city":"Paris"}]] [[tool get_time {}]] [[tool unknown_tool]]`, Blocks: []string{"text"}},
				{Role: "assistant", Text: "calling: get_weather, get_time", Blocks: []string{"thinking", "text", "tool_use", "tool_use"}},
				{Role: "user", Text: "sunny\nno clock", Blocks: []string{"tool_result", "tool_result"}},
			}
			if diff := cmp.Diff(wantTurns, turns); diff != "" {
				t.Errorf("recorded history (-want +got):\n%s", diff)
			}
		})
	}
}

// toolLoop runs the first leg of a tool loop and returns the params of the
// second with the reply in the history.
func toolLoop(t *testing.T, client anthropic.Client, display string) (anthropic.MessageNewParams, *anthropic.Message) {
	t.Helper()
	params := anthropic.MessageNewParams{
		Model:     "claude-sonnet-5-5",
		MaxTokens: 4096,
		Tools:     []anthropic.ToolUnionParam{weatherTool},
		Messages:  userText(`[[tool get_weather {"city":"Oslo"}]]`),
	}
	if display != "" {
		params.Thinking = anthropic.ThinkingConfigParamUnion{OfAdaptive: &anthropic.ThinkingConfigAdaptiveParam{Display: anthropic.ThinkingConfigAdaptiveDisplay(display)}}
	}
	first, err := client.Messages.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	return params, first
}

func TestThinkingMustComeBackVerbatim(t *testing.T) {
	tests := []struct {
		name    string
		display string
		edit    func(*anthropic.MessageParam)
		want    string // substring of the error; "" for success
	}{
		{name: "verbatim", edit: func(*anthropic.MessageParam) {}},
		{name: "verbatim summarized", display: "summarized", edit: func(*anthropic.MessageParam) {}},
		{
			name: "signature changed",
			edit: func(m *anthropic.MessageParam) {
				th := m.Content[0].OfThinking
				th.Signature = th.Signature[:len(th.Signature)-4] + "AAA="
			},
			want: "messages.1.content.0: Invalid `signature` in `thinking` block",
		},
		{
			name:    "thinking text changed",
			display: "summarized",
			edit:    func(m *anthropic.MessageParam) { m.Content[0].OfThinking.Thinking += " (edited)" },
			want:    "Invalid `signature`",
		},
		{
			name:    "omitted thinking filled in",
			display: "omitted",
			edit:    func(m *anthropic.MessageParam) { m.Content[0].OfThinking.Thinking = "made up" },
			want:    "Invalid `signature`",
		},
		{
			name: "thinking dropped",
			edit: func(m *anthropic.MessageParam) { m.Content = m.Content[1:] },
			want: "Expected `thinking` or `redacted_thinking`, but found `text`",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, client, _ := start(t, claudesim.Config{})
			params, first := toolLoop(t, client, tc.display)
			assistant := first.ToParam()
			tc.edit(&assistant)
			params.Messages = append(params.Messages, assistant,
				anthropic.NewUserMessage(anthropic.NewToolResultBlock(first.Content[2].ID, "rain", false)))
			_, err := client.Messages.New(t.Context(), params)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			status, body := apiStatus(t, err)
			if status != 400 || !strings.Contains(body, tc.want) || !strings.Contains(body, `"invalid_request_error"`) {
				t.Errorf("got %d %s, want 400 containing %q", status, body, tc.want)
			}
		})
	}
}

func TestAdaptiveModelRestrictions(t *testing.T) {
	temp := func(p *anthropic.MessageNewParams) { p.Temperature = anthropic.Float(0.2) }
	topK := func(p *anthropic.MessageNewParams) { p.TopK = anthropic.Int(5) }
	topP := func(p *anthropic.MessageNewParams) { p.TopP = anthropic.Float(0.5) }
	budget := func(p *anthropic.MessageNewParams) { p.Thinking = anthropic.ThinkingConfigParamOfEnabled(2048) }
	disabled := func(p *anthropic.MessageNewParams) {
		p.Thinking = anthropic.ThinkingConfigParamUnion{OfDisabled: &anthropic.ThinkingConfigDisabledParam{}}
	}
	prefill := func(p *anthropic.MessageNewParams) {
		p.Messages = append(p.Messages, anthropic.NewAssistantMessage(anthropic.NewTextBlock("Sure,")))
	}
	forceAny := func(p *anthropic.MessageNewParams) {
		p.Tools = []anthropic.ToolUnionParam{weatherTool}
		p.ToolChoice = anthropic.ToolChoiceUnionParam{OfAny: &anthropic.ToolChoiceAnyParam{}}
	}
	forceTool := func(p *anthropic.MessageNewParams) {
		p.Tools = []anthropic.ToolUnionParam{weatherTool}
		p.ToolChoice = anthropic.ToolChoiceParamOfTool("get_weather")
	}
	tooMany := func(p *anthropic.MessageNewParams) { p.MaxTokens = 128_001 }
	tests := []struct {
		name   string
		model  string
		edit   func(*anthropic.MessageNewParams)
		status int
		want   string
	}{
		{"temperature", "claude-sonnet-5-5", temp, 400, "temperature"},
		{"top_k", "claude-opus-5-5", topK, 400, "top_k"},
		{"top_p", "claude-haiku-5-5", topP, 400, "top_p"},
		{"budget thinking", "claude-sonnet-5-5", budget, 400, `\"thinking.type.enabled\" is not supported for this model`},
		{"disabled on sonnet", "claude-sonnet-5-5", disabled, 400, "between_tools"},
		{"disabled on opus", "claude-opus-5-5", disabled, 400, `\"thinking.type.disabled\" is not supported`},
		{"disabled on haiku", "claude-haiku-5-5", disabled, 200, ""},
		{"prefill", "claude-sonnet-5-5", prefill, 400, "does not support assistant message prefill"},
		{"forced any", "claude-sonnet-5-5", forceAny, 400, "forced tool use"},
		{"forced tool", "claude-opus-5-5", forceTool, 400, "forced tool use"},
		{"forced with thinking on haiku", "claude-haiku-5-5", forceTool, 400, "Thinking may not be enabled when tool_choice forces tool use."},
		{"max_tokens above limit", "claude-sonnet-5-5", tooMany, 400, "max_tokens: 128001 > 128000"},
		{"older: temperature", "claude-sonnet-4-5", temp, 200, ""},
		{"older: budget thinking", "claude-sonnet-4-5", budget, 200, ""},
		{"older: prefill", "claude-sonnet-4-5", prefill, 200, ""},
		{"older: forced tool", "claude-sonnet-4-5", forceTool, 200, ""},
		{"older: max_tokens above limit", "claude-sonnet-4-5", func(p *anthropic.MessageNewParams) { p.MaxTokens = 64_001 }, 400, "64001 > 64000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, client, _ := start(t, claudesim.Config{})
			p := anthropic.MessageNewParams{Model: tc.model, MaxTokens: 4096, Messages: userText("hi")}
			tc.edit(&p)
			var msg *anthropic.Message
			var err error
			if p.MaxTokens > 20_000 {
				// The SDK wants streaming for large max_tokens.
				stream := client.Messages.NewStreaming(t.Context(), p)
				for stream.Next() {
				}
				err = stream.Err()
			} else {
				msg, err = client.Messages.New(t.Context(), p)
			}
			if tc.status == 200 {
				if err != nil {
					t.Fatal(err)
				}
				if tc.name == "older: forced tool" && msg.StopReason != "tool_use" {
					t.Errorf("forced tool: stop_reason %q", msg.StopReason)
				}
				return
			}
			status, body := apiStatus(t, err)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %s, want %d containing %q", status, body, tc.status, tc.want)
			}
		})
	}
}

func TestUnknownModel(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{})
	_, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{Model: "claude-sonnet-9", MaxTokens: 10, Messages: userText("hi")})
	status, body := apiStatus(t, err)
	if status != 404 || !strings.Contains(body, `"type":"not_found_error","message":"model: claude-sonnet-9"`) {
		t.Errorf("got %d %s", status, body)
	}
}

// post sends a raw request and returns status, headers and body.
func post(t *testing.T, url, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/json")
	req.Header.Set("anthropic-version", "2023-06-01")
	req.Header.Set("x-api-key", "sk-test")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

func TestAuthentication(t *testing.T) {
	tests := []struct {
		name   string
		cfg    claudesim.Config
		header map[string]string
		status int
		want   string
	}{
		{"no key", claudesim.Config{}, map[string]string{"x-api-key": ""}, 401, "x-api-key header is required"},
		{"any key", claudesim.Config{}, nil, 200, ""},
		{"bearer", claudesim.Config{}, map[string]string{"x-api-key": "", "Authorization": "Bearer tok"}, 200, ""},
		{"wrong key", claudesim.Config{APIKey: "sk-right"}, nil, 401, "invalid x-api-key"},
		{"right key", claudesim.Config{APIKey: "sk-right"}, map[string]string{"x-api-key": "sk-right"}, 200, ""},
		{"no key allowed", claudesim.Config{AllowNoAPIKey: true}, map[string]string{"x-api-key": ""}, 200, ""},
		{"no version", claudesim.Config{}, map[string]string{"anthropic-version": ""}, 400, "anthropic-version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, url := start(t, tc.cfg)
			status, h, body := post(t, url+"/v1/messages", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, tc.header)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %s, want %d containing %q", status, body, tc.status, tc.want)
			}
			if status == 401 && !strings.Contains(body, `"type":"authentication_error"`) {
				t.Errorf("body %s", body)
			}
			if !strings.HasPrefix(h.Get("request-id"), "req_01") || h.Get("anthropic-ratelimit-requests-limit") == "" {
				t.Errorf("headers %v", h)
			}
		})
	}

	// The SDK sees a 401 as *anthropic.Error.
	_, client, _ := start(t, claudesim.Config{APIKey: "sk-other"})
	_, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 10, Messages: userText("hi")})
	if status, _ := apiStatus(t, err); status != 401 {
		t.Errorf("status %d, want 401", status)
	}
}

func TestValidation(t *testing.T) {
	msg := func(s string) string { return s }
	tests := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"bad json", `{"model":`, 400, "not valid JSON"},
		{"not an object", `[1,2]`, 400, "valid dictionary"},
		{"missing model", `{"max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, 400, "model: Field required"},
		{"missing max_tokens", `{"model":"claude-sonnet-5-5","messages":[{"role":"user","content":"hi"}]}`, 400, "max_tokens: Field required"},
		{"max_tokens not a number", `{"model":"claude-sonnet-5-5","max_tokens":"ten","messages":[{"role":"user","content":"hi"}]}`, 400, "max_tokens: Input should be a valid integer"},
		{"missing messages", `{"model":"claude-sonnet-5-5","max_tokens":10}`, 400, "messages: Field required"},
		{"empty messages", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[]}`, 400, "at least one message"},
		{"first not user", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"assistant","content":"hi"},{"role":"user","content":"yo"}]}`, 400, `first message must use the \"user\" role`},
		{"bad role", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"tool","content":"hi"}]}`, 400, "messages.0.role"},
		{"system first", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"system","content":"hi"}]}`, 400, "first message must use"},
		{"text before tool_result", `{"model":"claude-sonnet-4-5","max_tokens":10,"tools":[{"name":"t","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"x"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"t","input":{}}]},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"tool_result","tool_use_id":"toolu_1","content":"r"}]}]}`, 400, "must come first"},
		{"block_binding without beta", `{"model":"claude-sonnet-5-5","max_tokens":10,"thinking":{"type":"adaptive","block_binding":{"prefix_mismatch_behavior":"drop_block"}},"messages":[{"role":"user","content":"hi"}]}`, 400, "thinking-binding-controls-2026-08-01"},
		{"system message with tool_use", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"user","content":"hi"},{"role":"system","content":[{"type":"image","source":{}}]}]}`, 400, "only contain text"},
		{"empty content", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"user","content":""}]}`, 400, "non-empty content"},
		{"empty text block", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"text","text":""}]}]}`, 400, "text content blocks must be non-empty"},
		{"unknown block", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"video"}]}]}`, 400, "Input tag 'video'"},
		{"tool_result without tool_use", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_x","content":"r"}]}]}`, 400, "unexpected `tool_use_id` found in `tool_result` blocks: toolu_x"},
		{"tool_use without tool_result", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_y","name":"t","input":{}}]},{"role":"user","content":"b"}]}`, 400, "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_y"},
		{"thinking without signature", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"x"},{"type":"text","text":"b"}]},{"role":"user","content":"c"}]}`, 400, "signature: Field required"},
		{"forged thinking", `{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"user","content":"a"},{"role":"assistant","content":[{"type":"thinking","thinking":"x","signature":"c2lnbmVk"},{"type":"text","text":"b"}]},{"role":"user","content":"c"}]}`, 400, "Invalid `signature`"},
		{"five breakpoints", `{"model":"claude-sonnet-5-5","max_tokens":10,"cache_control":{"type":"ephemeral"},"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral"}},{"type":"text","text":"b","cache_control":{"type":"ephemeral"}},{"type":"text","text":"c","cache_control":{"type":"ephemeral"}},{"type":"text","text":"d","cache_control":{"type":"ephemeral","ttl":"1h"}}],"messages":[{"role":"user","content":"hi"}]}`, 400, "A maximum of 4 blocks with cache_control may be provided. Found 5."},
		{"bad ttl", `{"model":"claude-sonnet-5-5","max_tokens":10,"system":[{"type":"text","text":"a","cache_control":{"type":"ephemeral","ttl":"2h"}}],"messages":[{"role":"user","content":"hi"}]}`, 400, "ttl"},
		{"duplicate tools", `{"model":"claude-sonnet-5-5","max_tokens":10,"tools":[{"name":"a","input_schema":{"type":"object"}},{"name":"a","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":"hi"}]}`, 400, "Tool names must be unique"},
		{"tool without schema", `{"model":"claude-sonnet-5-5","max_tokens":10,"tools":[{"name":"a"}],"messages":[{"role":"user","content":"hi"}]}`, 400, "input_schema: Field required"},
		{"prompt too long", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"` + strings.Repeat("x", 800_004) + `"}]}`, 400, "prompt is too long: 200001 tokens > 200000 maximum"},
		{"unknown model", `{"model":"gpt-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, 404, "model: gpt-5"},
		{"consecutive user turns merge", `{"model":"claude-sonnet-5-5","max_tokens":100,"messages":[{"role":"user","content":"one"},{"role":"user","content":[{"type":"text","text":"two"}]}]}`, 200, msg(`echo: one\ntwo (messages: 2)`)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, url := start(t, claudesim.Config{})
			status, _, body := post(t, url+"/v1/messages", tc.body, nil)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Errorf("got %d %s, want %d containing %q", status, body, tc.status, tc.want)
			}
			if status >= 400 {
				var e struct {
					Type  string `json:"type"`
					Error struct {
						Type, Message string
					} `json:"error"`
					RequestID string `json:"request_id"`
				}
				if err := json.Unmarshal([]byte(body), &e); err != nil || e.Type != "error" || e.Error.Type == "" || !strings.HasPrefix(e.RequestID, "req_01") {
					t.Errorf("error body %s (%v)", body, err)
				}
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	_, client, url := start(t, claudesim.Config{})
	status, _, body := post(t, url+"/v1/nothing", `{}`, nil)
	if status != 404 || !strings.Contains(body, "not_found_error") {
		t.Errorf("unknown path: %d %s", status, body)
	}
	res, err := http.Get(url + "/v1/messages")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 405 {
		t.Errorf("GET /v1/messages: %d", res.StatusCode)
	}

	m, err := client.Models.Get(t.Context(), "claude-sonnet-5-5", anthropic.ModelGetParams{})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "claude-sonnet-5-5" || m.DisplayName != "Claude Sonnet 5.5" {
		t.Errorf("model %+v", m)
	}
	page, err := client.Models.List(t.Context(), anthropic.ModelListParams{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range page.Data {
		ids = append(ids, m.ID)
	}
	want := []string{"claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929"}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("models (-want +got):\n%s", diff)
	}
	_, err = client.Models.Get(t.Context(), "claude-nope", anthropic.ModelGetParams{})
	if status, _ := apiStatus(t, err); status != 404 {
		t.Errorf("unknown model: %d", status)
	}
}

func TestCountTokens(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{})
	params := anthropic.MessageNewParams{
		Model:     "claude-sonnet-5-5",
		MaxTokens: 1000,
		System:    []anthropic.TextBlockParam{{Text: "You are terse."}},
		Tools:     []anthropic.ToolUnionParam{weatherTool},
		Messages:  userText("How many tokens is this?"),
	}
	msg, err := client.Messages.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	count, err := client.Messages.CountTokens(t.Context(), anthropic.MessageCountTokensParams{
		Model:    params.Model,
		System:   anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: params.System},
		Tools:    []anthropic.MessageCountTokensToolUnionParam{{OfTool: weatherTool.OfTool}},
		Messages: params.Messages,
	})
	if err != nil {
		t.Fatal(err)
	}
	if count.InputTokens != msg.Usage.InputTokens || count.InputTokens < 10 {
		t.Errorf("count_tokens %d, usage.input_tokens %d", count.InputTokens, msg.Usage.InputTokens)
	}
}

func TestMaxTokensAndStopSequences(t *testing.T) {
	_, client, _ := start(t, claudesim.Config{})
	long := strings.Repeat("word ", 100)
	msg, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{
		Model: "claude-sonnet-4-5", MaxTokens: 10, Messages: userText(long),
	})
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != "max_tokens" || msg.Usage.OutputTokens != 10 || len(msg.Content[0].Text) != 40 {
		t.Errorf("stop %q, output_tokens %d, text %q", msg.StopReason, msg.Usage.OutputTokens, msg.Content[0].Text)
	}

	msg, err = client.Messages.New(t.Context(), anthropic.MessageNewParams{
		Model: "claude-sonnet-4-5", MaxTokens: 100, Messages: userText("alpha STOP beta"),
		StopSequences: []string{"STOP"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != "stop_sequence" || msg.StopSequence != "STOP" || msg.Content[0].Text != "echo: alpha " {
		t.Errorf("stop %q %q, text %q", msg.StopReason, msg.StopSequence, msg.Content[0].Text)
	}
}

func TestRateLimits(t *testing.T) {
	clock := newClock()
	_, client, _ := start(t, claudesim.Config{Now: clock.Now, InputTokensPerMinute: 100, RequestsPerMinute: 3})
	big := userText(strings.Repeat("x", 300)) // 75 tokens
	var raw *http.Response
	_, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 100, Messages: big}, option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get("anthropic-ratelimit-input-tokens-remaining"); got != "25" {
		t.Errorf("input tokens remaining %q, want 25", got)
	}
	if got := raw.Header.Get("anthropic-ratelimit-requests-remaining"); got != "2" {
		t.Errorf("requests remaining %q, want 2", got)
	}
	if got := raw.Header.Get("anthropic-ratelimit-input-tokens-reset"); got != "2026-11-24T12:00:45Z" {
		t.Errorf("input tokens reset %q", got)
	}

	_, err = client.Messages.New(t.Context(), anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 100, Messages: big}, option.WithResponseInto(&raw))
	if status, body := apiStatus(t, err); status != 429 || !strings.Contains(body, "rate_limit_error") {
		t.Fatalf("got %d %s", status, body)
	}
	// 50 more tokens take 30s at 100 a minute.
	if got := raw.Header.Get("retry-after"); got != "30" {
		t.Errorf("retry-after %q, want 30", got)
	}

	clock.Advance(30 * time.Second)
	if _, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 100, Messages: big}); err != nil {
		t.Fatalf("after waiting: %v", err)
	}

	// The requests limit: 2 a minute, so the third waits 30s for one.
	_, client, _ = start(t, claudesim.Config{Now: clock.Now, RequestsPerMinute: 2})
	small := anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 100, Messages: userText("hi")}
	for range 2 {
		if _, err := client.Messages.New(t.Context(), small); err != nil {
			t.Fatal(err)
		}
	}
	_, err = client.Messages.New(t.Context(), small, option.WithResponseInto(&raw))
	if status, _ := apiStatus(t, err); status != 429 || raw.Header.Get("retry-after") != "30" || raw.Header.Get("anthropic-ratelimit-requests-remaining") != "0" {
		t.Errorf("requests limit: %d, headers %v", status, raw.Header)
	}
}

func TestInjectedErrors(t *testing.T) {
	tests := []struct {
		cfg    claudesim.Config
		status int
		typ    string
	}{
		{claudesim.Config{Rate429: 1, InjectedRetryAfter: 3 * time.Second}, 429, "rate_limit_error"},
		{claudesim.Config{Rate529: 1}, 529, "overloaded_error"},
		{claudesim.Config{Rate500: 1}, 500, "api_error"},
	}
	for _, tc := range tests {
		t.Run(tc.typ, func(t *testing.T) {
			sim, client, _ := start(t, tc.cfg)
			var raw *http.Response
			_, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 10, Messages: userText("hi")}, option.WithResponseInto(&raw))
			status, body := apiStatus(t, err)
			if status != tc.status || !strings.Contains(body, tc.typ) {
				t.Errorf("got %d %s", status, body)
			}
			if tc.status == 429 && raw.Header.Get("retry-after") != "3" {
				t.Errorf("retry-after %q", raw.Header.Get("retry-after"))
			}
			if st := sim.Stats(); st.ByStatus[tc.status] != 1 || st.Messages != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}

	// A seeded mix is reproducible.
	run := func() []int {
		sim := claudesim.New(claudesim.Config{Rate429: 0.2, Rate529: 0.2, Rate500: 0.1, Seed: 7})
		var out []int
		for range 40 {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(`{"model":"claude-sonnet-5-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("x-api-key", "k")
			req.Header.Set("anthropic-version", "2023-06-01")
			sim.ServeHTTP(rec, req)
			out = append(out, rec.Code)
		}
		return out
	}
	a, b := run(), run()
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("same seed, different faults:\n%s", diff)
	}
	ok := 0
	for _, c := range a {
		if c == 200 {
			ok++
		}
	}
	if ok == 0 || ok == len(a) {
		t.Errorf("%d of %d succeeded", ok, len(a))
	}
}

// cachedSystem is a system prompt of n tokens with a breakpoint.
func cachedSystem(n int, ttl string) []anthropic.TextBlockParam {
	cc := anthropic.NewCacheControlEphemeralParam()
	if ttl != "" {
		cc.TTL = anthropic.CacheControlEphemeralTTL(ttl)
	}
	return []anthropic.TextBlockParam{{Text: strings.Repeat("abcd", n), CacheControl: cc}}
}

func TestPromptCaching(t *testing.T) {
	type step struct {
		advance      time.Duration
		system       []anthropic.TextBlockParam
		model        string
		read, create int
		create1h     int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"turn 2 reads what turn 1 wrote", []step{
			{system: cachedSystem(600, ""), create: 600},
			{advance: time.Minute, system: cachedSystem(600, ""), read: 600},
		}},
		{"5m entry expires", []step{
			{system: cachedSystem(600, ""), create: 600},
			{advance: 5*time.Minute + time.Second, system: cachedSystem(600, ""), create: 600},
		}},
		{"reading refreshes the TTL", []step{
			{system: cachedSystem(600, ""), create: 600},
			{advance: 4 * time.Minute, system: cachedSystem(600, ""), read: 600},
			{advance: 4 * time.Minute, system: cachedSystem(600, ""), read: 600},
		}},
		{"1h entry outlives 5m", []step{
			{system: cachedSystem(600, "1h"), create: 600, create1h: 600},
			{advance: 30 * time.Minute, system: cachedSystem(600, "1h"), read: 600},
			{advance: 61 * time.Minute, system: cachedSystem(600, "1h"), create: 600, create1h: 600},
		}},
		{"below the minimum is not cached", []step{
			{system: cachedSystem(500, "")},
			{system: cachedSystem(500, "")},
		}},
		{"minimum depends on the model", []step{
			{model: "claude-sonnet-4-5", system: cachedSystem(600, "")},
			{model: "claude-sonnet-4-5", system: cachedSystem(1100, ""), create: 1100},
		}},
		{"different prefix misses", []step{
			{system: cachedSystem(600, ""), create: 600},
			{system: cachedSystem(601, ""), create: 601},
		}},
		{"caches are per model", []step{
			{system: cachedSystem(600, ""), create: 600},
			{model: "claude-opus-5-5", system: cachedSystem(600, ""), create: 600},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newClock()
			_, client, _ := start(t, claudesim.Config{Now: clock.Now})
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				model := s.model
				if model == "" {
					model = "claude-sonnet-5-5"
				}
				msg, err := client.Messages.New(t.Context(), anthropic.MessageNewParams{
					Model: model, MaxTokens: 100, System: s.system, Messages: userText("question"),
				})
				if err != nil {
					t.Fatal(err)
				}
				u := msg.Usage
				total := len(s.system[0].Text)/4 + 2
				got := []int64{u.CacheReadInputTokens, u.CacheCreationInputTokens, u.CacheCreation.Ephemeral1hInputTokens, u.InputTokens}
				want := []int64{int64(s.read), int64(s.create), int64(s.create1h), int64(total - s.read - s.create)}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("step %d usage [read create create1h input] (-want +got):\n%s", i, diff)
				}
				if u.CacheCreation.Ephemeral5mInputTokens+u.CacheCreation.Ephemeral1hInputTokens != u.CacheCreationInputTokens {
					t.Errorf("step %d: cache_creation %+v does not add up to %d", i, u.CacheCreation, u.CacheCreationInputTokens)
				}
			}
		})
	}
}

// TestPromptCachingConversation caches a growing conversation with
// automatic caching: each turn reads the prefix the turn before wrote.
func TestPromptCachingConversation(t *testing.T) {
	clock := newClock()
	_, client, _ := start(t, claudesim.Config{Now: clock.Now})
	params := anthropic.MessageNewParams{
		Model:        "claude-sonnet-5-5",
		MaxTokens:    1000,
		CacheControl: anthropic.NewCacheControlEphemeralParam(),
		System:       []anthropic.TextBlockParam{{Text: strings.Repeat("rules ", 400)}}, // 600 tokens
		Messages:     userText("first"),
	}
	var prev anthropic.Usage
	for turn := range 4 {
		msg, err := client.Messages.New(t.Context(), params)
		if err != nil {
			t.Fatal(err)
		}
		u := msg.Usage
		total := u.InputTokens + u.CacheReadInputTokens + u.CacheCreationInputTokens
		if turn == 0 {
			if u.CacheReadInputTokens != 0 || u.CacheCreationInputTokens != total {
				t.Errorf("turn 0 usage %+v", u)
			}
		} else {
			prevTotal := prev.InputTokens + prev.CacheReadInputTokens + prev.CacheCreationInputTokens
			if u.CacheReadInputTokens != prevTotal || u.CacheCreationInputTokens != total-prevTotal || u.InputTokens != 0 {
				t.Errorf("turn %d usage %+v, previous total %d", turn, u, prevTotal)
			}
		}
		prev = u
		params.Messages = append(params.Messages, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewTextBlock("next")))
		clock.Advance(time.Minute)
	}
}

func TestLatencyHonoursCancellation(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		sim, client, _ := start(t, claudesim.Config{Latency: time.Minute})
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		begin := time.Now()
		params := anthropic.MessageNewParams{Model: "claude-sonnet-5-5", MaxTokens: 10, Messages: userText("slow")}
		var err error
		if streaming {
			stream := client.Messages.NewStreaming(ctx, params)
			for stream.Next() {
			}
			err = stream.Err()
		} else {
			_, err = client.Messages.New(ctx, params)
		}
		cancel()
		if err == nil || time.Since(begin) > 10*time.Second {
			t.Errorf("stream=%v: err %v after %v", streaming, err, time.Since(begin))
		}
		// The handler gives up too, and records the request as abandoned.
		deadline := time.Now().Add(10 * time.Second)
		for len(sim.Requests()) == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if reqs := sim.Requests(); len(reqs) != 1 || reqs[0].Status != 499 {
			t.Errorf("stream=%v: recorded %+v", streaming, reqs)
		}
	}
}

// timedWriter notes the (bubble) time of each write.
type timedWriter struct {
	*httptest.ResponseRecorder
	at []time.Duration
	t0 time.Time
}

func (w *timedWriter) Write(b []byte) (int, error) {
	w.at = append(w.at, time.Since(w.t0))
	return w.ResponseRecorder.Write(b)
}

func TestLatencyIsApplied(t *testing.T) {
	for _, streaming := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			sim := claudesim.New(claudesim.Config{Latency: time.Minute, LatencyJitter: time.Second})
			body := fmt.Sprintf(`{"model":"claude-sonnet-5-5","max_tokens":100,"stream":%v,"messages":[{"role":"user","content":"wait for it"}]}`, streaming)
			req := httptest.NewRequest("POST", "/v1/messages", strings.NewReader(body))
			req.Header.Set("x-api-key", "k")
			req.Header.Set("anthropic-version", "2023-06-01")
			w := &timedWriter{ResponseRecorder: httptest.NewRecorder(), t0: time.Now()}
			sim.ServeHTTP(w, req)
			if w.Code != 200 || len(w.at) == 0 {
				t.Fatalf("status %d, %d writes", w.Code, len(w.at))
			}
			first, last := w.at[0], w.at[len(w.at)-1]
			if last < time.Minute || last >= time.Minute+time.Second {
				t.Errorf("stream=%v: answered after %v, want [1m, 1m1s)", streaming, last)
			}
			if streaming && (len(w.at) < 10 || first > last/5) {
				t.Errorf("latency not spread over the stream: writes at %v", w.at)
			}
		})
	}
}

func TestLatencyCancelledInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sim := claudesim.New(claudesim.Config{Latency: time.Hour})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, "POST", "/v1/messages", strings.NewReader(`{"model":"claude-sonnet-5-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("x-api-key", "k")
		req.Header.Set("anthropic-version", "2023-06-01")
		t0 := time.Now()
		sim.ServeHTTP(httptest.NewRecorder(), req)
		if d := time.Since(t0); d != 10*time.Second {
			t.Errorf("handler returned after %v, want 10s", d)
		}
		if reqs := sim.Requests(); len(reqs) != 1 || reqs[0].Status != 499 {
			t.Errorf("recorded %+v", reqs)
		}
	})
}

func TestRecordStatsAndReset(t *testing.T) {
	clock := newClock()
	sim, client, url := start(t, claudesim.Config{Now: clock.Now, MaxRecorded: 5})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
				Model: "claude-sonnet-5-5", MaxTokens: 100, Messages: userText(strings.Repeat("z", 4*(i+1))),
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	clock.Advance(time.Minute)
	post(t, url+"/v1/messages", `{"model":"claude-sonnet-5-5"}`, nil)

	reqs := sim.Requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests recorded, want 5", len(reqs))
	}
	last := reqs[4]
	if last.Status != 400 || last.Path != "/v1/messages" || last.Header.Get("X-Api-Key") != "REDACTED" || !bytes.Equal(last.Body, []byte(`{"model":"claude-sonnet-5-5"}`)) {
		t.Errorf("last record %+v", last)
	}
	st := sim.Stats()
	if st.Requests != 9 || st.Messages != 8 || st.ByStatus[200] != 8 || st.ByStatus[400] != 1 {
		t.Errorf("stats %+v", st)
	}
	if st.InputTokens != 1+2+3+4+5+6+7+8 {
		t.Errorf("input tokens %d", st.InputTokens)
	}
	if len(st.Minutes) != 2 || st.Minutes[0].Messages != 8 || st.Minutes[1].Requests != 1 || st.Minutes[1].Messages != 0 {
		t.Errorf("minutes %+v", st.Minutes)
	}
	sim.Reset()
	if len(sim.Requests()) != 0 || sim.Stats().Requests != 0 {
		t.Error("Reset kept something")
	}
}

func TestSignaturesSurviveRestart(t *testing.T) {
	// A second Server (a restarted process) accepts the first one's
	// thinking blocks; one with another key does not.
	_, client1, _ := start(t, claudesim.Config{})
	params, first := toolLoop(t, client1, "")
	params.Messages = append(params.Messages, first.ToParam(),
		anthropic.NewUserMessage(anthropic.NewToolResultBlock(first.Content[2].ID, "rain", false)))

	_, client2, _ := start(t, claudesim.Config{})
	if _, err := client2.Messages.New(t.Context(), params); err != nil {
		t.Fatal(err)
	}
	_, client3, _ := start(t, claudesim.Config{SigningKey: []byte("other")})
	_, err := client3.Messages.New(t.Context(), params)
	if status, _ := apiStatus(t, err); status != 400 {
		t.Errorf("other key: status %d", status)
	}
}

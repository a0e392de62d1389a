package claudesim

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Thinking modes a request resolves to.
const (
	thinkNone         = ""
	thinkAdaptive     = "adaptive"
	thinkEnabled      = "enabled"
	thinkBetweenTools = "between_tools"
)

// maxBreakpoints is the documented limit of cache_control blocks a request.
const maxBreakpoints = 4

// A request is a parsed and validated POST /v1/messages (or count_tokens)
// body.
type request struct {
	model         Model
	maxTokens     int
	stream        bool
	system        []*block
	tools         []*tool
	toolChoice    wireToolChoice
	thinking      string // one of the think* modes
	display       string // "summarized" or "omitted"
	stopSequences []string
	messages      []message // as sent
	turns         []turn    // consecutive same-role messages merged; system messages left out
	autoCache     *cacheControl
	// dropMismatched is thinking.block_binding.prefix_mismatch_behavior
	// "drop_block": a thinking block bound to another prefix is dropped
	// (and reported in transformations) instead of failing the request.
	dropMismatched  bool
	transformations []inputTransformation
	// replyPrefix is the binding MAC of the whole request: the prefix of
	// the reply's first block.
	replyPrefix []byte

	// Context management (see context.go). contextManagement reports
	// that the request had the field, so the reply carries its own.
	contextManagement bool
	edits             []edit
	applied           []appliedEdit
	// minCompact is the smallest compaction trigger taken.
	minCompact int
	// originalTokens is the prompt's size before the edits.
	originalTokens int
	// compactMsg and compactBlk locate the last compaction block sent
	// back (-1 for none); once dropBeforeCompaction has run, messages
	// starts with it and msgBase is the index it had.
	compactMsg, compactBlk, msgBase int
}

// An inputTransformation is one entry of a reply's input_transformations:
// a block the API changed or dropped before the model saw the request.
type inputTransformation struct {
	Type   string `json:"type"`
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Beta headers (anthropic-beta) the simulator knows.
const (
	// betaBlockBinding enables thinking.block_binding, as the docs on
	// preserved thinking name it.
	betaBlockBinding = "thinking-binding-controls-2026-08-01"
)

// A message is one element of the request's messages array.
type message struct {
	role   string
	blocks []*block
}

// A turn is a run of consecutive same-role messages, which the API
// combines into one turn. first is the index of its first message.
type turn struct {
	role   string
	first  int
	blocks []*block
	msgIdx []int // original message index of each block
	blkIdx []int // original content index of each block
}

// A block is one content block (or system text block), decoded only as
// far as the simulator needs.
type block struct {
	typ       string
	text      string // text blocks; tool_result content flattened to text
	id        string // tool_use
	name      string // tool_use
	input     []byte // tool_use, compacted JSON object
	toolUseID string // tool_result
	isError   bool   // tool_result
	thinking  string // thinking
	signature string // thinking
	dropped   bool   // thinking: bound to another prefix, dropped (drop_block)
	encrypted string // compaction: encrypted_content
	failed    bool   // compaction: null content, a no-op
	cleared   bool   // thinking or tool use cleared by context editing
	raw       []byte // other block types, as sent
	cc        *cacheControl
	tokens    int
}

// A tool is one element of the tools array.
type tool struct {
	name   string
	custom bool
	canon  []byte // the definition without cache_control, keys sorted
	cc     *cacheControl
	tokens int
}

type cacheControl struct {
	Type string `json:"type"`
	TTL  string `json:"ttl,omitempty"`
}

type wireRequest struct {
	Model         *string           `json:"model"`
	MaxTokens     *int              `json:"max_tokens"`
	Messages      *[]wireMessage    `json:"messages"`
	System        json.RawMessage   `json:"system"`
	Tools         []json.RawMessage `json:"tools"`
	ToolChoice    *wireToolChoice   `json:"tool_choice"`
	Thinking      *wireThinking     `json:"thinking"`
	OutputConfig  *wireOutputConfig `json:"output_config"`
	Stream        bool              `json:"stream"`
	StopSequences []string          `json:"stop_sequences"`
	Temperature   *float64          `json:"temperature"`
	TopP          *float64          `json:"top_p"`
	TopK          *int              `json:"top_k"`
	CacheControl  *cacheControl     `json:"cache_control"`

	ContextManagement json.RawMessage `json:"context_management"`
}

type wireMessage struct {
	Role    string     `json:"role"`
	Content rawContent `json:"content"`
}

// rawContent keeps a message's content as it appears in the body, without
// the copy json.RawMessage makes: the body outlives the request.
type rawContent []byte

func (c *rawContent) UnmarshalJSON(b []byte) error {
	*c = b
	return nil
}

type wireThinking struct {
	Type         string            `json:"type"`
	BudgetTokens *int              `json:"budget_tokens"`
	Display      string            `json:"display"`
	BlockBinding *wireBlockBinding `json:"block_binding"`
}

type wireBlockBinding struct {
	PrefixMismatchBehavior string `json:"prefix_mismatch_behavior"`
}

type wireOutputConfig struct {
	Effort string `json:"effort"`
}

type wireToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

type wireBlock struct {
	Type         string          `json:"type"`
	Text         *string         `json:"text"`
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Input        json.RawMessage `json:"input"`
	ToolUseID    string          `json:"tool_use_id"`
	Content      json.RawMessage `json:"content"`
	IsError      bool            `json:"is_error"`
	Thinking     *string         `json:"thinking"`
	Signature    *string         `json:"signature"`
	CacheControl *cacheControl   `json:"cache_control"`

	EncryptedContent *string `json:"encrypted_content"`
}

// opaqueBlocks are block types the simulator accepts and counts but does
// not interpret.
var opaqueBlocks = []string{
	"image", "document", "search_result", "redacted_thinking",
	"server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
	"code_execution_tool_result", "container_upload",
}

// validToolName reports whether name matches the API's tool-name pattern,
// ^[a-zA-Z0-9_-]{1,128}$. A loop, not a package-level regexp: the
// simulator is linked into the Lambda binary, and compiling that regexp
// cost every cold start about 4 ms.
func validToolName(name string) bool {
	if len(name) == 0 || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// tokensFor is the simulator's token estimate: about four bytes a token.
func tokensFor(n int) int { return (n + 3) / 4 }

// parseRequest decodes and validates body. countOnly is set for
// /v1/messages/count_tokens, where max_tokens is not required. model looks
// up a model by name; key verifies thinking signatures; betas are the
// request's anthropic-beta values; minCompact the smallest compaction
// trigger taken. The error is always an *apiError.
func parseRequest(body []byte, countOnly bool, model func(string) (Model, bool), key []byte, betas []string, minCompact int) (*request, *apiError) {
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, jsonError(err)
	}
	if w.Model == nil || *w.Model == "" {
		return nil, invalid("model: Field required")
	}
	if !countOnly && w.MaxTokens == nil {
		return nil, invalid("max_tokens: Field required")
	}
	if w.Messages == nil {
		return nil, invalid("messages: Field required")
	}
	m, ok := model(*w.Model)
	if !ok {
		return nil, &apiError{status: 404, typ: "not_found_error", msg: "model: " + *w.Model}
	}
	r := &request{model: m, stream: w.Stream, stopSequences: w.StopSequences, minCompact: minCompact}
	if !countOnly {
		r.maxTokens = *w.MaxTokens
		if r.maxTokens < 1 {
			return nil, invalid("max_tokens: Input should be greater than or equal to 1")
		}
		if r.maxTokens > m.MaxOutput {
			return nil, invalid("max_tokens: %d > %d, which is the maximum allowed number of output tokens for %s", r.maxTokens, m.MaxOutput, m.ID)
		}
	}
	if err := r.parseSampling(&w); err != nil {
		return nil, err
	}
	if err := r.parseThinking(&w, countOnly); err != nil {
		return nil, err
	}
	if err := r.parseBlockBinding(&w, betas); err != nil {
		return nil, err
	}
	if err := r.parseSystem(w.System); err != nil {
		return nil, err
	}
	if err := r.parseTools(w.Tools); err != nil {
		return nil, err
	}
	if err := r.parseToolChoice(w.ToolChoice); err != nil {
		return nil, err
	}
	if w.CacheControl != nil {
		if err := checkCacheControl("cache_control", w.CacheControl); err != nil {
			return nil, err
		}
		r.autoCache = w.CacheControl
	}
	if err := r.parseContextManagement(w.ContextManagement, betas); err != nil {
		return nil, err
	}
	if err := r.parseMessages(*w.Messages); err != nil {
		return nil, err
	}
	if err := r.checkCompactions(key, betas); err != nil {
		return nil, err
	}
	if err := r.checkBreakpoints(); err != nil {
		return nil, err
	}
	if err := r.checkHistory(); err != nil {
		return nil, err
	}
	// The API reads nothing before the last compaction block: from here
	// on the request is what follows it.
	r.dropBeforeCompaction()
	if err := r.checkBinding(key); err != nil {
		return nil, err
	}
	r.originalTokens = r.inputTokens()
	r.applyEdits()
	return r, nil
}

// parseBlockBinding reads thinking.block_binding, a beta field: without
// its anthropic-beta header the API rejects it.
func (r *request) parseBlockBinding(w *wireRequest, betas []string) *apiError {
	if w.Thinking == nil || w.Thinking.BlockBinding == nil {
		return nil
	}
	if !hasBeta(betas, betaBlockBinding) {
		return invalid("thinking.block_binding: Extra inputs are not permitted. This field requires the beta header `anthropic-beta: %s`.", betaBlockBinding)
	}
	switch w.Thinking.BlockBinding.PrefixMismatchBehavior {
	case "", "error":
	case "drop_block":
		r.dropMismatched = true
	default:
		return invalid("thinking.block_binding.prefix_mismatch_behavior: Input should be 'error' or 'drop_block'")
	}
	return nil
}

// hasBeta reports whether the anthropic-beta values (each possibly a
// comma-separated list) name beta.
func hasBeta(betas []string, beta string) bool {
	for _, v := range betas {
		for _, b := range strings.Split(v, ",") {
			if strings.TrimSpace(b) == beta {
				return true
			}
		}
	}
	return false
}

// checkBinding verifies every thinking block's signature and, on models
// that bind thinking to its conversation, that the block's prefix (the
// system prompt, the tools and every block before it, see [binder]) is
// the one it was made after. A changed prefix gets the documented 400,
// or with drop_block drops the block and reports it in
// input_transformations. A verified block's input tokens are its full
// reasoning, which the model reads even when the display was omitted.
func (r *request) checkBinding(key []byte) *apiError {
	b := newBinder(key)
	b.head(r.system, r.tools)
	for i, m := range r.messages {
		for j, bl := range m.blocks {
			if bl.typ == "thinking" {
				raw, prefix, ok := verify(key, bl.thinking, bl.signature)
				if !ok {
					return invalid("messages.%d.content.%d: Invalid `signature` in `thinking` block", r.msgBase+i, j)
				}
				bl.tokens = tokensFor(len(raw))
				if r.model.BindsThinking && !hmac.Equal(prefix, b.sum()) {
					if !r.dropMismatched {
						return invalid("messages.%d.content.%d: Invalid `signature` in `thinking` block. The block is bound to a different conversation. Remove the block, or set `thinking.block_binding.prefix_mismatch_behavior` to \"drop_block\".", r.msgBase+i, j)
					}
					bl.dropped, bl.tokens = true, 0
					r.transformations = append(r.transformations, inputTransformation{
						Type: "thinking_dropped", Path: fmt.Sprintf("messages.%d.content.%d", r.msgBase+i, j), Reason: "prefix_mismatch",
					})
				}
			}
			b.block(m.role, bl)
		}
	}
	r.replyPrefix = b.sum()
	return nil
}

// jsonError turns a decoding error into the 400 the API sends.
func jsonError(err error) *apiError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return invalid("%s: Input should be a valid %s", te.Field, jsonKind(te.Type.Kind().String()))
	}
	if errors.As(err, &te) {
		return invalid("Input should be a valid dictionary")
	}
	return invalid("There was an issue with the format of your request: the body is not valid JSON")
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "integer"
	case strings.HasPrefix(goKind, "float"):
		return "number"
	case goKind == "slice":
		return "list"
	case goKind == "struct", goKind == "map", goKind == "ptr":
		return "dictionary"
	case goKind == "bool":
		return "boolean"
	}
	return goKind
}

func (r *request) parseSampling(w *wireRequest) *apiError {
	if !r.model.Adaptive {
		if w.Temperature != nil && (*w.Temperature < 0 || *w.Temperature > 1) {
			return invalid("temperature: Input should be less than or equal to 1")
		}
		return nil
	}
	// Adaptive models take only the default sampling parameters.
	var name string
	switch {
	case w.Temperature != nil && *w.Temperature != 1:
		name = "temperature"
	case w.TopP != nil && *w.TopP != 1:
		name = "top_p"
	case w.TopK != nil:
		name = "top_k"
	default:
		return nil
	}
	return invalid("%s: non-default sampling parameters are not supported for this model. Remove temperature, top_p and top_k, and use output_config.effort to steer the response.", name)
}

func (r *request) parseThinking(w *wireRequest, countOnly bool) *apiError {
	m := r.model
	effort := ""
	if w.OutputConfig != nil {
		effort = w.OutputConfig.Effort
		if effort != "" && !slices.Contains([]string{"low", "medium", "high", "xhigh", "max"}, effort) {
			return invalid("output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'")
		}
	}
	r.display = m.DefaultDisplay
	t := w.Thinking
	if t == nil {
		if m.Adaptive {
			r.thinking = thinkAdaptive
		}
		return nil
	}
	switch t.Display {
	case "":
	case "summarized", "omitted":
		r.display = t.Display
	default:
		return invalid("thinking.display: Input should be 'summarized' or 'omitted'")
	}
	adaptiveHint := `Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.`
	switch t.Type {
	case "adaptive":
		if !m.Adaptive {
			return invalid(`"thinking.type.adaptive" is not supported for this model. Use "thinking.type.enabled" with "thinking.budget_tokens".`)
		}
		r.thinking = thinkAdaptive
	case "enabled":
		if m.Adaptive {
			return invalid(`"thinking.type.enabled" is not supported for this model. %s`, adaptiveHint)
		}
		if t.BudgetTokens == nil {
			return invalid("thinking.enabled.budget_tokens: Field required")
		}
		if *t.BudgetTokens < 1024 {
			return invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
		}
		if !countOnly && *t.BudgetTokens >= r.maxTokens {
			return invalid("`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size")
		}
		r.thinking = thinkEnabled
	case "disabled":
		if m.Adaptive && !m.AcceptsDisabled {
			if m.AcceptsBetweenTools {
				return invalid(`"thinking.type.disabled" is not supported for this model. Use "thinking.type.between_tools" to turn off up-front thinking.`)
			}
			return invalid(`"thinking.type.disabled" is not supported for this model. %s`, adaptiveHint)
		}
		if m.Adaptive && (effort == "xhigh" || effort == "max") {
			return invalid(`"thinking.type.disabled" is not supported with "output_config.effort" %q. %s`, effort, adaptiveHint)
		}
		r.thinking = thinkNone
	case "between_tools":
		if !m.AcceptsBetweenTools {
			return invalid(`"thinking.type.between_tools" is not supported for this model. %s`, adaptiveHint)
		}
		if effort == "xhigh" || effort == "max" {
			return invalid(`"thinking.type.between_tools" is not supported with "output_config.effort" %q. Omit thinking or send "thinking.type.adaptive" to run at this effort.`, effort)
		}
		r.thinking = thinkBetweenTools
	case "":
		return invalid("thinking.type: Field required")
	default:
		return invalid("thinking: Input tag '%s' found using 'type' does not match any of the expected tags: 'adaptive', 'between_tools', 'disabled', 'enabled'", t.Type)
	}
	return nil
}

func (r *request) parseSystem(raw json.RawMessage) *apiError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return invalid("system: Input should be a valid string")
		}
		if s != "" {
			r.system = []*block{{typ: "text", text: s, tokens: tokensFor(len(s))}}
		}
		return nil
	}
	var ws []wireBlock
	if err := json.Unmarshal(raw, &ws); err != nil {
		return invalid("system: Input should be a valid list")
	}
	for i, wb := range ws {
		if wb.Type != "text" {
			return invalid("system.%d.type: Input should be 'text'", i)
		}
		if wb.Text == nil {
			return invalid("system.%d.text: Field required", i)
		}
		if *wb.Text == "" {
			return invalid("system: text content blocks must be non-empty")
		}
		if wb.CacheControl != nil {
			if err := checkCacheControl(fmt.Sprintf("system.%d.cache_control", i), wb.CacheControl); err != nil {
				return err
			}
		}
		r.system = append(r.system, &block{typ: "text", text: *wb.Text, cc: wb.CacheControl, tokens: tokensFor(len(*wb.Text))})
	}
	return nil
}

func (r *request) parseTools(raws []json.RawMessage) *apiError {
	seen := map[string]bool{}
	for i, raw := range raws {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
			return invalid("tools.%d: Input should be a valid dictionary", i)
		}
		t := &tool{}
		var typ string
		if v, ok := fields["type"]; ok && string(v) != "null" {
			if err := json.Unmarshal(v, &typ); err != nil {
				return invalid("tools.%d.type: Input should be a valid string", i)
			}
		}
		t.custom = typ == "" || typ == "custom"
		if err := json.Unmarshal(fields["name"], &t.name); err != nil || t.name == "" {
			return invalid("tools.%d.name: Field required", i)
		}
		if t.custom {
			if !validToolName(t.name) {
				return invalid("tools.%d.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'", i)
			}
			schema := bytes.TrimSpace(fields["input_schema"])
			if len(schema) == 0 || schema[0] != '{' {
				return invalid("tools.%d.custom.input_schema: Field required", i)
			}
		}
		if seen[t.name] {
			return invalid("tools: Tool names must be unique.")
		}
		seen[t.name] = true
		if v, ok := fields["cache_control"]; ok && string(v) != "null" {
			t.cc = new(cacheControl)
			if err := json.Unmarshal(v, t.cc); err != nil {
				return invalid("tools.%d.cache_control: Input should be a valid dictionary", i)
			}
			if err := checkCacheControl(fmt.Sprintf("tools.%d.cache_control", i), t.cc); err != nil {
				return err
			}
		}
		delete(fields, "cache_control")
		t.canon, _ = json.Marshal(fields) // map keys come out sorted
		t.tokens = tokensFor(len(t.canon))
		r.tools = append(r.tools, t)
	}
	return nil
}

func (r *request) parseToolChoice(tc *wireToolChoice) *apiError {
	if tc == nil {
		r.toolChoice = wireToolChoice{Type: "auto"}
		return nil
	}
	r.toolChoice = *tc
	switch tc.Type {
	case "auto", "none":
		return nil
	case "any", "tool":
	default:
		return invalid("tool_choice: Input tag '%s' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'", tc.Type)
	}
	if r.model.Adaptive && !r.model.AcceptsDisabled {
		return invalid(`tool_choice: forced tool use ("any" or "tool") is not supported for this model. Use "auto" or "none", and say in the prompt which tool to call.`)
	}
	if r.thinking != thinkNone {
		return invalid("Thinking may not be enabled when tool_choice forces tool use.")
	}
	if tc.Type == "tool" {
		if tc.Name == "" {
			return invalid("tool_choice.tool.name: Field required")
		}
		if !slices.ContainsFunc(r.tools, func(t *tool) bool { return t.name == tc.Name }) {
			return invalid("tool_choice.tool.name: Tool '%s' not found in tools", tc.Name)
		}
	}
	if len(r.tools) == 0 {
		return invalid("tool_choice: tool_choice may only be specified while providing tools.")
	}
	return nil
}

func checkCacheControl(path string, cc *cacheControl) *apiError {
	if cc.Type != "ephemeral" {
		return invalid("%s.type: Input should be 'ephemeral'", path)
	}
	if cc.TTL != "" && cc.TTL != "5m" && cc.TTL != "1h" {
		return invalid("%s.ttl: Input should be '5m' or '1h'", path)
	}
	return nil
}

func (r *request) parseMessages(ws []wireMessage) *apiError {
	if len(ws) == 0 {
		return invalid("messages: at least one message is required")
	}
	r.messages = make([]message, len(ws))
	for i, wm := range ws {
		if wm.Role != "user" && wm.Role != "assistant" && wm.Role != "system" {
			return invalid("messages.%d.role: Input should be 'user', 'assistant' or 'system'", i)
		}
		blocks, err := parseContent(i, wm.Role, wm.Content)
		if err != nil {
			return err
		}
		if wm.Role == "system" {
			for j, b := range blocks {
				if b.typ != "text" {
					return invalid("messages.%d.content.%d: system messages may only contain text blocks", i, j)
				}
			}
		}
		if len(blocks) == 0 && !(wm.Role == "assistant" && i == len(ws)-1) {
			return invalid("messages.%d: all messages must have non-empty content except for the optional final assistant message", i)
		}
		r.messages[i] = message{role: wm.Role, blocks: blocks}
	}
	if r.messages[0].role != "user" {
		return invalid(`messages: first message must use the "user" role`)
	}
	r.turns = mergeTurns(r.messages)
	if last := r.turns[len(r.turns)-1]; last.role == "assistant" && r.model.Adaptive && !r.continuesPause() {
		return invalid("This model does not support assistant message prefill. The conversation must end with a user message.")
	}
	return nil
}

// mergeTurns combines consecutive same-role messages into turns. A
// system message is an instruction between turns, not a turn: it neither
// starts one nor separates two.
func mergeTurns(msgs []message) []turn {
	var turns []turn
	for i, m := range msgs {
		if m.role == "system" {
			continue
		}
		if n := len(turns); n == 0 || turns[n-1].role != m.role {
			turns = append(turns, turn{role: m.role, first: i})
		}
		t := &turns[len(turns)-1]
		for j, b := range m.blocks {
			t.blocks = append(t.blocks, b)
			t.msgIdx = append(t.msgIdx, i)
			t.blkIdx = append(t.blkIdx, j)
		}
	}
	return turns
}

func parseContent(i int, role string, raw []byte) ([]*block, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, invalid("messages.%d.content: Field required", i)
	}
	if raw[0] == '"' {
		var s string
		if bytes.IndexByte(raw, '\\') < 0 {
			// The body was validated whole, so a string without escapes
			// is its own content.
			s = string(raw[1 : len(raw)-1])
		} else if err := json.Unmarshal(raw, &s); err != nil {
			return nil, invalid("messages.%d.content: Input should be a valid string", i)
		}
		if s == "" {
			return nil, nil
		}
		return []*block{{typ: "text", text: s, tokens: tokensFor(len(s))}}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(raw, &raws); err != nil {
		return nil, invalid("messages.%d.content: Input should be a valid list", i)
	}
	blocks := make([]*block, 0, len(raws))
	for j, rb := range raws {
		b, err := parseBlock(i, j, role, rb)
		if err != nil {
			return nil, err
		}
		blocks = append(blocks, b)
	}
	return blocks, nil
}

func parseBlock(i, j int, role string, raw json.RawMessage) (*block, *apiError) {
	var wb wireBlock
	if err := json.Unmarshal(raw, &wb); err != nil {
		return nil, invalid("messages.%d.content.%d: Input should be a valid dictionary", i, j)
	}
	path := fmt.Sprintf("messages.%d.content.%d", i, j)
	b := &block{typ: wb.Type, cc: wb.CacheControl}
	if b.cc != nil {
		if wb.Type == "thinking" || wb.Type == "redacted_thinking" {
			return nil, invalid("%s.%s.cache_control: Extra inputs are not permitted", path, wb.Type)
		}
		if err := checkCacheControl(path+".cache_control", b.cc); err != nil {
			return nil, err
		}
	}
	switch wb.Type {
	case "text":
		if wb.Text == nil {
			return nil, invalid("%s.text.text: Field required", path)
		}
		if *wb.Text == "" {
			return nil, invalid("messages: text content blocks must be non-empty")
		}
		b.text = *wb.Text
		b.tokens = tokensFor(len(b.text))
	case "tool_use":
		if role != "assistant" {
			return nil, invalid("%s: tool_use blocks may only appear in assistant messages", path)
		}
		if wb.ID == "" {
			return nil, invalid("%s.tool_use.id: Field required", path)
		}
		if wb.Name == "" {
			return nil, invalid("%s.tool_use.name: Field required", path)
		}
		in := bytes.TrimSpace(wb.Input)
		if len(in) == 0 || in[0] != '{' {
			return nil, invalid("%s.tool_use.input: Input should be a valid dictionary", path)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, in); err != nil {
			return nil, invalid("%s.tool_use.input: Input should be a valid dictionary", path)
		}
		b.id, b.name, b.input = wb.ID, wb.Name, buf.Bytes()
		b.tokens = tokensFor(len(b.name) + len(b.input))
	case "tool_result":
		if role != "user" {
			return nil, invalid("%s: tool_result blocks may only appear in user messages", path)
		}
		if wb.ToolUseID == "" {
			return nil, invalid("%s.tool_result.tool_use_id: Field required", path)
		}
		b.toolUseID, b.isError = wb.ToolUseID, wb.IsError
		text, n, err := resultContent(path, wb.Content)
		if err != nil {
			return nil, err
		}
		b.text = text
		b.tokens = tokensFor(n)
	case "thinking":
		if role != "assistant" {
			return nil, invalid("%s: thinking blocks may only appear in assistant messages", path)
		}
		if wb.Thinking == nil {
			return nil, invalid("%s.thinking.thinking: Field required", path)
		}
		if wb.Signature == nil {
			return nil, invalid("%s.thinking.signature: Field required", path)
		}
		b.thinking, b.signature = *wb.Thinking, *wb.Signature
		b.tokens = tokensFor(len(b.thinking))
	case "compaction":
		if err := parseCompaction(path, role, &wb, b); err != nil {
			return nil, err
		}
	default:
		if !slices.Contains(opaqueBlocks, wb.Type) {
			return nil, invalid("%s: Input tag '%s' found using 'type' does not match any of the expected tags: 'text', 'tool_use', 'tool_result', 'thinking', 'compaction', '%s'", path, wb.Type, strings.Join(opaqueBlocks, "', '"))
		}
		b.raw = raw
		b.tokens = tokensFor(len(raw))
	}
	return b, nil
}

// resultContent flattens a tool_result's content (a string or a list of
// blocks) to text for the reply, and returns the byte count to bill.
func resultContent(path string, raw json.RawMessage) (string, int, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", 0, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", 0, invalid("%s.tool_result.content: Input should be a valid string", path)
		}
		return s, len(s), nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return "", 0, invalid("%s.tool_result.content: Input should be a valid list", path)
	}
	var parts []string
	n := 0
	for k, item := range items {
		var wb wireBlock
		if err := json.Unmarshal(item, &wb); err != nil {
			return "", 0, invalid("%s.tool_result.content.%d: Input should be a valid dictionary", path, k)
		}
		switch wb.Type {
		case "text":
			if wb.Text == nil || *wb.Text == "" {
				return "", 0, invalid("messages: text content blocks must be non-empty")
			}
			parts = append(parts, *wb.Text)
			n += len(*wb.Text)
		case "image", "document", "search_result":
			parts = append(parts, "["+wb.Type+"]")
			n += len(item)
		default:
			return "", 0, invalid("%s.tool_result.content.%d: Input tag '%s' found using 'type' does not match any of the expected tags: 'text', 'image', 'document', 'search_result'", path, k, wb.Type)
		}
	}
	return strings.Join(parts, " "), n, nil
}

// checkBreakpoints enforces the documented limit of four cache_control
// breakpoints, counting the automatic one.
func (r *request) checkBreakpoints() *apiError {
	n := 0
	if r.autoCache != nil {
		n++
	}
	for _, t := range r.tools {
		if t.cc != nil {
			n++
		}
	}
	for _, b := range r.system {
		if b.cc != nil {
			n++
		}
	}
	for _, m := range r.messages {
		for _, b := range m.blocks {
			if b.cc != nil {
				n++
			}
		}
	}
	if n > maxBreakpoints {
		return invalid("A maximum of %d blocks with cache_control may be provided. Found %d.", maxBreakpoints, n)
	}
	return nil
}

// checkHistory enforces the tool_use/tool_result pairing and the thinking
// rules on the (merged) turns: every tool_use is answered by a tool_result
// in the next turn, every tool_result answers a tool_use of the turn
// before and comes before any other content of its turn, and while
// thinking is on, the assistant turn of an open tool loop starts with its
// thinking block. (checkBinding has verified the signatures.)
func (r *request) checkHistory() *apiError {
	for ti, t := range r.turns {
		switch t.role {
		case "assistant":
			var ids []string
			for _, b := range t.blocks {
				if b.typ == "tool_use" {
					ids = append(ids, b.id)
				}
			}
			if len(ids) == 0 || ti == len(r.turns)-1 {
				continue
			}
			answered := map[string]bool{}
			for _, b := range r.turns[ti+1].blocks {
				if b.typ == "tool_result" {
					answered[b.toolUseID] = true
				}
			}
			var missing []string
			for _, id := range ids {
				if !answered[id] {
					missing = append(missing, id)
				}
			}
			if len(missing) > 0 {
				return invalid("messages.%d: `tool_use` ids were found without `tool_result` blocks immediately after: %s. Each `tool_use` block must have a corresponding `tool_result` block in the next message.", t.msgIdx[len(t.msgIdx)-1], strings.Join(missing, ", "))
			}
		case "user":
			var asked map[string]bool
			other := -1 // the first block that is not a tool_result
			for k, b := range t.blocks {
				if b.typ != "tool_result" {
					if other < 0 {
						other = k
					}
					continue
				}
				if other >= 0 {
					return invalid("messages.%d.content.%d: `tool_result` blocks must come first in the user message, before any other content (found `%s` at messages.%d.content.%d).", t.msgIdx[k], t.blkIdx[k], t.blocks[other].typ, t.msgIdx[other], t.blkIdx[other])
				}
				if asked == nil {
					asked = map[string]bool{}
					if ti > 0 {
						for _, pb := range r.turns[ti-1].blocks {
							if pb.typ == "tool_use" {
								asked[pb.id] = true
							}
						}
					}
				}
				if !asked[b.toolUseID] {
					return invalid("messages.%d.content.%d: unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding `tool_use` block in the previous message.", t.msgIdx[k], t.blkIdx[k], b.toolUseID)
				}
			}
		}
	}
	return r.checkToolLoopThinking()
}

// checkToolLoopThinking: while thinking is on and the last user turn
// answers tool calls, the assistant turn that made them must start with
// its thinking block, as the API requires.
func (r *request) checkToolLoopThinking() *apiError {
	if r.thinking == thinkNone || len(r.turns) < 2 {
		return nil
	}
	last := r.turns[len(r.turns)-1]
	if last.role != "user" || !slices.ContainsFunc(last.blocks, func(b *block) bool { return b.typ == "tool_result" }) {
		return nil
	}
	prev := r.turns[len(r.turns)-2]
	// A compaction block the API put first in the reply comes before its
	// thinking.
	k := 0
	for k < len(prev.blocks) && prev.blocks[k].typ == "compaction" {
		k++
	}
	if k == len(prev.blocks) {
		return nil
	}
	if first := prev.blocks[k]; first.typ != "thinking" && first.typ != "redacted_thinking" {
		return invalid("messages.%d.content.%d.type: Expected `thinking` or `redacted_thinking`, but found `%s`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from previous turns. To avoid this requirement, disable `thinking`. Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking", prev.msgIdx[k], prev.blkIdx[k], first.typ)
	}
	return nil
}

// inputTokens is the request's whole prompt in tokens: tools, system and
// messages.
func (r *request) inputTokens() int {
	n := 0
	for _, t := range r.tools {
		n += t.tokens
	}
	for _, b := range r.system {
		n += b.tokens
	}
	for _, m := range r.messages {
		for _, b := range m.blocks {
			n += b.tokens
		}
	}
	return n
}

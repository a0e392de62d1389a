package claude

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/lambdagent/lambdagent/internal/pricing"
	"github.com/lambdagent/lambdagent/internal/redact"
	"github.com/lambdagent/lambdagent/internal/retry"
)

// Config configures a [Client]. A zero field means its default.
type Config struct {
	// APIKey is sent as x-api-key. Required.
	APIKey string
	// BaseURL points the client elsewhere (the simulator, a proxy). Empty
	// means the SDK's default, https://api.anthropic.com.
	BaseURL string
	// HTTPClient carries the requests. Nil means a client with sane
	// connection pooling and no overall timeout (the context bounds calls).
	HTTPClient *http.Client
	// Retry is the one retry policy for model calls.
	Retry retry.Policy
	// Prices prices each reply (Usage.CostUSD), so that limits, telemetry
	// and the turn's answer all read one figure (see #12). Nil or empty
	// means pricing.Default(), the list prices.
	Prices pricing.Table
}

// Client sends Messages API requests. Build one per process and share it:
// it is safe for concurrent use and keeps its connections warm.
type Client struct {
	sdk    anthropic.Client
	retry  retry.Policy
	prices pricing.Table
}

// New builds a Client.
func New(cfg Config) (*Client, error) {
	if cfg.APIKey == "" {
		return nil, errors.New("claude: no API key")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	opts := []option.RequestOption{
		option.WithAPIKey(cfg.APIKey),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0), // retries are ours: see Policy
	}
	if cfg.BaseURL != "" {
		// The SDK reports a bad base URL at every call, quoting it whole,
		// password included: refuse it here, without the password.
		if u, err := url.Parse(cfg.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("claude: base URL %q is not an absolute http(s) URL", redact.URL(cfg.BaseURL))
		}
		opts = append(opts, option.WithBaseURL(cfg.BaseURL))
	}
	prices := cfg.Prices
	if len(prices) == 0 {
		prices = pricing.Default()
	}
	return &Client{sdk: anthropic.NewClient(opts...), retry: cfg.Retry, prices: prices}, nil
}

// A Request is one Messages API call. Body is what is sent; Model and
// MaxTokens repeat two of its fields so that what wraps a model client
// (limits, telemetry) reads them here instead of parsing Body.
type Request struct {
	// Model is the body's "model".
	Model string
	// MaxTokens is the body's "max_tokens".
	MaxTokens int
	// Body is the whole Messages API request body, as JSON. It is sent as
	// is: nothing checks that it agrees with Model and MaxTokens.
	Body []byte
	// Betas are sent as anthropic-beta headers, for beta fields of Body
	// (thinking.block_binding, say).
	Betas []string
	// Release, if set, is called once when nothing reads Body any more:
	// after Create returned and the HTTP transport closed every body it
	// was given, which may be later (see [net/http.RoundTripper]). The
	// caller may then reuse Body's buffer. It is not called when a body
	// is never closed (the buffer is then the garbage collector's).
	Release func()
}

// Usage is the token accounting of one reply.
type Usage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
	// CacheCreation splits CacheCreationInputTokens by cache lifetime, as
	// the API reports it; zero (and left out of JSON) when it sent none.
	// Cache writes cost more for 1 hour than for 5 minutes.
	CacheCreation CacheCreation `json:"cache_creation,omitzero"`
	// CostUSD is what the reply cost, in US dollars. The API does not send
	// it: [Client.Create] computes it once from Config.Prices, and
	// everything else (limits, telemetry, the turn's answer) reads it
	// here. Zero when the model has no price.
	CostUSD float64 `json:"cost_usd,omitzero"`
}

// Tokens returns the token counts of u in the form the pricing package
// prices.
func (u Usage) Tokens() pricing.Tokens {
	return pricing.Tokens{
		Input:        u.InputTokens,
		Output:       u.OutputTokens,
		CacheWrite:   u.CacheCreationInputTokens,
		CacheWrite1h: u.CacheCreation.Ephemeral1hInputTokens,
		CacheRead:    u.CacheReadInputTokens,
	}
}

// CacheCreation splits Usage.CacheCreationInputTokens by TTL.
type CacheCreation struct {
	Ephemeral5mInputTokens int64 `json:"ephemeral_5m_input_tokens"`
	Ephemeral1hInputTokens int64 `json:"ephemeral_1h_input_tokens"`
}

// Add sums u and v.
func (u Usage) Add(v Usage) Usage {
	return Usage{
		InputTokens:              u.InputTokens + v.InputTokens,
		OutputTokens:             u.OutputTokens + v.OutputTokens,
		CacheCreationInputTokens: u.CacheCreationInputTokens + v.CacheCreationInputTokens,
		CacheReadInputTokens:     u.CacheReadInputTokens + v.CacheReadInputTokens,
		CacheCreation: CacheCreation{
			Ephemeral5mInputTokens: u.CacheCreation.Ephemeral5mInputTokens + v.CacheCreation.Ephemeral5mInputTokens,
			Ephemeral1hInputTokens: u.CacheCreation.Ephemeral1hInputTokens + v.CacheCreation.Ephemeral1hInputTokens,
		},
		CostUSD: u.CostUSD + v.CostUSD,
	}
}

// Reply is what a turn keeps of a Messages API response.
type Reply struct {
	ID    string `json:"id"`
	Model string `json:"model"`
	// Content is the raw content array, exactly as Claude sent it.
	Content    json.RawMessage `json:"content"`
	StopReason string          `json:"stop_reason"`
	// StopDetails is the reply's stop_details object as sent (a
	// refusal's category and explanation); nil when null or absent.
	StopDetails json.RawMessage `json:"stop_details,omitempty"`
	Usage       Usage           `json:"usage"`
	// RequestID is the request-id response header.
	RequestID string `json:"-"`
	// Header holds the response headers (anthropic-ratelimit-* among
	// them) of the last attempt.
	Header http.Header `json:"-"`
	// Attempts counts the HTTP requests made, retries included.
	Attempts int `json:"-"`
}

// Create sends a Messages API request whose JSON body the caller built,
// retrying transient failures, and decodes the reply. It prices the reply
// (Usage.CostUSD) at the reply's model, or at req.Model when Config.Prices
// has no price for that one.
func (c *Client) Create(ctx context.Context, req Request) (*Reply, error) {
	if len(req.Body) == 0 {
		return nil, errEmptyBody
	}
	var sent *sentBody
	if req.Release != nil {
		sent = newSentBody(req.Body, req.Release)
		defer sent.unref()
	}
	var reply *Reply
	attempts := 0
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		attempts++
		r, err := c.create(ctx, req.Body, req.Betas, sent)
		reply = r
		return err
	})
	if err != nil {
		return nil, err
	}
	reply.Attempts = attempts
	model := reply.Model
	if _, ok := c.prices.Lookup(model); !ok {
		model = req.Model
	}
	reply.Usage.CostUSD = c.prices.Cost(model, reply.Usage.Tokens())
	return reply, nil
}

func (c *Client) create(ctx context.Context, body []byte, betas []string, sent *sentBody) (*Reply, error) {
	var raw []byte
	var resp *http.Response
	opts := []option.RequestOption{
		option.WithRequestBody("application/json", body),
		option.WithResponseInto(&resp),
	}
	if sent != nil {
		opts = append(opts, option.WithMiddleware(sent.middleware))
	}
	for _, b := range betas {
		opts = append(opts, option.WithHeaderAdd("anthropic-beta", b))
	}
	err := c.sdk.Post(ctx, "v1/messages", nil, &raw, opts...)
	if err != nil {
		return nil, classify(ctx, err)
	}
	var r Reply
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("claude: decode reply: %w", err)
	}
	if len(r.Content) == 0 || r.Content[0] != '[' {
		return nil, fmt.Errorf("claude: reply %s has no content array", r.ID)
	}
	if string(r.StopDetails) == "null" {
		r.StopDetails = nil
	}
	if resp != nil {
		r.RequestID = resp.Header.Get("request-id")
		r.Header = resp.Header
	}
	return &r, nil
}

// classify turns SDK and transport errors into StatusError or
// TransportError; context errors pass through so callers see them as such.
func classify(ctx context.Context, err error) error {
	var apiErr *anthropic.Error
	if errors.As(err, &apiErr) {
		se := &StatusError{Code: apiErr.StatusCode, Type: string(apiErr.Type()), RequestID: apiErr.RequestID}
		var body struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(apiErr.RawJSON()), &body) == nil {
			se.Message = body.Error.Message
		}
		if apiErr.Response != nil {
			se.Wait = retryAfter(apiErr.Response.Header, apiErr.StatusCode == http.StatusTooManyRequests)
			se.Header = apiErr.Response.Header
			if se.RequestID == "" {
				se.RequestID = apiErr.Response.Header.Get("request-id")
			}
		}
		return se
	}
	if ctx.Err() != nil {
		return fmt.Errorf("claude: %w", ctx.Err())
	}
	return &TransportError{Err: err}
}

// maxRetryAfter bounds a server's retry advice. Anything longer is a broken
// header (and a float that large would overflow time.Duration).
const maxRetryAfter = 24 * time.Hour

// retryAfter reads the server's retry advice, in the SDK's order of
// preference: retry-after-ms (milliseconds), then retry-after (seconds or
// an HTTP date); failing both on a 429, the earliest
// anthropic-ratelimit-*-reset (RFC 3339). Every reply carries the reset
// headers, but they say when a bucket is full again, which is no reason to
// wait after a 529 or a 500. A negative, non-numeric or malformed value
// counts as absent; a huge one as maxRetryAfter.
func retryAfter(h http.Header, limited bool) time.Duration {
	if d, ok := parseWait(h.Get("retry-after-ms"), time.Millisecond); ok {
		return d
	}
	if v := h.Get("retry-after"); v != "" {
		if d, ok := parseWait(v, time.Second); ok {
			return d
		}
		if t, err := http.ParseTime(v); err == nil {
			return min(max(time.Until(t), 0), maxRetryAfter)
		}
	}
	if !limited {
		return 0
	}
	var best time.Duration
	for k, vs := range h {
		if !strings.HasPrefix(strings.ToLower(k), "anthropic-ratelimit-") || !strings.HasSuffix(strings.ToLower(k), "-reset") || len(vs) == 0 {
			continue
		}
		if t, err := time.Parse(time.RFC3339, vs[0]); err == nil {
			if d := time.Until(t); d > 0 && (best == 0 || d < best) {
				best = d
			}
		}
	}
	return min(best, maxRetryAfter)
}

// parseWait reads a non-negative, finite number of units, capped at
// maxRetryAfter; ok is false for anything else (empty, negative, NaN,
// infinite, not a number).
func parseWait(v string, unit time.Duration) (d time.Duration, ok bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	if f*float64(unit) >= float64(maxRetryAfter) {
		return maxRetryAfter, true
	}
	return time.Duration(f * float64(unit)), true
}

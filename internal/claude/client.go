package claude

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// OnDelta, if set, makes Create ask for a streamed reply and call it
	// with each piece of text and thinking as it arrives, from Create's
	// goroutine; the Reply is the same as without (see #15). Nil keeps
	// the plain JSON call.
	OnDelta func(Delta)
	// Streaming says Body already asks for a stream ("stream":true), so
	// that with OnDelta Create sends Body itself rather than a copy with
	// the field added: a deep turn's body is the size of its history.
	Streaming bool
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

// UnmarshalJSON reads a usage object as the API sends it, compaction
// iterations included: a reply the API compacted (compact_20260112, see
// #14) lists in usage.iterations a "compaction" entry whose tokens are
// billed but, as documented, not in the top-level counts, which are the
// message iteration's. They are added here, so that every reader of
// Usage (the turn's usage and cost, the limiter, telemetry) counts what
// was billed.
func (u *Usage) UnmarshalJSON(b []byte) error {
	type plain Usage
	var v struct {
		plain
		Iterations []struct {
			Type string `json:"type"`
			plain
		} `json:"iterations"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	sum := Usage(v.plain)
	for _, it := range v.Iterations {
		if it.Type == "compaction" {
			sum = sum.Add(Usage(it.plain))
		}
	}
	*u = sum
	return nil
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
	// InputTransformations is the reply's input_transformations array as
	// sent: what the API changed in the request before the model read it
	// (thinking blocks dropped under drop_block, see #14); nil when absent.
	InputTransformations json.RawMessage `json:"input_transformations,omitempty"`
	Usage                Usage           `json:"usage"`
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
	if req.OnDelta != nil && !req.Streaming {
		// The streamed request is a copy of Body (see withStream):
		// nothing reads Body once it is made.
		body, err := withStream(req.Body)
		if req.Release != nil {
			req.Release()
		}
		if err != nil {
			return nil, err
		}
		return c.send(ctx, req, body, nil)
	}
	if req.Release != nil {
		sent = newSentBody(req.Body, req.Release)
		defer sent.unref()
	}
	return c.send(ctx, req, req.Body, sent)
}

// send makes the call, body being req's body or its streamed copy,
// retrying transient failures, and prices the reply. With req.OnDelta it
// calls OnDelta with each text and thinking delta as it arrives and reads
// the same Reply the JSON reply would decode to; a transient failure
// before the first delta is retried, after it it is returned (midStream).
// sent, when not nil, is body's release tracking (Request.Release).
func (c *Client) send(ctx context.Context, req Request, body []byte, sent *sentBody) (*Reply, error) {
	var reply *Reply
	attempts := 0
	err := c.retry.Do(ctx, func(ctx context.Context) error {
		attempts++
		delivered := false
		r, err := c.create(ctx, body, req.Betas, sent, req.OnDelta, &delivered)
		reply = r
		if err != nil && delivered {
			return midStream{err}
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	reply.Attempts = attempts
	c.price(reply, req.Model)
	return reply, nil
}

// price sets reply.Usage.CostUSD at the reply's model, or at asked when
// the table has no price for that one.
func (c *Client) price(reply *Reply, asked string) {
	model := reply.Model
	if _, ok := c.prices.Lookup(model); !ok {
		model = asked
	}
	reply.Usage.CostUSD = c.prices.Cost(model, reply.Usage.Tokens())
}

func (c *Client) create(ctx context.Context, body []byte, betas []string, sent *sentBody, onDelta func(Delta), delivered *bool) (*Reply, error) {
	var resp *http.Response
	opts := []option.RequestOption{
		option.WithRequestBody("application/json", body),
	}
	if sent != nil {
		opts = append(opts, option.WithMiddleware(sent.middleware))
	}
	for _, b := range betas {
		opts = append(opts, option.WithHeaderAdd("anthropic-beta", b))
	}
	// Into *http.Response the SDK hands over the 2xx body unread: a body
	// that asked to stream is read as events, where an error may still
	// come after the 200 (see #14).
	err := c.sdk.Post(ctx, "v1/messages", nil, &resp, opts...)
	if err != nil {
		return nil, classify(ctx, err)
	}
	defer resp.Body.Close()
	var r *Reply
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		r, err = readStream(ctx, resp, onDelta, delivered)
	} else {
		r, err = readJSON(ctx, resp.Body)
	}
	if err != nil {
		return nil, err
	}
	if len(r.Content) == 0 || r.Content[0] != '[' {
		return nil, fmt.Errorf("claude: reply %s has no content array", r.ID)
	}
	if string(r.StopDetails) == "null" {
		r.StopDetails = nil
	}
	if string(r.InputTransformations) == "null" {
		r.InputTransformations = nil
	}
	r.RequestID = resp.Header.Get("request-id")
	r.Header = resp.Header
	return r, nil
}

func readJSON(ctx context.Context, body io.Reader) (*Reply, error) {
	raw, err := io.ReadAll(body)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("claude: %w", ctx.Err())
		}
		return nil, &TransportError{Err: fmt.Errorf("read reply: %w", err)}
	}
	var r Reply
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("claude: decode reply: %w", err)
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
		if se.Code < 400 {
			// An error event of a stream the SDK read: the stream began
			// with a 200, the event's type says what went wrong.
			se.Code, se.MidStream = statusOf(se.Type), true
		}
		if apiErr.Response != nil {
			h := apiErr.Response.Header
			se.Wait = retryAfter(h, se.Code == http.StatusTooManyRequests)
			se.ShouldRetry = shouldRetry(h)
			se.Header = h
			if se.RequestID == "" {
				se.RequestID = h.Get("request-id")
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
// header (and a float that large would overflow time.Duration). The
// context's deadline bounds the wait further (see retry.Policy).
const maxRetryAfter = 24 * time.Hour

// shouldRetry reads x-should-retry: nil unless it is "true" or "false",
// the values the SDK's own retry obeys.
func shouldRetry(h http.Header) *bool {
	var v bool
	switch h.Get("x-should-retry") {
	case "true":
		v = true
	case "false":
	default:
		return nil
	}
	return &v
}

// retryAfter reads the server's retry advice, in the SDK's order of
// preference: retry-after-ms (milliseconds), then retry-after (seconds or
// an HTTP date); failing both on a 429, the reset of the exhausted rate
// limit (see exhaustedReset). Every reply carries the reset headers, but
// they say when a bucket is full again, which is no reason to wait after a
// 529 or a 500. A negative, non-numeric or malformed value counts as
// absent; a huge one as maxRetryAfter.
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
	return min(exhaustedReset(h), maxRetryAfter)
}

// exhaustedReset is how long until the rate limit that refused a request
// has room again: the anthropic-ratelimit-NAME-reset of the limit with the
// smallest share left (NAME-remaining over NAME-limit; 0 is exhausted),
// the latest reset among equals. Waiting for the earliest reset instead
// (another, fuller limit's) retries into the same 429 (see #14). Without
// remaining and limit headers, the earliest future reset is all there is
// to go on.
func exhaustedReset(h http.Header) time.Duration {
	const prefix, suffix = "Anthropic-Ratelimit-", "-Reset"
	var earliest, best time.Duration
	bestShare := math.Inf(1)
	for k, vs := range h {
		k = http.CanonicalHeaderKey(k)
		if !strings.HasPrefix(k, prefix) || !strings.HasSuffix(k, suffix) || len(vs) == 0 {
			continue
		}
		t, err := time.Parse(time.RFC3339, vs[0])
		if err != nil {
			continue
		}
		d := time.Until(t)
		if d <= 0 {
			continue
		}
		if earliest == 0 || d < earliest {
			earliest = d
		}
		name := strings.TrimSuffix(k, suffix)
		remaining, err1 := strconv.ParseFloat(h.Get(name+"-Remaining"), 64)
		limit, err2 := strconv.ParseFloat(h.Get(name+"-Limit"), 64)
		if err1 != nil || err2 != nil || limit <= 0 || remaining < 0 || math.IsNaN(remaining) {
			continue
		}
		if share := remaining / limit; share < bestShare || (share == bestShare && d > best) {
			bestShare, best = share, d
		}
	}
	if best > 0 {
		return best
	}
	return earliest
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

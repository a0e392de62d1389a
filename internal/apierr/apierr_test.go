package apierr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/apierr"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/ratelimit"
	"github.com/lambdagent/lambdagent/internal/session"
)

// maxBytesError is what http.MaxBytesReader returns past its limit.
func maxBytesError(t *testing.T, limit int64) error {
	t.Helper()
	rec := httptest.NewRecorder()
	_, err := io.ReadAll(http.MaxBytesReader(rec, io.NopCloser(strings.NewReader(strings.Repeat("x", int(limit)+1))), limit))
	var mbe *http.MaxBytesError
	if !errors.As(err, &mbe) {
		t.Fatalf("MaxBytesReader gave %v, want a *http.MaxBytesError", err)
	}
	return err
}

// From over every kind lambdagent's errors have, wrapped as the packages
// wrap them. Messages are the ones clients got from httpapi before apierr:
// tests and clients compare them.
func TestFrom(t *testing.T) {
	const (
		conflictMsg    = "the session changed while the turn ran; nothing was saved, retry"
		unavailableMsg = "the session store is unavailable; nothing was saved, retry"
		timeoutMsg     = "the turn did not finish in time; nothing was saved, retry"
	)
	tests := []struct {
		name string
		err  error
		want *apierr.Error // Err is not compared
	}{
		{"nil", nil, nil},
		{"invalid session id", fmt.Errorf("%w: empty", session.ErrInvalidID),
			&apierr.Error{Kind: apierr.InvalidRequest, Status: 400, Message: "session: invalid session id: empty"}},
		{"bad request", fmt.Errorf("%w: empty message", agent.ErrBadRequest),
			&apierr.Error{Kind: apierr.InvalidRequest, Status: 400, Message: "agent: bad request: empty message"}},
		{"busy", fmt.Errorf("begin s1: %w", &session.BusyError{RetryAfter: 200 * time.Millisecond}),
			&apierr.Error{Kind: apierr.SessionBusy, Status: 409, Message: "another turn of this session is in progress; retry later", RetryAfter: time.Second}},
		{"busy, same key", &session.BusyError{RetryAfter: 3 * time.Second, SameKey: true},
			&apierr.Error{Kind: apierr.SessionBusy, Status: 409, Message: "a request with this idempotency key is in progress; retry later for its answer", RetryAfter: 3 * time.Second}},
		{"idempotency mismatch", fmt.Errorf("begin: %w", session.ErrIdempotencyMismatch),
			&apierr.Error{Kind: apierr.IdempotencyMismatch, Status: 422, Message: "this Idempotency-Key was used with a different request"}},
		{"conflict", fmt.Errorf("commit s1 at v3: %w", session.ErrConflict),
			&apierr.Error{Kind: apierr.Conflict, Status: 409, Message: conflictMsg, RetryAfter: time.Second}},
		{"lease lost", session.ErrLeaseLost, &apierr.Error{Kind: apierr.Conflict, Status: 409, Message: conflictMsg, RetryAfter: time.Second}},
		{"broken history", fmt.Errorf("%w: message 3 has role %q, want %q", agent.ErrBrokenHistory, "user", "assistant"),
			&apierr.Error{Kind: apierr.InvalidHistory, Status: 409, Message: `agent: stored history breaks the Messages API rules: message 3 has role "user", want "assistant"`}},
		{"session store down", fmt.Errorf("%w: %w", session.ErrUnavailable, errors.New("dial tcp 10.0.0.7:6379: refused")),
			&apierr.Error{Kind: apierr.StoreUnavailable, Status: 503, Message: unavailableMsg, RetryAfter: time.Second}},
		// The store being down wins over the deadline that revealed it.
		{"session store down on a deadline", fmt.Errorf("%w: %w", session.ErrUnavailable, context.DeadlineExceeded),
			&apierr.Error{Kind: apierr.StoreUnavailable, Status: 503, Message: unavailableMsg, RetryAfter: time.Second}},
		{"limiter store down", fmt.Errorf("acquire: %w", ratelimit.ErrUnavailable),
			&apierr.Error{Kind: apierr.StoreUnavailable, Status: 503, Message: unavailableMsg, RetryAfter: time.Second}},
		// The limiter's three refusals: the cases telemetry's own
		// classifier lacked (see #12).
		{"budget", fmt.Errorf("run: %w", &ratelimit.BudgetError{Scope: ratelimit.ScopeTenant, ID: "acme", Unit: "usd", Spent: 5, Limit: 5, RetryAfter: 5 * time.Hour}),
			&apierr.Error{Kind: apierr.BudgetExceeded, Status: 402, Message: "the daily budget of this tenant is spent; it renews at 00:00 UTC", RetryAfter: 5 * time.Hour}},
		{"stopped", &ratelimit.StoppedError{Scope: ratelimit.ScopeSession, ID: "s1"},
			&apierr.Error{Kind: apierr.Stopped, Status: 403, Message: "this session has been stopped by an operator"}},
		{"concurrency", &ratelimit.LimitError{Kind: ratelimit.KindConcurrency, Scope: ratelimit.ScopeGlobal},
			&apierr.Error{Kind: apierr.TooManyTurns, Status: 429, Message: "too many turns are in progress; nothing was saved, retry later", RetryAfter: time.Second}},
		{"token rate", &ratelimit.LimitError{Kind: ratelimit.KindInputTokens, Scope: ratelimit.ScopeModel, Name: "m", RetryAfter: 2500 * time.Millisecond},
			&apierr.Error{Kind: apierr.RateLimited, Status: 429, Message: "the input_tokens limit of this model is reached; nothing was saved, retry later", RetryAfter: 2500 * time.Millisecond}},
		{"claude 429", &claude.StatusError{Code: 429, Type: "rate_limit_error", RequestID: "req_1", Wait: 7 * time.Second},
			&apierr.Error{Kind: apierr.RateLimited, Status: 429, Message: "Claude answered 429 rate_limit_error; nothing was saved", RequestID: "req_1", RetryAfter: 7 * time.Second}},
		{"claude 529", fmt.Errorf("model: %w", &claude.StatusError{Code: 529, Type: "overloaded_error", RequestID: "req_2"}),
			&apierr.Error{Kind: apierr.UpstreamOverloaded, Status: 503, Message: "Claude answered 529 overloaded_error; nothing was saved", RequestID: "req_2", RetryAfter: time.Second}},
		{"claude 503", &claude.StatusError{Code: 503, Type: "api_error"},
			&apierr.Error{Kind: apierr.UpstreamOverloaded, Status: 503, Message: "Claude answered 503 api_error; nothing was saved", RetryAfter: time.Second}},
		{"claude 400", &claude.StatusError{Code: 400, Type: "invalid_request_error", Message: "secret prompt detail", RequestID: "req_3"},
			&apierr.Error{Kind: apierr.UpstreamError, Status: 502, Message: "Claude answered 400 invalid_request_error; nothing was saved", RequestID: "req_3"}},
		{"claude unreachable", &claude.TransportError{Err: errors.New("dial tcp: connection refused")},
			&apierr.Error{Kind: apierr.UpstreamUnreachable, Status: 502, Message: "Claude could not be reached; nothing was saved, retry"}},
		// An http.Client timeout is a deadline, as before apierr.
		{"claude client timeout", &claude.TransportError{Err: fmt.Errorf("Post: %w", context.DeadlineExceeded)},
			&apierr.Error{Kind: apierr.Timeout, Status: 504, Message: timeoutMsg}},
		{"deadline", fmt.Errorf("claude: %w", context.DeadlineExceeded), &apierr.Error{Kind: apierr.Timeout, Status: 504, Message: timeoutMsg}},
		{"canceled", fmt.Errorf("claude: %w", context.Canceled), &apierr.Error{Kind: apierr.Canceled, Status: 499, Message: "the request was canceled"}},
		{"body too large", fmt.Errorf("read body: %w", maxBytesError(t, 16)),
			&apierr.Error{Kind: apierr.RequestTooLarge, Status: 413, Message: "request body is larger than 16 bytes"}},
		{"an *Error wins", fmt.Errorf("x: %w", &apierr.Error{Kind: apierr.NotFound, Message: "no session s1", Err: session.ErrConflict}),
			&apierr.Error{Kind: apierr.NotFound, Status: 404, Message: "no session s1"}},
		{"an *Error's own status", &apierr.Error{Kind: "http_418", Status: 418, Message: "teapot"},
			&apierr.Error{Kind: "http_418", Status: 418, Message: "teapot"}},
		{"a sentinel of another package", fmt.Errorf("decode: %w", apierr.Sentinel("x: odd event", apierr.Error{Kind: "odd_event", Status: 400})),
			&apierr.Error{Kind: "odd_event", Status: 400, Message: "decode: x: odd event"}},
		// A 5xx never sends its text, even when it gave no message.
		{"a 5xx sentinel without message", apierr.Sentinel("x: secret host db-7", apierr.Error{Kind: apierr.StoreUnavailable}),
			&apierr.Error{Kind: apierr.StoreUnavailable, Status: 503, Message: "Service Unavailable"}},
		{"anything else", fmt.Errorf("panic: %v", "index out of range"), &apierr.Error{Kind: apierr.Internal, Status: 500, Message: "internal error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := apierr.From(tc.err)
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(apierr.Error{}, "Err")); diff != "" {
				t.Errorf("From(%v) (-want +got):\n%s", tc.err, diff)
			}
			if got == nil {
				return
			}
			if got.Err == nil && !strings.HasPrefix(tc.name, "an *Error") {
				t.Errorf("From(%v).Err is nil: the cause would not be logged", tc.err)
			}
			if got.Status != got.Kind.Status() && !strings.HasPrefix(tc.name, "an *Error") && !strings.HasPrefix(tc.name, "a sentinel of") {
				t.Errorf("Status %d, but Kind %s has status %d", got.Status, got.Kind, got.Kind.Status())
			}
			if apierr.KindOf(tc.err) != got.Kind {
				t.Errorf("KindOf = %q, From().Kind = %q", apierr.KindOf(tc.err), got.Kind)
			}
		})
	}
}

// From gives a new *Error each time: a caller changing it changes neither
// a sentinel nor the *Error in the chain.
func TestFromCopies(t *testing.T) {
	apierr.From(session.ErrConflict).Message = "changed"
	if got := apierr.From(session.ErrConflict).Message; got == "changed" {
		t.Errorf("a sentinel's classification was changed through From")
	}
	orig := &apierr.Error{Kind: apierr.NotFound, Message: "no session"}
	apierr.From(orig).Message = "changed"
	if orig.Message != "no session" || orig.Status != 0 {
		t.Errorf("the *Error in the chain was changed: %+v", orig)
	}
}

// Sentinels keep their identity for errors.Is, and their text.
func TestSentinelIdentity(t *testing.T) {
	if !errors.Is(fmt.Errorf("commit: %w", session.ErrConflict), session.ErrConflict) {
		t.Error("errors.Is lost a wrapped sentinel")
	}
	if errors.Is(session.ErrConflict, session.ErrLeaseLost) {
		t.Error("two sentinels of one classification are the same error")
	}
	if got := session.ErrConflict.Error(); got != "session: version conflict" {
		t.Errorf("text %q", got)
	}
}

func TestKindStatus(t *testing.T) {
	want := map[apierr.Kind]int{
		apierr.InvalidRequest: 400, apierr.Unauthorized: 401, apierr.BudgetExceeded: 402, apierr.Forbidden: 403,
		apierr.Stopped: 403, apierr.NotFound: 404, apierr.MethodNotAllowed: 405, apierr.SessionBusy: 409,
		apierr.Conflict: 409, apierr.InvalidHistory: 409, apierr.RequestTooLarge: 413, apierr.ContextWindowExceeded: 413, apierr.SessionTooLarge: 413, apierr.UnsupportedMediaType: 415,
		apierr.IdempotencyMismatch: 422, apierr.RateLimited: 429, apierr.TooManyTurns: 429, apierr.Canceled: 499,
		apierr.Internal: 500, apierr.UpstreamError: 502, apierr.UpstreamUnreachable: 502, apierr.StoreUnavailable: 503,
		apierr.UpstreamOverloaded: 503, apierr.Timeout: 504, "no_such_kind": 500,
	}
	got := map[apierr.Kind]int{}
	for k := range want {
		got[k] = k.Status()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

func TestLogLevel(t *testing.T) {
	tests := []struct {
		kind apierr.Kind
		want slog.Level
	}{
		{apierr.InvalidRequest, slog.LevelInfo},
		{apierr.Unauthorized, slog.LevelInfo},
		{apierr.NotFound, slog.LevelInfo},
		{apierr.RequestTooLarge, slog.LevelInfo},
		{apierr.IdempotencyMismatch, slog.LevelInfo},
		{apierr.Canceled, slog.LevelInfo},
		{apierr.BudgetExceeded, slog.LevelWarn},
		{apierr.Stopped, slog.LevelWarn},
		{apierr.Forbidden, slog.LevelWarn},
		{apierr.SessionBusy, slog.LevelWarn},
		{apierr.Conflict, slog.LevelWarn},
		{apierr.RateLimited, slog.LevelWarn},
		{apierr.TooManyTurns, slog.LevelWarn},
		{apierr.Internal, slog.LevelError},
		{apierr.UpstreamError, slog.LevelError},
		{apierr.StoreUnavailable, slog.LevelError},
		{apierr.Timeout, slog.LevelError},
	}
	for _, tc := range tests {
		t.Run(string(tc.kind), func(t *testing.T) {
			if got := (&apierr.Error{Kind: tc.kind}).LogLevel(); got != tc.want {
				t.Errorf("LogLevel = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		e          *apierr.Error
		wantStatus int
		wantRetry  string
		wantBody   string
	}{
		{"plain", &apierr.Error{Kind: apierr.NotFound, Message: "no session s1"}, 404, "",
			`{"error":{"type":"not_found","message":"no session s1"}}` + "\n"},
		{"retry after rounds up", &apierr.Error{Kind: apierr.RateLimited, Message: "slow down", RetryAfter: 1500 * time.Millisecond}, 429, "2",
			`{"error":{"type":"rate_limited","message":"slow down"}}` + "\n"},
		{"request id, cause never sent", &apierr.Error{Kind: apierr.UpstreamError, Status: 502, Message: "Claude answered 500 api_error; nothing was saved",
			RequestID: "req_9", Err: errors.New("secret cause")}, 502, "",
			`{"error":{"type":"upstream_error","message":"Claude answered 500 api_error; nothing was saved","request_id":"req_9"}}` + "\n"},
		{"html in message stays JSON", &apierr.Error{Kind: apierr.InvalidRequest, Message: `field "<a>" & more`}, 400, "",
			`{"error":{"type":"invalid_request","message":"field \"\u003ca\u003e\" \u0026 more"}}` + "\n"},
		{"nil", nil, 500, "", `{"error":{"type":"internal_error","message":"internal error"}}` + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Allow", "GET")
			apierr.Write(rec, tc.e)
			got := map[string]any{"status": rec.Code, "retry": rec.Header().Get("Retry-After"), "body": rec.Body.String(),
				"type": rec.Header().Get("Content-Type"), "allow": rec.Header().Get("Allow")}
			want := map[string]any{"status": tc.wantStatus, "retry": tc.wantRetry, "body": tc.wantBody, "type": "application/json", "allow": "GET"}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestStatusOfBody(t *testing.T) {
	for body, want := range map[string]int{
		`{"error":{"type":"interrupted","message":"x"}}`:  503,
		`{"error":{"type":"session_busy","message":"x"}}`: 409,
		`{"error":{"type":"rate_limited","message":"x"}}`: 429,
		`{"error":{"type":"no_such_kind","message":"x"}}`: 500,
		`not json`: 500,
	} {
		if got := apierr.StatusOfBody([]byte(body)); got != want {
			t.Errorf("StatusOfBody(%s) = %d, want %d", body, got, want)
		}
	}
	// It reads what Body writes.
	if got := apierr.StatusOfBody(apierr.Body(&apierr.Error{Kind: apierr.Conflict, Message: "m"})); got != 409 {
		t.Errorf("StatusOfBody(Body(conflict)) = %d, want 409", got)
	}
}

package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/redact"
)

func TestURL(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no url", "dial tcp 127.0.0.1:6379: connection refused", "dial tcp 127.0.0.1:6379: connection refused"},
		{"no userinfo", "redis://host:6379/0", "redis://host:6379/0"},
		{"password", "redis://u:secret@host:6379/0", "redis://…@host:6379/0"},
		{"bad escape", `parse "redis://u:p%zz@host": invalid URL escape "%zz"`, `parse "redis://…@host": invalid URL escape "%zz"`},
		{"slash in password", "redis://:pa/ss@host/0", "redis://…@host/0"},
		{"at in password", "redis://u:p@ss@host", "redis://…@host"},
		{"two urls", "a http://x:y@h1/p b https://z@h2 c", "a http://…@h1/p b https://…@h2 c"},
		{"email outside url", "mail bob@example.com", "mail bob@example.com"},
		{"empty", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, redact.URL(tc.in)); diff != "" {
				t.Errorf("URL(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestSet(t *testing.T) {
	var s redact.Set
	s.Add("sk-ant-key-123", "short", "redis://:p4ssw0rd-xyz@h:1/0")
	s.AddHeader("Bearer tok-abcdefgh")
	tests := []struct{ name, in, want string }{
		{"key", "x-api-key sk-ant-key-123 sent", "x-api-key [REDACTED] sent"},
		{"short values stay", "short", "short"},
		{"password alone", "auth p4ssw0rd-xyz failed", "auth [REDACTED] failed"},
		{"whole url", "dial redis://:p4ssw0rd-xyz@h:1/0", "dial [REDACTED]"},
		{"header and token", "Bearer tok-abcdefgh / tok-abcdefgh", "[REDACTED] / [REDACTED]"},
		{"unknown url userinfo", "http://a:b@h", "http://…@h"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, s.String(tc.in)); diff != "" {
				t.Errorf("String(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
	var zero redact.Set
	if got := zero.String("nothing"); got != "nothing" {
		t.Errorf("zero Set changed %q", got)
	}
}

func TestEnv(t *testing.T) {
	env := map[string]string{
		"ANTHROPIC_API_KEY":          "sk-ant-api-999",
		"REDIS_URL":                  "rediss://default:redis-pw-1@cache:6380",
		"LAMBDAGENT_ADMIN_TOKEN":     "admin-tok-42",
		"OTEL_EXPORTER_OTLP_HEADERS": "x-honeycomb-team=hc-key-777,authorization=Basic%20b3RlbDpwdw%3D%3D",
		"LAMBDAGENT_MODEL":           "claude-not-a-secret",
	}
	s := redact.Env(func(k string) string { return env[k] })
	for _, secret := range []string{"sk-ant-api-999", "redis-pw-1", "admin-tok-42", "hc-key-777", "b3RlbDpwdw=="} {
		if got := s.String("x " + secret + " y"); strings.Contains(got, secret) {
			t.Errorf("Env did not cut %q: %s", secret, got)
		}
	}
	if got := s.String("claude-not-a-secret"); got != "claude-not-a-secret" {
		t.Errorf("Env cut a non-secret: %s", got)
	}
}

func TestHandler(t *testing.T) {
	var s redact.Set
	s.Add("tok-123456")
	var buf bytes.Buffer
	log := slog.New(redact.Handler(slog.NewTextHandler(&buf, nil), s.String)).With("base", "redis://u:pw@h")
	log.WithGroup("g").Info("saw tok-123456", "err", errors.New("bad tok-123456"), "n", 7, slog.Group("in", "v", "tok-123456"))
	out := buf.String()
	for _, leak := range []string{"tok-123456", "u:pw"} {
		if strings.Contains(out, leak) {
			t.Errorf("log leaks %q: %s", leak, out)
		}
	}
	if !strings.Contains(out, "g.n=7") {
		t.Errorf("log lost a numeric attribute: %s", out)
	}
}

func TestSetError(t *testing.T) {
	var s redact.Set
	s.Add("tok-123456")
	sentinel := errors.New("sentinel")
	err := s.Error(fmt.Errorf("sent tok-123456: %w", sentinel))
	if got, want := err.Error(), "sent [REDACTED]: sentinel"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, sentinel) {
		t.Error("redacted error does not wrap its cause")
	}
	if s.Error(nil) != nil {
		t.Error("Error(nil) != nil")
	}
	if clean := errors.New("clean"); s.Error(clean) != clean {
		t.Error("an error without secrets was wrapped")
	}
}

package lambdagent

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestOptionsFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    func(o *Options) // changes to the zero Options expected
		wantErr string           // substring naming the bad variable
	}{
		{name: "unset is zero", env: nil, want: func(o *Options) { o.Metrics = "prometheus" }},
		{name: "on Lambda metrics are EMF", env: map[string]string{"AWS_LAMBDA_RUNTIME_API": "x"}, want: func(o *Options) { o.Metrics = "emf" }},
		{name: "values", env: map[string]string{
			"ANTHROPIC_API_KEY": "k", "LAMBDAGENT_MODEL": "claude-sonnet-5-5", "LAMBDAGENT_MAX_TOKENS": "100",
			"LAMBDAGENT_LEASE_TTL": "2s", "LAMBDAGENT_SESSION_TTL": "1h", "LAMBDAGENT_BUSY_POLICY": "reject",
			"LAMBDAGENT_TENANT_RPM": "7", "LAMBDAGENT_SESSION_BUDGET_USD": "1.5", "LAMBDAGENT_METRICS": "both",
		}, want: func(o *Options) {
			o.APIKey, o.Model, o.MaxTokens = "k", "claude-sonnet-5-5", 100
			o.LeaseTTL, o.SessionTTL, o.BusyPolicy = 2*time.Second, time.Hour, "reject"
			o.Limits.TenantRequests, o.Limits.SessionBudget.USDPerDay = 7, 1.5
			o.Metrics = "both"
		}},
		{name: "hostile input limits", env: map[string]string{
			"LAMBDAGENT_READ_TIMEOUT": "5s", "LAMBDAGENT_WRITE_TIMEOUT": "20m", "LAMBDAGENT_IDLE_TIMEOUT": "30s",
			"LAMBDAGENT_MAX_HEADER_BYTES": "8192", "LAMBDAGENT_ALLOWED_HOSTS": " agent.example.com, ,b.example ",
			"LAMBDAGENT_MAX_MESSAGE_BYTES": "2000", "LAMBDAGENT_MAX_SESSION_BYTES": "1000000", "LAMBDAGENT_MAX_TOOL_RESULT_BYTES": "4096",
		}, want: func(o *Options) {
			o.Metrics = "prometheus"
			o.ReadTimeout, o.WriteTimeout, o.IdleTimeout = 5*time.Second, 20*time.Minute, 30*time.Second
			o.MaxHeaderBytes, o.AllowedHosts = 8192, []string{"agent.example.com", "b.example"}
			o.MaxMessageBytes, o.MaxSessionBytes, o.MaxToolResultBytes = 2000, 1000000, 4096
		}},
		{name: "history", env: map[string]string{
			"LAMBDAGENT_HISTORY": "window", "LAMBDAGENT_HISTORY_WINDOW_TURNS": "12", "LAMBDAGENT_HISTORY_TRIGGER_TOKENS": "80000",
			"LAMBDAGENT_COMPACT_INSTRUCTIONS": "Keep file names.",
		}, want: func(o *Options) {
			o.Metrics = "prometheus"
			o.History, o.HistoryWindowTurns, o.HistoryTriggerTokens, o.CompactInstructions = "window", 12, 80000, "Keep file names."
		}},
		{name: "streaming", env: map[string]string{"LAMBDAGENT_STREAM_THINKING": "true", "LAMBDAGENT_FUNCTION_URL_STREAMING": "true"},
			want: func(o *Options) { o.Metrics = "prometheus"; o.StreamThinking, o.FunctionURLStreaming = true, true }},
		{name: "bad stream thinking", env: map[string]string{"LAMBDAGENT_STREAM_THINKING": "yes"}, wantErr: "LAMBDAGENT_STREAM_THINKING"},
		{name: "bad url streaming", env: map[string]string{"LAMBDAGENT_FUNCTION_URL_STREAMING": "1"}, wantErr: "LAMBDAGENT_FUNCTION_URL_STREAMING"},
		{name: "bad history", env: map[string]string{"LAMBDAGENT_HISTORY": "summarise"}, wantErr: "LAMBDAGENT_HISTORY"},
		{name: "bad window turns", env: map[string]string{"LAMBDAGENT_HISTORY_WINDOW_TURNS": "-3"}, wantErr: "LAMBDAGENT_HISTORY_WINDOW_TURNS"},
		{name: "tiny tool result cap", env: map[string]string{"LAMBDAGENT_MAX_TOOL_RESULT_BYTES": "10"}, wantErr: "LAMBDAGENT_MAX_TOOL_RESULT_BYTES"},
		{name: "bad header cap", env: map[string]string{"LAMBDAGENT_MAX_HEADER_BYTES": "-1"}, wantErr: "LAMBDAGENT_MAX_HEADER_BYTES"},
		{name: "bad read timeout", env: map[string]string{"LAMBDAGENT_READ_TIMEOUT": "slow"}, wantErr: "LAMBDAGENT_READ_TIMEOUT"},
		{name: "bad duration", env: map[string]string{"LAMBDAGENT_QUEUE_WAIT": "soon"}, wantErr: "LAMBDAGENT_QUEUE_WAIT"},
		{name: "negative duration", env: map[string]string{"LAMBDAGENT_LEASE_TTL": "-1s"}, wantErr: "LAMBDAGENT_LEASE_TTL"},
		{name: "tiny lease", env: map[string]string{"LAMBDAGENT_LEASE_TTL": "1ms"}, wantErr: "LAMBDAGENT_LEASE_TTL"},
		{name: "bad policy", env: map[string]string{"LAMBDAGENT_BUSY_POLICY": "drop"}, wantErr: "LAMBDAGENT_BUSY_POLICY"},
		{name: "bad int", env: map[string]string{"LAMBDAGENT_MAX_TOKENS": "lots"}, wantErr: "LAMBDAGENT_MAX_TOKENS"},
		{name: "bad float", env: map[string]string{"LAMBDAGENT_SLOW_BELOW": "NaN"}, wantErr: "LAMBDAGENT_SLOW_BELOW"},
		{name: "slow below 1", env: map[string]string{"LAMBDAGENT_SLOW_BELOW": "1"}, wantErr: "LAMBDAGENT_SLOW_BELOW"},
		{name: "bad prices", env: map[string]string{"LAMBDAGENT_PRICES": "{"}, wantErr: "LAMBDAGENT_PRICES"},
		{name: "budget without price", env: map[string]string{"LAMBDAGENT_MODEL": "my-model", "LAMBDAGENT_TENANT_BUDGET_USD": "5"}, wantErr: "LAMBDAGENT_MODEL"},
		{name: "auth", env: map[string]string{
			"LAMBDAGENT_AUTH": "jwt", "LAMBDAGENT_JWT_JWKS_URL": "https://idp.example/jwks.json", "LAMBDAGENT_JWT_ISSUER": "https://idp.example",
			"LAMBDAGENT_JWT_AUDIENCE": "app", "LAMBDAGENT_JWT_TENANT_CLAIM": "custom:tenant", "LAMBDAGENT_DEFAULT_TENANT": "ops",
			"LAMBDAGENT_OPS_AUTH": "admin", "LAMBDAGENT_ADMIN_TOKEN": "t", "LAMBDAGENT_REDIS_PREFIX": "p:", "REDIS_URL": "redis://h:6379",
		}, want: func(o *Options) {
			o.Metrics, o.Auth, o.DefaultTenant, o.OpsAuth, o.AdminToken, o.RedisPrefix, o.RedisURL = "prometheus", "jwt", "ops", "admin", "t", "p:", "redis://h:6379"
			o.JWT = JWT{JWKSURL: "https://idp.example/jwks.json", Issuer: "https://idp.example", Audience: "app", TenantClaim: "custom:tenant"}
		}},
		{name: "tenant header with none", env: map[string]string{"LAMBDAGENT_AUTH": "none", "LAMBDAGENT_TENANT_HEADER": "X-Tenant"},
			want: func(o *Options) { o.Metrics, o.Auth, o.TenantHeader = "prometheus", "none", "X-Tenant" }},
		{name: "tenant header with keys", env: map[string]string{"LAMBDAGENT_TENANT_HEADER": "X-Tenant"}, wantErr: "LAMBDAGENT_TENANT_HEADER"},
		{name: "drop bound thinking", env: map[string]string{"LAMBDAGENT_DROP_BOUND_THINKING": "true"},
			want: func(o *Options) { o.Metrics, o.DropBoundThinking = "prometheus", true }},
		{name: "bad drop bound thinking", env: map[string]string{"LAMBDAGENT_DROP_BOUND_THINKING": "yes"}, wantErr: "LAMBDAGENT_DROP_BOUND_THINKING"},
		{name: "bad auth", env: map[string]string{"LAMBDAGENT_AUTH": "open"}, wantErr: "LAMBDAGENT_AUTH"},
		{name: "jwt without issuer", env: map[string]string{"LAMBDAGENT_AUTH": "jwt", "LAMBDAGENT_JWT_JWKS_URL": "https://x/j", "LAMBDAGENT_JWT_AUDIENCE": "a"}, wantErr: "LAMBDAGENT_JWT_ISSUER"},
		{name: "jwks over http", env: map[string]string{"LAMBDAGENT_AUTH": "jwt", "LAMBDAGENT_JWT_JWKS_URL": "http://idp.example/j", "LAMBDAGENT_JWT_ISSUER": "i", "LAMBDAGENT_JWT_AUDIENCE": "a"}, wantErr: "LAMBDAGENT_JWT"},
		{name: "bad default tenant", env: map[string]string{"LAMBDAGENT_DEFAULT_TENANT": "a:b"}, wantErr: "LAMBDAGENT_DEFAULT_TENANT"},
		{name: "ops auth without admin token", env: map[string]string{"LAMBDAGENT_OPS_AUTH": "admin"}, wantErr: "LAMBDAGENT_ADMIN_TOKEN"},
		{name: "bad redis url hides password", env: map[string]string{"REDIS_URL": "http://user:secret@host:6379"}, wantErr: "REDIS_URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := OptionsFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error leaks a password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var want Options
			tc.want(&want)
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

// The server's write timeout, counted from a request's headers, must not
// cut a turn: by default it outlasts the queue wait and the turn timeout.
func TestWriteTimeoutOutlastsTurn(t *testing.T) {
	tests := []struct {
		o    Options
		want time.Duration
	}{
		{Options{}, 10*time.Minute + 30*time.Second + time.Minute},
		{Options{TurnTimeout: time.Hour, QueueWait: time.Minute}, time.Hour + 2*time.Minute},
		{Options{TurnTimeout: time.Hour, WriteTimeout: 5 * time.Minute}, 5 * time.Minute},
	}
	for _, tc := range tests {
		r, err := tc.o.resolve()
		if err != nil {
			t.Fatal(err)
		}
		if r.WriteTimeout != tc.want {
			t.Errorf("WriteTimeout of %+v = %v, want %v", tc.o, r.WriteTimeout, tc.want)
		}
	}
}

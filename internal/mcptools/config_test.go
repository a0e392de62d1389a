package mcptools

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testEnv is the environment the config tests expand from.
var testEnv = map[string]string{
	"TOKEN":   "tok-123456789",
	"HOST":    "mcp.example.com",
	"API_KEY": "key-abcdefgh",
	"EMPTY":   "",
}

func lookupTestEnv(k string) (string, bool) {
	v, ok := testEnv[k]
	return v, ok
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name, json string
		want       map[string]ServerConfig
	}{
		{
			name: "claude desktop stdio",
			json: `{"mcpServers": {"files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"], "env": {"KEY": "${API_KEY}"}}}, "globalShortcut": "Ctrl+Space"}`,
			want: map[string]ServerConfig{"files": {
				Name: "files", Type: TypeStdio, Command: "npx",
				Args: []string{"-y", "@modelcontextprotocol/server-filesystem", "/tmp"},
				Env:  map[string]string{"KEY": "key-abcdefgh"},
			}},
		},
		{
			name: "claude code http with our extensions",
			json: `{"mcpServers": {"remote": {"type": "http", "url": "https://${HOST}/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}, "allowedTools": ["search", "fetch"], "timeout": "30s"}}}`,
			want: map[string]ServerConfig{"remote": {
				Name: "remote", Type: TypeHTTP, URL: "https://mcp.example.com/mcp",
				Headers:      map[string]string{"Authorization": "Bearer tok-123456789"},
				AllowedTools: []string{"search", "fetch"},
				Timeout:      30 * time.Second,
			}},
		},
		{
			name: "url without type is streamable http",
			json: `{"mcpServers": {"r": {"url": "http://localhost:8080/mcp"}}}`,
			want: map[string]ServerConfig{"r": {Name: "r", Type: TypeHTTP, URL: "http://localhost:8080/mcp"}},
		},
		{
			name: "type stdio, defaults, empty allow-list",
			json: `{"mcpServers": {"s": {"type": "stdio", "command": "${MISSING:-server}", "args": ["${EMPTY:-fallback}", "$HOME", "${EMPTY}"], "allowedTools": []}}}`,
			want: map[string]ServerConfig{"s": {Name: "s", Type: TypeStdio, Command: "server", Args: []string{"fallback", "$HOME", ""}, AllowedTools: []string{}}},
		},
		{
			name: "no servers",
			json: `{"mcpServers": {}}`,
			want: map[string]ServerConfig{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseConfig([]byte(tc.json), lookupTestEnv)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got.Servers, cmpopts.IgnoreUnexported(ServerConfig{})); diff != "" {
				t.Errorf("servers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, json, want string
	}{
		{"not JSON", `{"mcpServers": `, "invalid JSON"},
		{"no mcpServers", `{"servers": {}}`, `no "mcpServers" object`},
		{"server not an object", `{"mcpServers": {"a": []}}`, `server "a"`},
		{"neither command nor url", `{"mcpServers": {"a": {"args": ["x"]}}}`, `needs "command" (stdio) or "url"`},
		{"both command and url", `{"mcpServers": {"a": {"command": "x", "url": "http://h/"}}}`, `both "command" and "url"`},
		{"sse", `{"mcpServers": {"a": {"type": "sse", "url": "http://h/sse"}}}`, `"sse"`},
		{"unknown type", `{"mcpServers": {"a": {"type": "websocket", "url": "ws://h/"}}}`, `unknown type "websocket"`},
		{"missing variable", `{"mcpServers": {"a": {"url": "http://h/", "headers": {"Authorization": "Bearer ${NOPE}"}}}}`, "environment variable NOPE is not set (used in headers.Authorization)"},
		{"bad url", `{"mcpServers": {"a": {"url": "ftp://${HOST}/"}}}`, `url "ftp://${HOST}/" is not an absolute http(s) URL`},
		{"timeout number", `{"mcpServers": {"a": {"command": "x", "timeout": 30}}}`, `duration string`},
		{"timeout bad", `{"mcpServers": {"a": {"command": "x", "timeout": "soon"}}}`, `timeout "soon"`},
		{"timeout negative", `{"mcpServers": {"a": {"command": "x", "timeout": "-1s"}}}`, `timeout "-1s"`},
		{"header newline", `{"mcpServers": {"a": {"url": "http://h/", "headers": {"X": "a\r\nEvil: 1"}}}}`, "line break"},
		{"header name", `{"mcpServers": {"a": {"url": "http://h/", "headers": {"Bad Name": "v"}}}}`, `invalid header name`},
		{"stdio with headers", `{"mcpServers": {"a": {"type": "stdio", "command": "x", "headers": {}}}}`, `cannot have "url" or "headers"`},
		{"http with env", `{"mcpServers": {"a": {"type": "http", "url": "http://h/", "env": {}}}}`, `cannot have "command", "args" or "env"`},
		{"empty allowed tool", `{"mcpServers": {"a": {"command": "x", "allowedTools": [""]}}}`, "empty name"},
		{"wrong field type", `{"mcpServers": {"a": {"command": "x", "args": "-v"}}}`, "args"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseConfig([]byte(tc.json), lookupTestEnv)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %q does not wrap ErrInvalidConfig", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			for _, v := range testEnv {
				if v != "" && strings.Contains(err.Error(), v) {
					t.Errorf("error %q contains the value of an environment variable", err)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	t.Setenv("MCPTEST_LOAD_TOKEN", "from-env")
	const config = `{"mcpServers": {"a": {"url": "http://h/mcp", "headers": {"X-Token": "${MCPTEST_LOAD_TOKEN}"}}}}`
	path := filepath.Join(t.TempDir(), "mcp.json")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{config, "  " + config, path} {
		cfg, err := Load(in)
		if err != nil {
			t.Fatalf("Load(%.20q): %v", in, err)
		}
		if got := cfg.Servers["a"].Headers["X-Token"]; got != "from-env" {
			t.Errorf("Load(%.20q): X-Token = %q", in, got)
		}
	}

	_, err := Load(filepath.Join(t.TempDir(), "missing.json"))
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("Load(missing file) = %v, want ErrInvalidConfig naming the file", err)
	}
	_, err = Load(`{"mcpServers": {"a": {}}}`)
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "inline config") {
		t.Errorf("Load(bad inline) = %v", err)
	}
}

func TestServerConfigRedacted(t *testing.T) {
	cfg, err := parseConfig([]byte(`{"mcpServers": {
		"remote": {"url": "https://${HOST}/mcp?key=${API_KEY}", "headers": {"Authorization": "Bearer ${TOKEN}", "X-Literal": "literal-secret-value"}},
		"local": {"command": "server", "args": ["--key", "${API_KEY}"], "env": {"GITHUB_TOKEN": "ghp_literal_token"}}}}`), lookupTestEnv)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"tok-123456789", "key-abcdefgh", "literal-secret-value", "ghp_literal_token"}
	for name, sc := range cfg.Servers {
		var logs strings.Builder
		slog.New(slog.NewTextHandler(&logs, nil)).Info("server", "config", sc)
		printed := []string{sc.String(), fmt.Sprintf("%v %+v %#v %s", sc, sc, sc, sc), logs.String()}
		for _, p := range printed {
			for _, s := range secrets {
				if strings.Contains(p, s) {
					t.Errorf("%s: printed config %q contains secret %q", name, p, s)
				}
			}
		}
		t.Logf("%s: %s", name, logs.String())
	}
	remote := cfg.Servers["remote"]
	if got := remote.redact("Post https://mcp.example.com/mcp?key=key-abcdefgh: Bearer tok-123456789"); strings.Contains(got, "key-abcdefgh") || strings.Contains(got, "tok-123456789") {
		t.Errorf("redact left a secret: %s", got)
	}
}

package mcptools

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/lambdagent/lambdagent/internal/redact"
)

// Transport kinds, as written in a server's "type" field.
const (
	TypeStdio = "stdio"
	TypeHTTP  = "http" // Streamable HTTP
	// TypeInProcess is a go-sdk server in this process (ServerConfig.Server),
	// reached over the SDK's in-memory transport. It is never parsed from a
	// config file: a program adds it.
	TypeInProcess = "inprocess"
)

// A Config lists the MCP servers an agent may use. It is the "mcpServers"
// object users already write for Claude Desktop and Claude Code.
type Config struct {
	// Servers maps a server's name to its settings.
	Servers map[string]ServerConfig
}

// A ServerConfig says how to reach one MCP server.
//
// Its values are already expanded: they may hold secrets taken from the
// environment. Its String and LogValue methods redact them; print it only
// through those.
type ServerConfig struct {
	// Name is the key of the server in "mcpServers".
	Name string
	// Type is TypeStdio, TypeHTTP or TypeInProcess.
	Type string

	// Server is the in-process server of TypeInProcess. Each connection
	// (the first, and one after a failure) connects a new server session
	// to it.
	Server *mcp.Server

	// Command and Args start a stdio server.
	Command string
	Args    []string
	// Env is added to the small environment every stdio server inherits
	// (see [Open]).
	Env map[string]string

	// URL is the endpoint of a Streamable HTTP server.
	URL string
	// Headers are sent with every request to an HTTP server.
	Headers map[string]string

	// AllowedTools, if non-nil, lists the only tools of this server Claude
	// sees and may call, by their MCP names.
	AllowedTools []string
	// Timeout bounds each tool call. Zero means Options.CallTimeout.
	Timeout time.Duration

	// secrets are substrings to cut from anything we print: header and
	// env values and every value taken from the environment.
	secrets redact.Set
}

// rawServer is a server entry as written in JSON.
type rawServer struct {
	Type         string            `json:"type"`
	Command      string            `json:"command"`
	Args         []string          `json:"args"`
	Env          map[string]string `json:"env"`
	URL          string            `json:"url"`
	Headers      map[string]string `json:"headers"`
	AllowedTools []string          `json:"allowedTools"`
	Timeout      json.RawMessage   `json:"timeout"`
}

// ParseConfig parses a Claude Desktop / Claude Code style config:
//
//	{"mcpServers": {
//	  "files": {"command": "npx", "args": ["-y", "server"], "env": {"KEY": "${KEY}"}},
//	  "remote": {"type": "http", "url": "https://example.com/mcp",
//	             "headers": {"Authorization": "Bearer ${TOKEN}"},
//	             "allowedTools": ["search"], "timeout": "30s"}}}
//
// A server with a "url" and no "type" is a Streamable HTTP server; one with a
// "command" is a stdio server. ${VAR} and ${VAR:-default} in command, args,
// env, url and headers expand from the process environment; a variable that
// is unset and has no default is an error naming it. Other keys are ignored,
// so files written for other hosts parse. Errors wrap [ErrInvalidConfig] and
// never contain expanded values.
func ParseConfig(data []byte) (Config, error) {
	return parseConfig(data, os.LookupEnv)
}

// Load reads a config from pathOrJSON: inline JSON if it starts with "{",
// else the path of a file holding it. This is the form of the
// LAMBDAGENT_MCP_CONFIG variable.
func Load(pathOrJSON string) (Config, error) {
	s := strings.TrimSpace(pathOrJSON)
	if strings.HasPrefix(s, "{") {
		cfg, err := ParseConfig([]byte(s))
		if err != nil {
			return Config{}, fmt.Errorf("inline config: %w", err)
		}
		return cfg, nil
	}
	data, err := os.ReadFile(s)
	if err != nil {
		return Config{}, fmt.Errorf("%w: read %s: %w", ErrInvalidConfig, s, err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config file %s: %w", s, err)
	}
	return cfg, nil
}

func parseConfig(data []byte, lookup func(string) (string, bool)) (Config, error) {
	var top struct {
		Servers map[string]json.RawMessage `json:"mcpServers"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalidConfig, jsonError(err))
	}
	if top.Servers == nil {
		return Config{}, fmt.Errorf(`%w: no "mcpServers" object`, ErrInvalidConfig)
	}
	cfg := Config{Servers: make(map[string]ServerConfig, len(top.Servers))}
	for _, name := range sortedKeys(top.Servers) {
		sc, err := parseServer(name, top.Servers[name], lookup)
		if err != nil {
			return Config{}, fmt.Errorf("%w: server %q: %v", ErrInvalidConfig, name, err)
		}
		cfg.Servers[name] = sc
	}
	return cfg, nil
}

func parseServer(name string, data json.RawMessage, lookup func(string) (string, bool)) (ServerConfig, error) {
	if name == "" {
		return ServerConfig{}, fmt.Errorf("empty server name")
	}
	var raw rawServer
	if err := json.Unmarshal(data, &raw); err != nil {
		return ServerConfig{}, jsonError(err)
	}
	// "allowedTools": null is as good as absent; [] allows nothing.
	sc := ServerConfig{Name: name, AllowedTools: raw.AllowedTools}

	switch strings.ToLower(raw.Type) {
	case "":
		switch {
		case raw.Command != "" && raw.URL != "":
			return ServerConfig{}, fmt.Errorf(`has both "command" and "url"; set "type"`)
		case raw.Command != "":
			sc.Type = TypeStdio
		case raw.URL != "":
			sc.Type = TypeHTTP
		default:
			return ServerConfig{}, fmt.Errorf(`needs "command" (stdio) or "url" (Streamable HTTP)`)
		}
	case "stdio":
		sc.Type = TypeStdio
	case "http", "streamable-http", "streamablehttp", "streamable_http":
		sc.Type = TypeHTTP
	case "sse":
		return ServerConfig{}, fmt.Errorf(`type "sse" (the deprecated HTTP+SSE transport) is not supported; use Streamable HTTP ("type": "http")`)
	default:
		return ServerConfig{}, fmt.Errorf(`unknown type %q; want "stdio" or "http"`, raw.Type)
	}

	x := expander{lookup: lookup}
	switch sc.Type {
	case TypeStdio:
		if raw.Command == "" {
			return ServerConfig{}, fmt.Errorf(`stdio server needs "command"`)
		}
		if raw.URL != "" || raw.Headers != nil {
			return ServerConfig{}, fmt.Errorf(`stdio server cannot have "url" or "headers"`)
		}
		sc.Command = x.expand(raw.Command, "command")
		for i, a := range raw.Args {
			sc.Args = append(sc.Args, x.expand(a, fmt.Sprintf("args[%d]", i)))
		}
		if raw.Env != nil {
			sc.Env = make(map[string]string, len(raw.Env))
			for _, k := range sortedKeys(raw.Env) {
				if k == "" || strings.ContainsAny(k, "=\x00") {
					return ServerConfig{}, fmt.Errorf("invalid env name %q", k)
				}
				v := x.expand(raw.Env[k], "env."+k)
				sc.Env[k] = v
				x.secret(v)
			}
		}
	case TypeHTTP:
		if raw.URL == "" {
			return ServerConfig{}, fmt.Errorf(`http server needs "url"`)
		}
		if raw.Command != "" || raw.Args != nil || raw.Env != nil {
			return ServerConfig{}, fmt.Errorf(`http server cannot have "command", "args" or "env"`)
		}
		sc.URL = x.expand(raw.URL, "url")
		if raw.Headers != nil {
			sc.Headers = make(map[string]string, len(raw.Headers))
			for _, k := range sortedKeys(raw.Headers) {
				if !validHeaderName(k) {
					return ServerConfig{}, fmt.Errorf("invalid header name %q", k)
				}
				v := x.expand(raw.Headers[k], "headers."+k)
				if strings.ContainsAny(v, "\r\n\x00") {
					return ServerConfig{}, fmt.Errorf("header %s: value contains a line break or NUL", k)
				}
				sc.Headers[k] = v
				x.secrets.AddHeader(v) // and the token of "Bearer <token>"
			}
		}
	}
	if x.err != nil {
		return ServerConfig{}, x.err
	}
	if sc.Type == TypeHTTP {
		// Report the URL as written: once expanded it may hold a secret.
		u, err := url.Parse(sc.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return ServerConfig{}, fmt.Errorf("url %q is not an absolute http(s) URL", raw.URL)
		}
	}

	if len(raw.Timeout) > 0 && string(raw.Timeout) != "null" {
		var s string
		if err := json.Unmarshal(raw.Timeout, &s); err != nil {
			return ServerConfig{}, fmt.Errorf(`timeout must be a duration string such as "30s"`)
		}
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return ServerConfig{}, fmt.Errorf(`timeout %q is not a positive duration such as "30s"`, s)
		}
		sc.Timeout = d
	}
	for _, t := range sc.AllowedTools {
		if t == "" {
			return ServerConfig{}, fmt.Errorf(`"allowedTools" has an empty name`)
		}
	}
	sc.secrets = x.secrets
	return sc, nil
}

// varRef matches ${NAME} and ${NAME:-default}.
var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// An expander expands ${VAR} references, remembering the first missing
// variable and every value it substituted.
type expander struct {
	lookup  func(string) (string, bool)
	err     error
	secrets redact.Set
}

func (x *expander) expand(s, where string) string {
	return varRef.ReplaceAllStringFunc(s, func(ref string) string {
		m := varRef.FindStringSubmatch(ref)
		name, def := m[1], m[2]
		v, ok := x.lookup(name)
		if def != "" && v == "" {
			// Shell semantics: the default applies to unset or empty.
			return def[len(":-"):]
		}
		if !ok {
			if x.err == nil {
				x.err = fmt.Errorf("environment variable %s is not set (used in %s)", name, where)
			}
			return ""
		}
		x.secret(v)
		return v
	})
}

func (x *expander) secret(v string) { x.secrets.Add(v) }

// redact replaces every secret of the server in s, and hides the user
// information of URLs.
func (c *ServerConfig) redact(s string) string { return c.secrets.String(s) }

// String describes the server without header values, env values or values
// taken from the environment.
func (c ServerConfig) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s", c.Name, c.Type)
	switch c.Type {
	case TypeStdio:
		fmt.Fprintf(&b, ": %s", c.redact(strings.Join(append([]string{c.Command}, c.Args...), " ")))
		if len(c.Env) > 0 {
			fmt.Fprintf(&b, ", env %s", strings.Join(sortedKeys(c.Env), ","))
		}
	case TypeHTTP:
		fmt.Fprintf(&b, ": %s", c.redact(c.URL))
		if len(c.Headers) > 0 {
			fmt.Fprintf(&b, ", headers %s", strings.Join(sortedKeys(c.Headers), ","))
		}
	}
	b.WriteString(")")
	return b.String()
}

// GoString is String, so that %#v does not print secrets either.
func (c ServerConfig) GoString() string { return c.String() }

// LogValue implements [slog.LogValuer] with secrets redacted.
func (c ServerConfig) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("name", c.Name), slog.String("type", c.Type)}
	switch c.Type {
	case TypeStdio:
		attrs = append(attrs, slog.String("command", c.redact(c.Command)))
		if len(c.Env) > 0 {
			attrs = append(attrs, slog.Any("env", sortedKeys(c.Env)))
		}
	case TypeHTTP:
		attrs = append(attrs, slog.String("url", c.redact(c.URL)))
		if len(c.Headers) > 0 {
			attrs = append(attrs, slog.Any("headers", sortedKeys(c.Headers)))
		}
	}
	return slog.GroupValue(attrs...)
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		// RFC 9110 token characters.
		if r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// jsonError drops the parts of a decoding error that could quote input.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Errorf("%s: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("want %s, got JSON %s", te.Type, te.Value)
	}
	return fmt.Errorf("invalid JSON: %v", err)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

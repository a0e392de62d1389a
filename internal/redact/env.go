package redact

import (
	"net/url"
	"strings"
)

// EnvNames are the environment variables whose values are secret, or hold
// a secret (a URL's password, a header's value). [Env] reads them; keep
// this list in step with the README's Secrets paragraph.
var EnvNames = []string{
	"ANTHROPIC_API_KEY",
	"ANTHROPIC_BASE_URL", // may carry user information
	"REDIS_URL",
	"LAMBDAGENT_ADMIN_TOKEN",
	"LAMBDAGENT_API_KEY",          // the key load and chat send
	"OTEL_EXPORTER_OTLP_ENDPOINT", // may carry user information
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_HEADERS", // "k=v,k2=v2": each value
	"OTEL_EXPORTER_OTLP_TRACES_HEADERS",
}

// Env returns a Set of the secrets held by the variables in [EnvNames],
// read through getenv (os.Getenv).
func Env(getenv func(string) string) Set {
	var s Set
	for _, name := range EnvNames {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			continue
		}
		if !strings.HasSuffix(name, "_HEADERS") {
			s.Add(v)
			continue
		}
		for kv := range strings.SplitSeq(v, ",") {
			_, val, _ := strings.Cut(kv, "=")
			s.AddHeader(strings.TrimSpace(val))
			if u, err := url.QueryUnescape(val); err == nil {
				s.AddHeader(strings.TrimSpace(u))
			}
		}
	}
	return s
}

// AddHeader adds a header value and each of its words, so that the token
// of "Bearer <token>" is cut when printed alone.
func (s *Set) AddHeader(v string) {
	s.add(v)
	for f := range strings.FieldsSeq(v) {
		s.add(f)
	}
}

package mcptools

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fuzzSecret is what every variable expands to in FuzzParseConfig; no error
// or printed config may contain it.
const fuzzSecret = "FUZZ-SECRET-c0ffee"

// FuzzParseConfig checks that no input makes the parser panic, accept a
// server it cannot use, or print an expanded value. Seeds of our own are in
// testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"mcpServers": {"a": {"command": "x", "args": ["${A}"], "env": {"K": "${B:-d}"}}}}`))
	f.Add([]byte(`{"mcpServers": {"b": {"url": "https://h/${P}", "headers": {"Authorization": "Bearer ${T}"}, "timeout": "5s"}}}`))
	lookup := func(string) (string, bool) { return fuzzSecret, true }
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Contains(string(data), fuzzSecret[:8]) {
			t.Skip() // the input itself holds the secret
		}
		cfg, err := parseConfig(data, lookup)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %q does not wrap ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Errorf("error %q contains an expanded value", err)
			}
			return
		}
		for name, sc := range cfg.Servers {
			if sc.Name != name || name == "" {
				t.Errorf("server %q has Name %q", name, sc.Name)
			}
			switch sc.Type {
			case TypeStdio:
				if sc.Command == "" && !strings.Contains(string(data), "${") {
					t.Errorf("stdio server %q without command", name)
				}
			case TypeHTTP:
				if sc.URL == "" {
					t.Errorf("http server %q without url", name)
				}
			default:
				t.Errorf("server %q has type %q", name, sc.Type)
			}
			if sc.Timeout < 0 {
				t.Errorf("server %q has timeout %v", name, sc.Timeout)
			}
			if p := fmt.Sprint(sc) + sc.LogValue().String(); strings.Contains(p, fuzzSecret) {
				t.Errorf("printed config %q contains an expanded value", p)
			}
		}
	})
}

package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// A process that runs turns sizes its garbage collector to the memory it
// is given (internal/memlimit) and says so at startup; an operator's GOGC
// wins; a bad size is a configuration error naming the variable.
func TestMemoryLimit(t *testing.T) {
	db := func() string { return "LAMBDAGENT_DB=" + filepath.Join(t.TempDir(), "dev.db") }
	p := start(t, "dev", db(), "LAMBDAGENT_LOG_LEVEL=info", "LAMBDAGENT_MEMORY=256MiB")
	if out := p.out.String(); !strings.Contains(out, "memory limit 192 MiB (75% of 256 MiB from LAMBDAGENT_MEMORY), GOGC off") {
		t.Errorf("dev with LAMBDAGENT_MEMORY=256MiB did not say it set the limit; output:\n%s", out)
	}
	p = start(t, "dev", db(), "LAMBDAGENT_LOG_LEVEL=info", "LAMBDAGENT_MEMORY=256MiB", "GOGC=200")
	if out := p.out.String(); !strings.Contains(out, "left as configured: GOGC or GOMEMLIMIT is set") {
		t.Errorf("dev with GOGC=200 did not leave the collector alone; output:\n%s", out)
	}

	var out bytes.Buffer
	err := run(t.Context(), []string{"serve"}, func(k string) string {
		return map[string]string{"ANTHROPIC_API_KEY": "x", "LAMBDAGENT_MEMORY": "lots"}[k]
	}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "LAMBDAGENT_MEMORY") || !strings.Contains(err.Error(), `"lots"`) {
		t.Errorf("serve with LAMBDAGENT_MEMORY=lots: %v, want an error naming the variable and the value", err)
	}
}

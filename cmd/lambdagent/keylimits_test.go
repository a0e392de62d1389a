package main

import (
	"strings"
	"testing"

	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestKeysCreateLimits checks that `keys create -rpm -itpm -otpm` stores
// the key's own limits, as its key file line shows.
func TestKeysCreateLimits(t *testing.T) {
	redisAddr := redistest.Start(t)
	store := []string{"REDIS_URL=" + redistest.URL(redisAddr), "LAMBDAGENT_REDIS_PREFIX=" + redistest.Prefix(t)}
	out := keys(t, store, "create", "-tenant", "acme", "-rpm", "2", "-itpm", "300", "-otpm", "40", "-file")
	if want := `"limits":{"rpm":2,"itpm":300,"otpm":40}`; !strings.Contains(out, want) {
		t.Errorf("keys create -rpm 2 -itpm 300 -otpm 40 -file printed\n%s\nwant it to contain %s", out, want)
	}
}

package telemetry_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/telemetry"
)

// The tenant label takes at most MaxTenantLabels values per process;
// later tenants, and names that are not tenants, are counted as "other",
// and an invalid name is never written to a log line or a metric.
func TestTenantLabelBounded(t *testing.T) {
	f := newFixture(t, fixtureConfig{tel: telemetry.Config{TenantLabel: true, Prometheus: true, MaxTenantLabels: 3}})
	huge := strings.Repeat("x", 300<<10)
	tenants := []string{"", "t1", "t2", "t3", "t1", "t4", "a/b", huge}
	for i, tenant := range tenants {
		_, _ = f.turner.Run(t.Context(), agent.Request{Tenant: tenant, SessionID: "s" + string(rune('a'+i)), Message: "hi"})
	}

	var got []string
	label := regexp.MustCompile(`^lambdagent_turns_total\{.*tenant="([^"]*)"`)
	for k := range scrape(t, f.tel.MetricsHandler()) {
		if m := label.FindStringSubmatch(k); m != nil && !slices.Contains(got, m[1]) {
			got = append(got, m[1])
		}
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"default", "other", "t1", "t2"}, got); diff != "" {
		t.Errorf("tenant label values (-want +got):\n%s", diff)
	}

	var logged []string
	for _, l := range f.turnLines(t) {
		logged = append(logged, l["tenant"].(string))
	}
	if diff := cmp.Diff([]string{"default", "t1", "t2", "t3", "t1", "t4", "invalid", "invalid"}, logged); diff != "" {
		t.Errorf("tenants of the turn log lines (-want +got):\n%s", diff)
	}
	if strings.Contains(f.logs.String(), huge[:1000]) || strings.Contains(f.emf.String(), huge[:1000]) {
		t.Error("the invalid tenant name was written out")
	}
}

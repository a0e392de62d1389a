package telemetry

import (
	"context"
	"sync"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/auth"
)

// DefaultMaxTenantLabels is the default of Config.MaxTenantLabels.
const DefaultMaxTenantLabels = 1000

// Tenant values that are not a tenant's own name.
const (
	// OtherTenant labels the metrics of the tenants seen after
	// Config.MaxTenantLabels others. A tenant really named "other"
	// shares its series.
	OtherTenant = "other"
	// InvalidTenant stands, in logs, spans and metrics, for a tenant name
	// that fails auth.ValidTenant: the turn is refused (the agent answers
	// ErrBadRequest), and the name, which may be anything of any length,
	// is not written anywhere.
	InvalidTenant = "invalid"
)

// tenantName is the tenant of a turn as logs and spans show it: the
// default tenant for none, InvalidTenant for a name that is not valid.
func tenantName(tenant string) string {
	if tenant == "" {
		return auth.DefaultTenant
	}
	if auth.ValidTenant(tenant) != nil {
		return InvalidTenant
	}
	return tenant
}

// tenantOf is tenantName of the turn ctx belongs to.
func tenantOf(ctx context.Context) string {
	r, _ := agent.RequestFromContext(ctx)
	return tenantName(r.Tenant)
}

// tenantLabels bounds the tenant label's values: each series costs memory
// in the registry (and a custom metric in CloudWatch), and tenants are
// as many as the keys an operator creates. The first max tenants seen by
// the process keep their name; later ones, and invalid names, are
// OtherTenant. The bound is per process: a fleet of Lambda instances
// may show more names in total.
type tenantLabels struct {
	max int
	// mu guards seen.
	mu   sync.Mutex
	seen map[string]struct{}
}

func newTenantLabels(max int) *tenantLabels {
	if max <= 0 {
		max = DefaultMaxTenantLabels
	}
	return &tenantLabels{max: max, seen: make(map[string]struct{})}
}

// label returns the label value of name, a [tenantName].
func (l *tenantLabels) label(name string) string {
	if name == InvalidTenant {
		return OtherTenant
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[name]; ok {
		return name
	}
	if len(l.seen) >= l.max {
		return OtherTenant
	}
	l.seen[name] = struct{}{}
	return name
}

package lambdagent

import (
	"context"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/pricing"
)

// pricedModel fills each reply's Usage.CostUSD from the price table when
// nothing upstream priced it (without Redis there is no rate limiter to do
// it), so every turn answer and session reports its cost (see #6).
type pricedModel struct {
	next   agent.Model
	model  string
	prices pricing.Table
}

func (p pricedModel) Create(ctx context.Context, body []byte) (*claude.Reply, error) {
	r, err := p.next.Create(ctx, body)
	if err == nil && r.Usage.CostUSD == 0 {
		model := r.Model
		if model == "" {
			model = p.model
		}
		r.Usage.CostUSD = p.prices.Cost(model, r.Usage)
	}
	return r, err
}

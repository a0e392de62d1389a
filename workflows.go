package lambdagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/workflow"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
	"github.com/lambdagent/lambdagent/internal/workflow/redisrun"
)

// openWorkflows loads Options.Workflows and builds the engine that runs
// them, or returns nil when none are configured. A bad definition stops
// the start, every problem named (file, step, what), before any run.
// Tool steps are checked against the tools the MCP servers offer.
func openWorkflows(o resolved, rdb *redis.Client, tools agent.Tools, turns engine.Turner) (*engine.Engine, error) {
	if o.Workflows == "" {
		return nil, nil
	}
	if rdb == nil {
		// The embedded file store keeps sessions only (see #16).
		return nil, errors.New("option Workflows (LAMBDAGENT_WORKFLOWS) keeps its runs in Redis: set RedisURL (REDIS_URL)")
	}
	var opts workflow.ValidateOptions
	known := map[string]bool{}
	if tools != nil {
		var defs []struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(tools.Definitions(), &defs)
		for _, d := range defs {
			known[d.Name] = true
		}
	}
	opts.Tools = func(name string) bool { return known[name] }
	defs, err := workflow.Load(o.Workflows, opts)
	if err != nil {
		return nil, fmt.Errorf("Workflows (LAMBDAGENT_WORKFLOWS): %w", err)
	}
	store, err := redisrun.New(rdb, redisrun.Config{Prefix: o.RedisPrefix, IdempotencyTTL: o.IdempotencyTTL})
	if err != nil {
		return nil, err
	}
	e, err := engine.New(engine.Config{Store: store, Definitions: defs, Tools: tools, Turns: turns, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	o.Logger.Info("workflows loaded", "names", e.Workflows(), "workers", o.WorkflowWorkers)
	return e, nil
}

// runWorkflows advances runs in the background until ctx ends.
func (r *Runtime) runWorkflows(ctx context.Context) (wait func()) {
	if r.workflows == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.workflows.RunWorkers(ctx, r.opts.WorkflowWorkers)
	}()
	return func() { <-done }
}

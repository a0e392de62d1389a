package lambdagent

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/workflow"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
	"github.com/lambdagent/lambdagent/internal/workflow/filerun"
	"github.com/lambdagent/lambdagent/internal/workflow/redisrun"
)

// openWorkflows loads Options.Workflows and builds the engine that runs
// them, or returns nil when none are configured. A bad definition stops
// the start, every problem named (file, step, what), before any run.
// Tool steps are checked against the tools the MCP servers offer.
//
// Runs are kept in Redis when RedisURL is set, else in a file next to
// DBPath (one process, as the session file). closer, when not nil,
// closes that file.
func openWorkflows(o resolved, rdb redis.UniversalClient, tools agent.Tools, turns engine.Turner, metrics engine.Counter) (e *engine.Engine, closer func() error, err error) {
	if o.Workflows == "" {
		return nil, nil, nil
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
		return nil, nil, fmt.Errorf("option Workflows (LAMBDAGENT_WORKFLOWS): %w", err)
	}
	var store engine.Store
	if rdb != nil {
		// A run popped by a worker that died before leasing it is queued
		// again after twice the lease's life.
		requeue := 2 * cmp.Or(o.LeaseTTL, engine.DefaultLeaseTTL)
		if store, err = redisrun.New(rdb, redisrun.Config{Prefix: o.RedisPrefix, IdempotencyTTL: o.IdempotencyTTL, Requeue: requeue}); err != nil {
			return nil, nil, err
		}
	} else {
		// Next to the session file, in a file of its own: one process.
		path := strings.TrimSuffix(o.DBPath, filepath.Ext(o.DBPath)) + ".workflows.db"
		fs, err := filerun.Open(path)
		if err != nil {
			return nil, nil, err
		}
		closer, store = fs.Close, fs
		o.Logger.Info("workflows: embedded file", "path", path)
	}
	// The run's lease lives as long as a session's (LAMBDAGENT_LEASE_TTL):
	// both bound how long a dead process blocks what it held.
	e, err = engine.New(engine.Config{Store: store, Definitions: defs, Tools: tools, Turns: turns, Logger: o.Logger,
		LeaseTTL: o.LeaseTTL, Metrics: metrics})
	if err != nil {
		if closer != nil {
			closer()
		}
		return nil, nil, err
	}
	o.Logger.Info("workflows loaded", "names", e.Workflows(), "workers", o.WorkflowWorkers)
	return e, closer, nil
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

package redisconn

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterStateReload bounds how stale a cluster client's slot map may get
// while commands run; go-redis's default is a minute.
const clusterStateReload = 5 * time.Second

// reloadOnNetError is a hook that asks a cluster client for a fresh slot
// map when a command fails on the network. go-redis reloads the map on a
// MOVED reply, but a master that died answers nothing: its slots stay
// mapped to it, every command on them fails with "connection refused",
// and a promoted replica is found only at the next periodic reload (a
// minute by default). The reload is lazy and deduplicated by go-redis, so
// a burst of errors costs one CLUSTER SLOTS.
type reloadOnNetError struct{ c *redis.ClusterClient }

func (h reloadOnNetError) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h reloadOnNetError) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		h.check(ctx, err)
		return err
	}
}

func (h reloadOnNetError) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		h.check(ctx, err)
		return err
	}
}

func (h reloadOnNetError) check(ctx context.Context, err error) {
	var reply redis.Error
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.As(err, &reply) && !redis.HasErrorPrefix(err, "CLUSTERDOWN"):
		// A reply: the node is up (MOVED is go-redis's own business).
	default: // refused, reset, EOF, a timeout: the node may be gone
		h.c.ReloadState(ctx)
	}
}

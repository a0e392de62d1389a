package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/session"
)

// DefaultWaitTimeout bounds a commit's WAIT when Config.WaitReplicas is
// set and Config.WaitTimeout is zero.
const DefaultWaitTimeout = 500 * time.Millisecond

// A NotReplicatedError reports a commit that Redis applied but fewer
// replicas than Config.WaitReplicas acknowledged in time: a failover now
// could lose it, so the turn is not acknowledged. A repeat with the same
// idempotency key gets the stored answer if the commit survived, or runs
// again if it did not.
type NotReplicatedError struct {
	Want, Got int
	Timeout   time.Duration
}

func (e *NotReplicatedError) Error() string {
	return fmt.Sprintf("committed, but %d of %d replicas acknowledged it within %v", e.Got, e.Want, e.Timeout)
}

// runCommit runs the commit script and, with WaitReplicas set, Redis's
// WAIT on the same connection: WAIT counts the replicas that have every
// write its connection sent, so both must go over one connection to the
// master of the session's slot. That costs a second round trip per turn
// (see the README's Scale-out).
//
// Without WaitReplicas the catalog's writes ride in the commit's
// pipeline; with it they follow the acknowledged commit.
func (s *Store) runCommit(ctx context.Context, c session.Commit, ks []string, args []any) ([]any, error) {
	if s.waitReplicas == 0 {
		return s.commit(ctx, c, ks, args)
	}
	node, err := s.masterFor(ctx, ks[0])
	if err != nil {
		return nil, err
	}
	conn := node.Conn()
	defer conn.Close()
	res, err := commitScript.Run(ctx, conn, ks, args...).Slice()
	if redis.HasErrorPrefix(err, "MOVED") || redis.HasErrorPrefix(err, "ASK") {
		// The slot moved between the lookup and the commit (a failover,
		// a resharding): nothing was written, and a retry will find the
		// new master.
		return nil, fmt.Errorf("the session's slot moved (%s)", err.Error())
	}
	if err != nil || status(res) != "ok" {
		return res, err
	}
	n, err := conn.Wait(ctx, s.waitReplicas, s.waitTimeout).Result()
	if err != nil {
		return nil, fmt.Errorf("wait for %d replicas: %s", s.waitReplicas, err.Error())
	}
	if int(n) < s.waitReplicas {
		return nil, &NotReplicatedError{Want: s.waitReplicas, Got: int(n), Timeout: s.waitTimeout}
	}
	pipe := s.rdb.Pipeline()
	record := s.catalogWrites(ctx, pipe, c)
	_, _ = pipe.Exec(ctx)
	record(ctx)
	return res, nil
}

// masterFor returns a client of the one node that serves key: the client
// itself, or the cluster master of key's slot.
func (s *Store) masterFor(ctx context.Context, key string) (*redis.Client, error) {
	switch c := s.rdb.(type) {
	case *redis.Client:
		return c, nil
	case *redis.ClusterClient:
		node, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("find the master of %s: %s", key, err.Error())
		}
		return node, nil
	}
	return nil, errors.New("redisstore: WaitReplicas needs a standalone or a cluster client")
}

package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvCluster names the environment variable that makes [Start] hand out
// a shared local Redis Cluster (3 masters, 3 replicas) instead of one
// node: REDISTEST_CLUSTER=1 go test ./internal/ratelimit/ runs the
// package's tests on a cluster.
const EnvCluster = "REDISTEST_CLUSTER"

// clusterNodeTimeout is cluster-node-timeout: how long a master may be
// silent before its replica takes over. Short, so failover tests are.
const clusterNodeTimeout = 1000 * time.Millisecond

// A Cluster is a local Redis Cluster of 3 masters with one replica each,
// every node a redis-server child of the test binary. Its methods are
// safe for concurrent use.
type Cluster struct {
	// Addrs are the nodes' host:port, masters first as created.
	Addrs []string

	mu sync.Mutex
	// procs are the running nodes by address; Kill removes one.
	procs map[string]*proc
}

// URL returns the cluster as REDIS_URL names one:
// redis://host1:port1,host2:port2,…
func (c *Cluster) URL() string { return "redis://" + strings.Join(c.Addrs, ",") }

// StartCluster starts a cluster for t alone and stops it when t ends.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster(t.TempDir())
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(c.stop)
	return c
}

func startCluster(dir string) (*Cluster, error) {
	c := &Cluster{procs: map[string]*proc{}}
	for range 6 {
		p, err := startClusterNode(dir)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.Addrs = append(c.Addrs, p.addr)
		c.procs[p.addr] = p
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		c.stop()
		return nil, errors.New("redis-cli not found on PATH; .ci/run installs it with redis-server")
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		c.stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	if err := c.wait(30*time.Second, true); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func startClusterNode(dir string) (*proc, error) {
	var err error
	for range 3 {
		var port, bus string
		if port, err = freePort(); err != nil {
			return nil, err
		}
		if bus, err = freePort(); err != nil {
			return nil, err
		}
		var p *proc
		p, err = startProcWith(dir, port, []string{"--port", port,
			"--cluster-enabled", "yes",
			"--cluster-port", bus,
			"--cluster-config-file", "nodes-" + port + ".conf",
			"--cluster-node-timeout", fmt.Sprint(clusterNodeTimeout.Milliseconds()),
			// A replica that lost its master for a while may still
			// take over: the tests kill masters on purpose.
			"--cluster-replica-validity-factor", "0",
		}, ping)
		if err == nil {
			return p, nil
		}
	}
	return nil, err
}

func (c *Cluster) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for a, p := range c.procs {
		p.kill()
		delete(c.procs, a)
	}
}

// Kill stops the node at addr with SIGKILL, as a crash would.
func (c *Cluster) Kill(addr string) {
	c.mu.Lock()
	p := c.procs[addr]
	delete(c.procs, addr)
	c.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// MasterOf returns the address of the master that serves key now.
func (c *Cluster) MasterOf(ctx context.Context, key string) (string, error) {
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.live()})
	defer rdb.Close()
	node, err := rdb.MasterForKey(ctx, key)
	if err != nil {
		return "", err
	}
	return node.Options().Addr, nil
}

func (c *Cluster) live() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, a := range c.Addrs {
		if c.procs[a] != nil {
			out = append(out, a)
		}
	}
	return out
}

// WaitHealthy waits until every running node says cluster_state:ok and
// every slot has a master that runs, for at most d.
func (c *Cluster) WaitHealthy(d time.Duration) error { return c.wait(d, false) }

// wait waits until the cluster is healthy and, with replicas, until every
// master has an online replica (which has its first full copy).
func (c *Cluster) wait(d time.Duration, replicas bool) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		if last = c.healthy(replicas); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("redistest: cluster not healthy after %v: %w", d, last)
}

func (c *Cluster) healthy(replicas bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	live := c.live()
	running := map[string]bool{}
	for _, a := range live {
		running[a] = true
	}
	for _, a := range live {
		rdb := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1})
		info, err := rdb.ClusterInfo(ctx).Result()
		var shards []redis.ClusterShard
		if err == nil {
			shards, err = rdb.ClusterShards(ctx).Result()
		}
		rdb.Close()
		if err != nil {
			return fmt.Errorf("node %s: %w", a, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("node %s: cluster_state not ok", a)
		}
		slots := 0
		for _, sh := range shards {
			master, replica := false, false
			for _, n := range sh.Nodes {
				up := running[net.JoinHostPort(n.IP, fmt.Sprint(n.Port))]
				master = master || n.Role == "master" && n.Health == "online" && up
				replica = replica || n.Role == "replica" && n.Health == "online" && up
			}
			if master {
				for _, r := range sh.Slots {
					slots += int(r.End - r.Start + 1)
				}
			}
			if replicas && len(sh.Slots) > 0 && !replica {
				return fmt.Errorf("node %s: a shard has no online replica yet", a)
			}
		}
		if slots != 16384 {
			return fmt.Errorf("node %s sees %d of 16384 slots with an online master", a, slots)
		}
	}
	return nil
}

// sharedCluster is the cluster [Start] hands out under $REDISTEST_CLUSTER.
var sharedCluster struct {
	mu   sync.Mutex
	c    *Cluster // guarded by mu
	dir  string
	refs int
}

func startSharedCluster(t testing.TB) string {
	t.Helper()
	sharedCluster.mu.Lock()
	defer sharedCluster.mu.Unlock()
	if sharedCluster.refs == 0 {
		dir, err := os.MkdirTemp("", "redistest-cluster-")
		if err != nil {
			t.Fatalf("redistest: %v", err)
		}
		c, err := startCluster(dir)
		if err != nil {
			os.RemoveAll(dir)
			t.Fatalf("redistest: %v", err)
		}
		sharedCluster.c, sharedCluster.dir = c, dir
	}
	sharedCluster.refs++
	u := sharedCluster.c.URL()
	t.Cleanup(func() {
		sharedCluster.mu.Lock()
		defer sharedCluster.mu.Unlock()
		sharedCluster.refs--
		if sharedCluster.refs == 0 {
			sharedCluster.c.stop()
			os.RemoveAll(sharedCluster.dir)
			sharedCluster.c, sharedCluster.dir = nil, ""
		}
	})
	return u
}

// Bubble runs f in a [synctest] bubble, or skips t when [Start] hands out
// a cluster ($REDISTEST_CLUSTER): go-redis's cluster client reloads its
// slot map from a goroutine of its own, which outlives f and which the
// bubble would report as a deadlock.
func Bubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	if os.Getenv(EnvCluster) != "" {
		t.Skip("redistest: a synctest bubble cannot hold go-redis's cluster client")
	}
	synctest.Test(t, f)
}

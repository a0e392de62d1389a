package main

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestChaosClusterFailover runs 12 conversations of 15 turns against 2
// `serve` processes on a local Redis Cluster (3 masters, 3 replicas) and
// SIGKILLs the master of one of the sessions in the middle (see #17).
// Until its replica is promoted (cluster-node-timeout 1 s, then an
// election) the turns of its slots must fail cleanly, 503
// store_unavailable with Retry-After (or a 409 or 504 a retry fixes),
// never a 500; afterwards every turn must succeed on the same processes,
// and the histories must hold every acknowledged turn once, in order.
//
// Replication is asynchronous: a commit the master acknowledged but had
// not yet sent to its replica is lost with it. On loopback the replica is
// microseconds behind, so this run loses nothing; the README's Scale-out
// says what LAMBDAGENT_REDIS_WAIT_REPLICAS does against it.
func TestChaosClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t)
	prefix := redistest.Prefix(t)
	sim := httptest.NewServer(claudesim.New(claudesim.Config{Latency: 10 * time.Millisecond, LatencyJitter: 20 * time.Millisecond}))
	t.Cleanup(sim.Close)
	env := []string{
		"REDIS_URL=" + c.URL(),
		"LAMBDAGENT_REDIS_PREFIX=" + prefix,
		"ANTHROPIC_API_KEY=test-key",
		"ANTHROPIC_BASE_URL=" + sim.URL,
		"LAMBDAGENT_LEASE_TTL=1s",
		"LAMBDAGENT_QUEUE_WAIT=5s",
	}
	servers := []*proc{start(t, "serve", env...), start(t, "serve", env...)}
	addrs := []string{servers[0].addr, servers[1].addr}
	l := newLoad("fo", 12, 15, func() []string { return addrs })
	began := time.Now()
	done := l.run(t, uint64(began.UnixNano()))

	waitUntil(t, "40 turns answered before the failover", done, func() bool { return l.acked.Load() >= 40 })
	victim, err := c.MasterOf(t.Context(), prefix+"{fo-00}:meta")
	if err != nil {
		t.Fatal(err)
	}
	l.setPhase("failover")
	killed := time.Now()
	c.Kill(victim)
	if err := c.WaitHealthy(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	promoted := time.Since(killed)
	l.setPhase("after")
	select {
	case <-done:
	case <-time.After(chaosLimit):
		t.Fatal("the load did not finish")
	}
	elapsed := time.Since(began)

	for _, p := range servers {
		if p.cmd.ProcessState != nil {
			t.Errorf("server %s exited: %v\n%s", p.addr, p.cmd.ProcessState, p.out)
		}
	}
	for outcome := range l.phaseOutcomes("failover") {
		switch outcome {
		case "200", "503 store_unavailable", "409 session_busy", "409 conflict", "504 timeout":
		default:
			t.Errorf("during the failover a request got %s; want 503 store_unavailable (or 409, 504)", outcome)
		}
	}
	if l.count("failover", "503 store_unavailable") == 0 {
		t.Error("no request was answered 503 during the failover: did the kill hit the load?")
	}
	if n := l.no503RetryAfter.Load(); n > 0 {
		t.Errorf("%d answers 503 had no Retry-After of at least 1 s", n)
	}
	if l.count("after", "200") == 0 {
		t.Error("no turn was answered after the replica was promoted")
	}
	tl := l.check(t, addrs[0])
	t.Logf("failover (SIGKILL a cluster master): %s; %d requests, %d answered 503 during the failover (slowest in %v), replica promoted %v after the kill, %v",
		tl, l.requests.Load(), l.count("failover", "503 store_unavailable"), l.slowest503().Round(time.Millisecond),
		promoted.Round(100*time.Millisecond), elapsed.Round(100*time.Millisecond))
	t.Logf("outcomes: %s", l.outcomes())
	tl.assert(t)
}

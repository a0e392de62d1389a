package redisrun_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/workflow/engine"
	"github.com/lambdagent/lambdagent/internal/workflow/redisrun"
)

// TestKeysAndFencing shows the key layout (a tenant's run under one hash
// tag), that a run keeps one record per step and nothing per commit, and
// that the lease fences writers.
func TestKeysAndFencing(t *testing.T) {
	ctx := t.Context()
	rdb := redistest.Client(t, redistest.Start(t))
	pre := redistest.Prefix(t)
	s, err := redisrun.New(rdb, redisrun.Config{Prefix: pre})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	id := session.Scope("acme", "run_1")
	if _, _, err := s.Create(ctx, engine.Run{ID: "run_1", StoreID: id, Tenant: "acme", Workflow: "w", Status: engine.Running, CreatedAt: now, UpdatedAt: now}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, id, "tok", time.Minute, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var busy *engine.BusyError
	if _, err := s.Acquire(ctx, id, "other", time.Minute, now.Add(time.Minute)); !errors.As(err, &busy) || busy.RetryAfter <= 0 {
		t.Errorf("second Acquire: %v", err)
	}
	// Ten commits rewriting the same step and adding one more each time.
	for i := range 10 {
		recs := []engine.StepRecord{{Key: "a", ID: "a", Status: engine.Completed, Attempts: i}, {Key: "b" + string(rune('0'+i)), ID: "b", Status: engine.Completed}}
		if err := s.Commit(ctx, id, "tok", engine.Commit{Steps: recs, Now: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(ctx, id, "other", engine.Commit{Status: engine.Failed, Now: now}); !errors.Is(err, engine.ErrLeaseLost) {
		t.Errorf("commit without the lease: %v", err)
	}
	if n := rdb.HLen(ctx, pre+"{wf}:acme/run_1:steps").Val(); n != 11 {
		t.Errorf("steps hash has %d records, want 11 (one per step, none per commit)", n)
	}
	keys, err := redistest.Keys(ctx, rdb, pre+"*")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	for i := range keys {
		keys[i] = strings.TrimPrefix(keys[i], pre)
	}
	want := []string{"{wf}:acme/run_1:lease", "{wf}:acme/run_1:run", "{wf}:acme/run_1:steps", "{wf}:active", "{wf}:ready", "{wf}:runs:acme"}
	if !slices.Equal(keys, want) {
		t.Errorf("keys = %q, want %q", keys, want)
	}
	snap, err := s.Get(ctx, id)
	if err != nil || snap.Run.Tenant != "acme" || snap.Steps["a"].Attempts != 9 {
		t.Errorf("Get = %+v, %v", snap, err)
	}
	// Another tenant's list does not show the run.
	if runs, _ := s.List(ctx, "globex", "", "", 0); len(runs) != 0 {
		t.Errorf("globex sees %d runs", len(runs))
	}
}

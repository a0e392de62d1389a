package filerun_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/workflow/engine"
	"github.com/lambdagent/lambdagent/internal/workflow/filerun"
)

// TestRestart shows what a restart keeps: the runs and their steps from
// the file, a sleeping run's timer, and a run that was being advanced
// back on the ready queue (its process died).
func TestRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "runs.db")
	s, err := filerun.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"run_a", "run_b"} {
		if _, _, err := s.Create(ctx, engine.Run{ID: id, StoreID: id, Tenant: "default", Workflow: "w", Status: engine.Running, CreatedAt: now}, ""); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		s.Next(ctx, 0)
	}
	// a sleeps until 01:00; b is cut in the middle of a step.
	if _, err := s.Acquire(ctx, "run_a", "t1", time.Minute, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	rec := engine.StepRecord{Key: "z", ID: "z", Status: engine.Sleeping}
	if err := s.Commit(ctx, "run_a", "t1", engine.Commit{Steps: []engine.StepRecord{rec}, Status: engine.Sleeping, Due: now.Add(time.Hour), Release: true, Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire(ctx, "run_b", "t2", time.Minute, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = filerun.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if id, _ := s.Next(ctx, 0); id != "run_b" {
		t.Errorf("ready after restart: %q, want run_b", id)
	}
	if id, _ := s.Next(ctx, 0); id != "" {
		t.Errorf("ready after restart: %q too", id)
	}
	if _, err := s.Acquire(ctx, "run_b", "t3", time.Minute, now.Add(2*time.Hour)); err != nil {
		t.Errorf("run_b's old lease survived the restart: %v", err)
	}
	if n, _ := s.Fire(ctx, now.Add(59*time.Minute)); n != 0 {
		t.Errorf("fired %d before a's timer", n)
	}
	if n, _ := s.Fire(ctx, now.Add(time.Hour)); n != 1 {
		t.Errorf("fired %d at a's timer, want 1", n)
	}
	snap, err := s.Get(ctx, "run_a")
	if err != nil || snap.Run.Status != engine.Sleeping || snap.Steps["z"].Status != engine.Sleeping {
		b, _ := json.Marshal(snap)
		t.Errorf("run_a after restart: %s, %v", b, err)
	}
}

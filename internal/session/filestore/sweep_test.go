package filestore

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/lambdagent/lambdagent/internal/session"
)

// sessionIDs lists the sessions with a bucket in the file, expired or not.
func sessionIDs(t *testing.T, s *Store) []string {
	t.Helper()
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEachBucket(func(id []byte) error {
			ids = append(ids, string(id))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func idemKeys(t *testing.T, s *Store, id string) []string {
	t.Helper()
	var keys []string
	err := s.db.View(func(tx *bolt.Tx) error {
		ib := tx.Bucket(bucketSessions).Bucket([]byte(id)).Bucket(bucketIdem)
		if ib == nil {
			return nil
		}
		return ib.ForEach(func(k, _ []byte) error {
			keys = append(keys, string(k))
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestSweep(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "sessions.db"), Config{TTL: time.Hour, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	commit := func(id, key string) {
		t.Helper()
		st, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: "t", LeaseTTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(ctx, session.Commit{ID: id, LeaseToken: "t", Version: st.Version, Turns: 1, Release: true,
			IdempotencyKey: key, RequestHash: "h", Response: []byte("r")}); err != nil {
			t.Fatal(err)
		}
	}
	commit("old", "k-old")
	commit("live", "k-1")
	if _, err := s.Begin(ctx, session.BeginRequest{ID: "abandoned", LeaseToken: "t", LeaseTTL: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	s.idemTTL = time.Millisecond // records from now on expire at once
	commit("live", "k-2")
	s.ttl = time.Millisecond
	commit("old", "")
	time.Sleep(5 * time.Millisecond)

	if diff := cmp.Diff([]string{"abandoned", "live", "old"}, sessionIDs(t, s)); diff != "" {
		t.Errorf("sessions before sweep (-want +got):\n%s", diff)
	}
	if err := s.sweep(ctx, time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"live"}, sessionIDs(t, s)); diff != "" {
		t.Errorf("sessions after sweep (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"k-1"}, idemKeys(t, s, "live")); diff != "" {
		t.Errorf("idempotency keys of a live session after sweep (-want +got):\n%s", diff)
	}
}

func TestSweepInBackground(t *testing.T) {
	ctx := t.Context()
	s, err := Open(filepath.Join(t.TempDir(), "sessions.db"), Config{TTL: time.Millisecond, SweepInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Begin(ctx, session.BeginRequest{ID: "gone", LeaseToken: "t", LeaseTTL: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(sessionIDs(t, s)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the background sweep left an expired session")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

package filestore_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
	"github.com/lambdagent/lambdagent/internal/session/storetest"
)

func TestStore(t *testing.T) {
	// bbolt lets a file be open once, so stores asked for twice by one
	// subtest (standing for two processes) are one Store.
	type key struct {
		t    *testing.T
		opts storetest.Options
	}
	var mu sync.Mutex
	stores := map[key]*filestore.Store{}
	storetest.Run(t, func(t *testing.T, opts storetest.Options) session.Store {
		mu.Lock()
		defer mu.Unlock()
		k := key{t, opts}
		if s, ok := stores[k]; ok {
			return s
		}
		s := open(t, filepath.Join(t.TempDir(), "sessions.db"), filestore.Config{TTL: opts.TTL, IdempotencyTTL: opts.IdempotencyTTL})
		stores[k] = s
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			delete(stores, k)
		})
		return s
	})
}

func open(t *testing.T, path string, cfg filestore.Config) *filestore.Store {
	t.Helper()
	s, err := filestore.Open(path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// TestRestart checks that closing and opening the file again, as a
// restarted process does, keeps history, sums, idempotency records and
// live leases.
func TestRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sessions.db")
	msgs := []json.RawMessage{
		json.RawMessage(`{"role":"user","content":"héllo \"you\""}`),
		json.RawMessage(`{"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"c2ln"},{"type":"text","text":"hi"}]}`),
	}

	s, err := filestore.Open(path, filestore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Begin(ctx, session.BeginRequest{ID: "kept", LeaseToken: "a", LeaseTTL: time.Minute, IdempotencyKey: "req-1", RequestHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit(ctx, session.Commit{ID: "kept", LeaseToken: "a", Version: st.Version, Messages: msgs, Turns: 1,
		Counters: map[string]int64{"input_tokens": 12}, Release: true, IdempotencyKey: "req-1", RequestHash: "h", Response: []byte("answer")}); err != nil {
		t.Fatal(err)
	}
	// A turn is in flight when the process stops.
	if _, err := s.Begin(ctx, session.BeginRequest{ID: "held", LeaseToken: "b", LeaseTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s = open(t, path, filestore.Config{})
	got, err := s.Load(ctx, "kept")
	if err != nil {
		t.Fatal(err)
	}
	want := &session.State{Version: 2, Turns: 1, Messages: msgs, HistoryBytes: int64(len(msgs[0]) + len(msgs[1])), Counters: map[string]int64{"input_tokens": 12}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Load after restart (-want +got):\n%s", diff)
	}
	st, err = s.Begin(ctx, session.BeginRequest{ID: "kept", LeaseToken: "c", LeaseTTL: time.Minute, IdempotencyKey: "req-1", RequestHash: "h"})
	if err != nil || string(st.Replay) != "answer" {
		t.Errorf("Begin repeating req-1 after restart = %+v, %v; want Replay %q", st, err, "answer")
	}
	// The dead turn's lease was the stopped process's: it is free at once
	// (#17), and then held by this one.
	if _, err := s.Begin(ctx, session.BeginRequest{ID: "held", LeaseToken: "d", LeaseTTL: time.Minute}); err != nil {
		t.Errorf("Begin of a session leased before restart: err = %v; want the lease taken over", err)
	}
	if _, err := s.Begin(ctx, session.BeginRequest{ID: "held", LeaseToken: "e", LeaseTTL: time.Minute}); !errors.As(err, new(*session.BusyError)) {
		t.Errorf("Begin of a session leased after restart: err = %v; want *BusyError", err)
	}
}

// TestOpenInUse checks that a second open of the file fails soon, saying
// why, rather than waiting for the first to close it. flock locks are per
// open file, so a second open in one process stands in for a second
// process.
func TestOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	open(t, path, filestore.Config{})
	start := time.Now()
	s, err := filestore.Open(path, filestore.Config{})
	if err == nil {
		s.Close()
		t.Fatal("second Open of the same file succeeded")
	}
	if !errors.Is(err, bolterrors.ErrTimeout) || !strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), "Redis") {
		t.Errorf("second Open: err = %q; want ErrTimeout saying the file is in use and pointing at Redis", err)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("second Open took %v", waited)
	}
}

func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		path string
		cfg  filestore.Config
	}{
		{"NegativeTTL", filepath.Join(dir, "a.db"), filestore.Config{TTL: -time.Second}},
		{"NegativeIdempotencyTTL", filepath.Join(dir, "b.db"), filestore.Config{IdempotencyTTL: -time.Second}},
		{"NoDirectory", filepath.Join(dir, "missing", "c.db"), filestore.Config{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if s, err := filestore.Open(tc.path, tc.cfg); err == nil {
				s.Close()
				t.Error("Open = nil error; want one")
			}
		})
	}
}

package stream

import (
	"context"
	"sync"
	"time"
)

// Memory is a [Log] in the process's memory, for the embedded deployment
// (the file store), which serves one process: the producer and every
// reader share it, and a reader waiting for events is woken by the write
// itself. Streams vanish TTL after their last write, and with the
// process: a restart ends them, and a reader then finds them not found.
type Memory struct {
	ttl time.Duration

	mu sync.Mutex
	// guarded by mu:
	streams map[string]*memStream
	swept   time.Time
}

type memStream struct {
	events  []Event
	alive   time.Time     // the mark's expiry; zero when removed
	expires time.Time     // TTL after the last write
	changed chan struct{} // closed and replaced by each write
}

var _ Log = (*Memory)(nil)

// NewMemory returns an empty Memory log whose streams live ttl after
// their last write (zero means DefaultTTL).
func NewMemory(ttl time.Duration) *Memory {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Memory{ttl: ttl, streams: map[string]*memStream{}}
}

// Append implements [Log.Append].
func (m *Memory) Append(_ context.Context, id string, events []Event, alive time.Duration) error {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(now)
	s := m.streams[id]
	if s == nil {
		s = &memStream{changed: make(chan struct{})}
		m.streams[id] = s
	}
	for _, ev := range events {
		if n := len(s.events); n > 0 && ev.Seq <= s.events[n-1].Seq {
			continue // written already
		}
		s.events = append(s.events, ev)
	}
	s.alive = time.Time{}
	if alive > 0 {
		s.alive = now.Add(alive)
	}
	s.expires = now.Add(m.ttl)
	close(s.changed)
	s.changed = make(chan struct{})
	return nil
}

// sweepLocked drops expired streams, at most once a minute.
func (m *Memory) sweepLocked(now time.Time) {
	if now.Sub(m.swept) < time.Minute {
		return
	}
	m.swept = now
	for id, s := range m.streams {
		if now.After(s.expires) {
			delete(m.streams, id)
		}
	}
}

// get returns the live stream id, or nil.
func (m *Memory) getLocked(id string, now time.Time) *memStream {
	s := m.streams[id]
	if s == nil || now.After(s.expires) || len(s.events) == 0 {
		return nil
	}
	return s
}

// Read implements [Log.Read].
func (m *Memory) Read(ctx context.Context, id string, after int64, wait time.Duration) ([]Event, error) {
	var timeout <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		m.mu.Lock()
		s := m.getLocked(id, time.Now())
		var changed chan struct{}
		if s != nil {
			if out := eventsAfter(s.events, after); len(out) > 0 {
				m.mu.Unlock()
				return out, nil
			}
			changed = s.changed
		}
		m.mu.Unlock()
		if wait <= 0 {
			return nil, nil
		}
		// An unknown stream has no channel: poll it, rarely (it usually
		// exists by the time anyone reads it).
		var poll <-chan time.Time
		if changed == nil {
			t := time.NewTimer(10 * time.Millisecond)
			defer t.Stop()
			poll = t.C
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timeout:
			return nil, nil
		case <-changed:
		case <-poll:
		}
	}
}

// eventsAfter returns a copy of at most readBatch events of evs (in Seq
// order) with Seq > after.
func eventsAfter(evs []Event, after int64) []Event {
	lo, hi := 0, len(evs)
	for lo < hi {
		mid := (lo + hi) / 2
		if evs[mid].Seq <= after {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	out := evs[lo:min(len(evs), lo+readBatch)]
	return append([]Event(nil), out...)
}

// State implements [Log.State].
func (m *Memory) State(_ context.Context, id string) (int64, bool, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.getLocked(id, now)
	if s == nil {
		return 0, false, ErrNotFound
	}
	return s.events[len(s.events)-1].Seq, now.Before(s.alive), nil
}

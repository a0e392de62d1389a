package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults for a zero [Config].
const (
	DefaultInterval = 50 * time.Millisecond
	DefaultMaxBatch = 256
	DefaultAliveTTL = 3 * time.Second
	DefaultTimeout  = 2 * time.Second
)

// Config tunes a [Writer]. A zero field means its default.
type Config struct {
	// Interval is the least time between two writes of events: the
	// events of an interval go in one round trip. Zero means
	// DefaultInterval. The first event (turn_start) is written at once,
	// so that the stream exists for readers as soon as its id is out.
	Interval time.Duration
	// MaxBatch writes a batch before its interval is over when it holds
	// this many events. Zero means DefaultMaxBatch.
	MaxBatch int
	// AliveTTL is the life of the producer's liveness mark. The writer
	// refreshes it with each write, and every third of it while idle; a
	// killed producer's stream reads as interrupted this long after its
	// last write. Zero means DefaultAliveTTL.
	AliveTTL time.Duration
	// Timeout bounds each write. Zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives failed writes (the producer's own client still gets
	// every event; a resume elsewhere would miss them). Nil means
	// slog.Default().
	Logger *slog.Logger
}

// A Writer is the producer's side of one stream: [Writer.Emit] numbers an
// event and returns at once, and a goroutine writes the events to the
// [Log] in batches. Safe for concurrent use; Close it when the turn ends.
type Writer struct {
	log Log
	id  string
	cfg Config

	wake   chan struct{} // cap 1: events are waiting
	full   chan struct{} // cap 1: MaxBatch events are waiting
	quit   chan struct{} // closed by Close
	exited chan struct{} // closed when run returns
	writes atomic.Int64
	// flushMu keeps writes in order: a batch is written before the next
	// one is taken.
	flushMu sync.Mutex

	mu sync.Mutex
	// guarded by mu:
	seq    int64
	buf    []Event
	closed bool
}

// Open starts the writer of stream id (a store id) on log. The stream may
// exist already: a retry of an interrupted turn continues it, numbering
// its events after the last one written. One round trip.
func Open(ctx context.Context, log Log, id string, cfg Config) (*Writer, error) {
	if log == nil {
		return nil, errors.New("stream: nil Log")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.AliveTTL <= 0 {
		cfg.AliveTTL = DefaultAliveTTL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	last, _, err := log.State(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("open stream %s: %w", id, err)
	}
	w := &Writer{log: log, id: id, cfg: cfg, seq: last, wake: make(chan struct{}, 1),
		full: make(chan struct{}, 1), quit: make(chan struct{}), exited: make(chan struct{})}
	w.writes.Add(1)
	go w.run()
	return w, nil
}

// Emit numbers an event and queues it for the log; it returns the event
// as it will be stored, for the producer's own client. After Close it
// returns the event unqueued.
func (w *Writer) Emit(name string, data []byte) Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	ev := Event{Seq: w.seq, Name: name, Data: data}
	if w.closed {
		return ev
	}
	w.buf = append(w.buf, ev)
	signal := func(c chan struct{}) {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	if len(w.buf) == 1 {
		signal(w.wake)
	}
	if len(w.buf) == w.cfg.MaxBatch {
		signal(w.full)
	}
	return ev
}

// Sync writes the queued events now and returns when they are stored.
// The producer calls it after turn_start, before the stream's id goes to
// its client, so that a reader anywhere finds the stream.
func (w *Writer) Sync() error {
	if err := w.flush(w.cfg.AliveTTL); err != nil {
		return fmt.Errorf("sync stream %s: %w", w.id, err)
	}
	return nil
}

// Writes reports the round trips the writer made so far, Open's
// included.
func (w *Writer) Writes() int64 { return w.writes.Load() }

// run writes a batch when woken, then waits out the interval so that the
// events arriving meanwhile share the next write; while idle it refreshes
// the liveness mark every third of AliveTTL.
func (w *Writer) run() {
	defer close(w.exited)
	beat := time.NewTicker(w.cfg.AliveTTL / 3)
	defer beat.Stop()
	pause := time.NewTimer(0)
	<-pause.C
	for {
		select {
		case <-w.quit:
			return
		case <-w.wake:
		case <-beat.C:
		}
		w.flush(w.cfg.AliveTTL)
		pause.Reset(w.cfg.Interval)
		select {
		case <-w.quit:
			pause.Stop()
			return
		case <-w.full:
			pause.Stop()
		case <-pause.C:
		}
	}
}

// flush writes the queued events (none: a heartbeat) with the liveness
// mark set to alive. Failed events go back to the head of the queue.
func (w *Writer) flush(alive time.Duration) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	batch := w.buf
	w.buf = nil
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.Timeout)
	defer cancel()
	w.writes.Add(1)
	err := w.log.Append(ctx, w.id, batch, alive)
	if err != nil {
		w.cfg.Logger.Warn("stream: write failed", "stream", w.id, "events", len(batch), "err", err)
		w.mu.Lock()
		w.buf = append(batch, w.buf...)
		w.mu.Unlock()
	}
	return err
}

// Close writes what is queued and ends the producer's liveness mark: the
// stream is finished (its last event should be terminal). It waits for
// the writer's goroutine. Calling it again does nothing.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.quit)
	<-w.exited
	err := w.flush(0)
	if err != nil {
		err = w.flush(0) // once more: the events not written are lost to readers elsewhere
	}
	if err != nil {
		return fmt.Errorf("close stream %s: %w", w.id, err)
	}
	return nil
}

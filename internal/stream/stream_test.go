package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/stream"
)

// logs returns each Log under test, fresh for t.
func logs(t *testing.T) map[string]func(t *testing.T) stream.Log {
	return map[string]func(t *testing.T) stream.Log{
		"memory": func(t *testing.T) stream.Log { return stream.NewMemory(0) },
		"redis": func(t *testing.T) stream.Log {
			addr := redistest.Start(t)
			l, err := stream.NewRedis(redistest.Client(t, addr), stream.RedisConfig{Prefix: redistest.Prefix(t)})
			if err != nil {
				t.Fatal(err)
			}
			return l
		},
	}
}

// collect follows id from after and returns what it sent.
func collect(t *testing.T, l stream.Log, id string, after int64) ([]stream.Event, error) {
	t.Helper()
	var got []stream.Event
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err := stream.Follow(ctx, l, id, after, 100*time.Millisecond, func(ev stream.Event) error {
		got = append(got, ev)
		return nil
	})
	return got, err
}

func names(evs []stream.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%d:%s:%s ", ev.Seq, ev.Name, ev.Data)
	}
	return b.String()
}

func TestLogs(t *testing.T) {
	for name, open := range logs(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("follow live and resume", func(t *testing.T) { testFollow(t, open(t)) })
			t.Run("interrupted then retried", func(t *testing.T) { testInterrupted(t, open(t)) })
			t.Run("not found", func(t *testing.T) {
				_, err := collect(t, open(t), "nobody", 0)
				if !errors.Is(err, stream.ErrNotFound) {
					t.Fatalf("Follow of an unknown stream: %v, want ErrNotFound", err)
				}
			})
			t.Run("round trips per batch interval", func(t *testing.T) { testBatching(t, open(t)) })
		})
	}
}

// testFollow: a reader from the start and a reader from the middle, both
// while the producer writes, get exactly the events after their offset,
// in order, ending at turn_end.
func testFollow(t *testing.T, l stream.Log) {
	w, err := stream.Open(t.Context(), l, "t1/s", stream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var want []stream.Event
	want = append(want, w.Emit(stream.TurnStart, []byte(`{}`)))
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var all, rest []stream.Event
	var allErr, restErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		all, allErr = collect(t, l, "t1/s", 0)
	}()
	for i := range 300 {
		want = append(want, w.Emit(stream.TextDelta, fmt.Appendf(nil, `{"text":"%d "}`, i)))
		if i == 100 {
			time.Sleep(60 * time.Millisecond) // let a batch land
			wg.Add(1)
			go func() {
				defer wg.Done()
				rest, restErr = collect(t, l, "t1/s", 50)
			}()
		}
		if i%50 == 0 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	want = append(want, w.Emit(stream.TurnEnd, []byte(`{"response":"x"}`)))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if allErr != nil || restErr != nil {
		t.Fatalf("Follow: %v, %v", allErr, restErr)
	}
	if diff := cmp.Diff(names(want), names(all)); diff != "" {
		t.Errorf("reader from 0 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(names(want[50:]), names(rest)); diff != "" {
		t.Errorf("reader from 50 (-want +got):\n%s", diff)
	}
	// A reader after the end gets the finished stream at once.
	got, err := collect(t, l, "t1/s", 0)
	if err != nil || len(got) != len(want) {
		t.Errorf("reader of the finished stream: %d events, %v; want %d", len(got), err, len(want))
	}
	if _, _, err := l.State(t.Context(), "t2/s"); !errors.Is(err, stream.ErrNotFound) {
		t.Errorf("another tenant's id: %v, want ErrNotFound", err)
	}
}

// testInterrupted: a producer that stops writing without finishing (a
// killed process) leaves readers an error event once its mark expires;
// a retry continues the stream's numbering, and a reader resuming from
// the error's id gets the retry's events.
func testInterrupted(t *testing.T, l stream.Log) {
	ctx := t.Context()
	if err := l.Append(ctx, "dead", []stream.Event{{Seq: 1, Name: stream.TurnStart, Data: []byte(`{}`)},
		{Seq: 2, Name: stream.TextDelta, Data: []byte(`{"text":"hel"}`)}}, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := collect(t, l, "dead", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Name != stream.Error || got[2].Seq != 2 || !strings.Contains(string(got[2].Data), `"interrupted"`) {
		t.Fatalf("events of a dead producer's stream: %s; want 2 then error 2 interrupted", names(got))
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("interrupted after %v, before the mark expired", d)
	}
	w, err := stream.Open(ctx, l, "dead", stream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if ev := w.Emit(stream.TurnStart, []byte(`{}`)); ev.Seq != 3 {
		t.Errorf("retry's first event is %d, want 3", ev.Seq)
	}
	w.Emit(stream.TurnEnd, []byte(`{}`))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err = collect(t, l, "dead", 2)
	if err != nil || names(got) != "3:turn_start:{} 4:turn_end:{} " {
		t.Errorf("resume after the error: %s, %v", names(got), err)
	}
}

// countingLog counts the calls (each one round trip) a Writer makes.
type countingLog struct {
	stream.Log
	mu      sync.Mutex
	appends int
}

func (c *countingLog) Append(ctx context.Context, id string, evs []stream.Event, alive time.Duration) error {
	c.mu.Lock()
	c.appends++
	c.mu.Unlock()
	return c.Log.Append(ctx, id, evs, alive)
}

// testBatching: 1000 events over about 300 ms cost a handful of writes,
// not one per event: at most one per 50 ms interval plus the first and
// the last.
func testBatching(t *testing.T, l stream.Log) {
	c := &countingLog{Log: l}
	w, err := stream.Open(t.Context(), c, "batch", stream.Config{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range 1000 {
		w.Emit(stream.TextDelta, []byte(`{"text":"x"}`))
		if i%100 == 0 {
			time.Sleep(30 * time.Millisecond)
		}
	}
	w.Emit(stream.TurnEnd, []byte(`{}`))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	bound := int(elapsed/stream.DefaultInterval) + 3
	if c.appends > bound || c.appends < 2 {
		t.Errorf("%d writes for 1001 events in %v; want 2..%d", c.appends, elapsed, bound)
	}
	if int64(c.appends)+1 != w.Writes() {
		t.Errorf("Writes() = %d, want %d appends + 1 open", w.Writes(), c.appends)
	}
	got, err := collect(t, l, "batch", 0)
	if err != nil || len(got) != 1001 {
		t.Errorf("read back %d events, %v; want 1001", len(got), err)
	}
}

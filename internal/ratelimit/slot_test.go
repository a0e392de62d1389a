package ratelimit

import (
	"errors"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/redistest"
)

// TestDeadInstanceSlot takes the only slot and then stops renewing it, as
// an instance that dies does: the slot frees itself after SlotTTL, and
// not before. A live holder keeps its slot however long its turn runs.
func TestDeadInstanceSlot(t *testing.T) {
	addr := redistest.Start(t)
	redistest.Bubble(t, func(t *testing.T) {
		newLim := func() *Limiter {
			l, err := New(redistest.Client(t, addr), Config{Prefix: redistest.Prefix(t), MaxTurns: 1, SlotTTL: 30 * time.Second, MaxWait: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		a, b := newLim(), newLim()

		live, err := a.Acquire(t.Context(), "acme", "s1")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Minute) // renewed six times meanwhile
		var le *LimitError
		if _, err := b.Acquire(t.Context(), "acme", "s2"); !errors.As(err, &le) {
			t.Fatalf("slot of a live holder was taken after 2m: %v", err)
		}
		live.Release()

		dead, err := a.Acquire(t.Context(), "acme", "s1")
		if err != nil {
			t.Fatal(err)
		}
		close(dead.stop) // the instance dies: no renewal, no release
		<-dead.done
		time.Sleep(20 * time.Second)
		if _, err := b.Acquire(t.Context(), "acme", "s2"); !errors.As(err, &le) {
			t.Fatalf("dead slot freed before SlotTTL: %v", err)
		}
		time.Sleep(10 * time.Second)
		s, err := b.Acquire(t.Context(), "acme", "s2")
		if err != nil {
			t.Fatalf("dead slot not freed after SlotTTL: %v", err)
		}
		s.Release()
	})
}

package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lambdagent/lambdagent/internal/apierr"
)

// DefaultWait is how long a follower's read blocks before it checks the
// producer's liveness mark.
const DefaultWait = time.Second

// ErrInterrupted is the error a follower sends, as an "error" event, when
// the stream's producer died before its turn ended: the client should
// send the request again with the same Idempotency-Key, which resumes the
// turn and continues the stream.
var ErrInterrupted = apierr.Sentinel("stream: turn interrupted", apierr.Error{
	Kind:    apierr.Interrupted,
	Message: "the turn was interrupted (the process running it stopped); send the request again with the same Idempotency-Key to resume it"})

// InterruptedData is the data of the "error" event of an interrupted
// stream: the JSON error body a non-streaming call would get.
var InterruptedData = apierr.Body(apierr.From(ErrInterrupted))

// Follow sends send the events of stream id with Seq > after, as they are
// written, until a terminal event. If the producer's mark expires first,
// Follow sends a synthesized "error" event ([InterruptedData]) numbered
// like the last event sent, so a reconnect with that id picks up where a
// retry of the turn continues the stream. It returns ErrNotFound, before
// calling send, when the stream does not exist; send's error otherwise
// stops it and is returned. wait bounds each blocking read (zero means
// DefaultWait).
func Follow(ctx context.Context, log Log, id string, after int64, wait time.Duration, send func(Event) error) error {
	if wait <= 0 {
		wait = DefaultWait
	}
	if _, _, err := log.State(ctx, id); err != nil {
		return err
	}
	for {
		evs, err := log.Read(ctx, id, after, wait)
		if err != nil {
			return fmt.Errorf("follow stream %s: %w", id, err)
		}
		if len(evs) == 0 {
			_, live, err := log.State(ctx, id)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("follow stream %s: %w", id, err)
			}
			if live {
				continue
			}
			// The mark expired: read once more, for events written just
			// before it did, and then call the turn interrupted.
			if evs, err = log.Read(ctx, id, after, 0); err != nil {
				return fmt.Errorf("follow stream %s: %w", id, err)
			}
			if len(evs) == 0 {
				return send(Event{Seq: after, Name: Error, Data: InterruptedData})
			}
		}
		for _, ev := range evs {
			if err := send(ev); err != nil {
				return err
			}
			after = ev.Seq
			if Terminal(ev.Name) {
				return nil
			}
		}
	}
}

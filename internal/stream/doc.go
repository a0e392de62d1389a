// Package stream keeps the event log of a streamed turn, so that any
// process can send a client what it missed and then the live rest (see
// #15).
//
// A turn's producer assigns each event the next sequence number and hands
// it at once to its own client, then a [Writer] writes the events to a
// [Log] in batches: at most one store round trip per batch interval
// (Config.Interval, 50 ms), however many tokens Claude sends, plus one
// heartbeat per third of Config.AliveTTL while nothing is written (a long
// tool call). A reader elsewhere ([Follow]) reads from any sequence number
// and blocks for the rest.
//
// The producer's liveness is a mark with a short expiry that each write
// refreshes. A stream that has no terminal event ("turn_end" or "error")
// and whose mark expired lost its producer (a process killed mid-turn):
// Follow ends it with an "error" event saying the turn was interrupted.
// That event is not written to the log: a retry of the request (same
// Idempotency-Key) continues the same stream with a new "turn_start".
//
// Streams are named by the caller's store id (session.Scope of the
// tenant and the stream id), so another tenant's stream of the same id is
// simply not found. Two logs exist: [Redis] (Redis Streams, one hash tag
// per stream, so it works on Redis Cluster) for processes that share
// sessions, and [Memory] for the embedded single-process deployment.
package stream

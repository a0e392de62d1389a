// Package session keeps conversation state between turns.
//
// Every request may land on a fresh process, so everything a turn needs
// lives in a [Store]. A turn talks to the store exactly twice:
//
//  1. [Store.Begin] takes the session's lease (one writer per session),
//     reads the history and, when the request carries an idempotency
//     key, any answer already stored under it. The history is all of it,
//     or, once a commit stored a cut ([Commit.Cut]), the part from the
//     cut on: a turn whose strategy sends only the end of a long history
//     reads only that end (see #14).
//  2. [Store.Commit] appends the turn's new messages, stores the
//     idempotency record, refreshes the TTL and releases the lease, all or
//     nothing.
//
// Commit succeeds only while the caller still holds the lease it got from
// Begin (the lease token is a fencing token) and the version is unchanged
// since the read, so two processes racing on one session can never both
// append: the loser gets [ErrConflict] or [ErrLeaseLost] and writes nothing.
// A process that dies mid-turn writes nothing; its lease expires by itself.
//
// A turn that runs tools is the exception (see #8): before its tools run
// it commits a checkpoint (Release false) carrying a pending mark, saves
// each tool result as the call returns ([ToolResultStore]), and a retry
// of the turn after a crash finds the mark and the results in Begin's
// State and resumes the turn rather than calling the tools again. A turn
// without tools still costs exactly two round trips.
//
// Messages are kept as the raw JSON of Messages API message objects
// ({"role":…,"content":…}). Nothing is decoded into SDK types and
// re-encoded, so thinking blocks and their signatures go back to Claude
// byte for byte, and a turn's CPU does not grow with its history.
package session

package agent

import (
	"encoding/json"
	"time"

	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/session"
)

// A Record is what a turn's final commit keeps for display
// (session.Commit.Record, see #18): the HTTP API returns a session's
// records with its transcript, so a client can show per turn what it
// cost and where its time went. The usage is this attempt's, as in the
// answer: a turn resumed after a crash counts the usage of the earlier
// attempt's calls in the session's counters only.
type Record struct {
	Turn int64 `json:"turn"`
	// At is when the turn ended (RFC 3339, UTC).
	At time.Time `json:"at"`
	// Messages are the indexes [From, To) in the session's history of the
	// turn's messages.
	From int64 `json:"from"`
	To   int64 `json:"to"`
	// ModelCalls counts the turn's model calls, as the answer does.
	ModelCalls int          `json:"model_calls"`
	Usage      claude.Usage `json:"usage"`
	// LatencyMS splits the turn's time between the model calls, the
	// store (Begin, with any wait for a busy session, and checkpoints; the
	// final commit comes after the record is made) and the tools.
	LatencyMS Latency `json:"latency_ms"`
	// RequestID is the upstream request id of the turn's last model call.
	RequestID  string `json:"request_id,omitempty"`
	StopReason string `json:"stop_reason,omitempty"`
}

// Latency is a turn's time in milliseconds, split by where it went.
type Latency struct {
	Model int64 `json:"model"`
	Store int64 `json:"store"`
	Tools int64 `json:"tools"`
	Total int64 `json:"total"`
}

// turnStats is what a turn's Record needs from its loop.
type turnStats struct {
	time timings
	from int64 // the index of the turn's first message
	// cut is the cut the turn's final commit stores, if any (see cutFor).
	cut *session.Cut
}

// timings sums where a turn's time goes.
type timings struct {
	model, store, tools time.Duration
}

// record encodes the turn's Record; nil if it cannot (it is for display
// only, a turn never fails for it).
func record(res Result, from, to int64, tm timings, start time.Time) []byte {
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	b, err := json.Marshal(Record{
		Turn: res.Turn, At: time.Now().UTC(), From: from, To: to,
		ModelCalls: res.ModelCalls, Usage: res.Usage, RequestID: res.RequestID, StopReason: res.StopReason,
		LatencyMS: Latency{Model: ms(tm.model), Store: ms(tm.store), Tools: ms(tm.tools), Total: ms(time.Since(start))},
	})
	if err != nil {
		return nil
	}
	return b
}

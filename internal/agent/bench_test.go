package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/redistest"
	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/redisstore"
)

// cannedReply is a realistic reply: an (omitted) thinking block with its
// signature, and a text block.
var cannedReply = []byte(`{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-5-5","content":[{"type":"thinking","thinking":"","signature":"` +
	strings.Repeat("A", 344) + `"},{"type":"text","text":"Tomorrow in Zürich: light rain in the afternoon, 9 °C. Take the umbrella."}],` +
	`"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1200,"output_tokens":40,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}`)

// BenchmarkTurn measures a turn's overhead: everything but the model. The
// model is an HTTP server that reads the request and answers a fixed reply
// at once, so the figure is the store's two round trips to a real
// redis-server, building the request from the stored history, the real
// Claude client over real HTTP, and the commit. It reports the Redis round
// trips and bytes per turn and the process CPU time per turn.
//
//	go test ./internal/agent -run '^$' -bench Turn -benchtime 2s
func BenchmarkTurn(b *testing.B) {
	// The model stands for a remote API: its own CPU is not the turn's,
	// but it runs in this process. It reads the request in large reads
	// (io.Discard would read in 8 KB pieces, a syscall each), so that as
	// little as can be of what is measured is the stand-in's.
	bufs := sync.Pool{New: func() any { return make([]byte, 1<<20) }}
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := bufs.Get().([]byte)
		for {
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
		}
		bufs.Put(buf) //nolint:staticcheck // boxing a slice header per request is noise next to 1 MB
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("request-id", "req_bench")
		_, _ = w.Write(cannedReply)
	}))
	defer model.Close()
	client, err := claude.New(claude.Config{APIKey: "k", BaseURL: model.URL})
	if err != nil {
		b.Fatal(err)
	}
	rdb := redistest.Client(b, redistest.Start(b))
	counter := &redistest.Counter{}
	rdb.AddHook(counter)
	prefix := redistest.Prefix(b)
	// No liveness loop: its SET a second is the process's, not a turn's.
	store, err := redisstore.New(rdb, redisstore.Config{Prefix: prefix, TTL: 10 * time.Minute, Liveness: -1})
	if err != nil {
		b.Fatal(err)
	}
	a, err := agent.New(store, client, nil, agent.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, depth := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			id := fmt.Sprintf("bench-%d", depth)
			seedHistory(b, store, id, depth)
			restore := snapshotHistory(b, rdb, prefix+"{"+id+"}:")
			var trips, sent, recv int
			var cpu time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				c0 := cpuTime()
				t, _, s, r := counter.Measure(func() {
					if _, err := a.Run(b.Context(), agent.Request{SessionID: id, Message: "What is the weather in Zürich tomorrow?"}); err != nil {
						b.Fatal(err)
					}
				})
				cpu += cpuTime() - c0
				trips, sent, recv = trips+t, sent+s, recv+r
				b.StopTimer()
				restore() // keep the depth constant
				_ = i
				b.StartTimer()
			}
			b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/turn")
			b.ReportMetric(float64(sent)/float64(b.N), "redis-sentB/turn")
			b.ReportMetric(float64(recv)/float64(b.N), "redis-recvB/turn")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/turn")
		})
	}
	// The floor: what moving a history costs with no lambdagent at all,
	// one GET of its bytes from the same Redis and one POST of them to the
	// same model with a plain net/http client. A turn's figure minus this
	// is what lambdagent adds.
	for _, depth := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("floor/depth=%d", depth), func(b *testing.B) {
			id := fmt.Sprintf("bench-%d", depth)
			seedHistory(b, store, id, depth)
			key := prefix + "{" + id + "}:hist"
			var cpu time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c0 := cpuTime()
				hist, err := rdb.Get(b.Context(), key).Bytes()
				if err != nil {
					b.Fatal(err)
				}
				resp, err := http.Post(model.URL, "application/json", bytes.NewReader(hist))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				cpu += cpuTime() - c0
			}
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/turn")
		})
	}
}

// seedHistory commits depth turns of realistic size in one commit.
func seedHistory(b testing.TB, s session.Store, id string, depth int) {
	b.Helper()
	user := json.RawMessage(`{"role":"user","content":[{"type":"text","text":"What is the weather in Zürich tomorrow, and should I take an umbrella?"}]}`)
	var reply struct {
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(cannedReply, &reply)
	assistant := json.RawMessage(`{"role":"assistant","content":` + string(reply.Content) + `}`)
	msgs := make([]json.RawMessage, 0, 2*depth)
	for range depth {
		msgs = append(msgs, user, assistant)
	}
	ctx := b.Context()
	if err := s.Delete(ctx, id); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Begin(ctx, session.BeginRequest{ID: id, LeaseToken: "seed", LeaseTTL: time.Minute}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Commit(ctx, session.Commit{ID: id, LeaseToken: "seed", Messages: msgs, Turns: int64(depth), Release: true}); err != nil {
		b.Fatal(err)
	}
}

// snapshotHistory reads the history under base (redisstore's key
// layout: hist and hlen) and returns a func that puts it back behind the
// store's back, so a benchmark's depth does not grow with b.N. Putting
// it back reads nothing: the benchmark's own garbage stays out of the
// turns' GC.
func snapshotHistory(b *testing.B, rdb redis.UniversalClient, base string) func() {
	ctx := b.Context()
	hist, err := rdb.Get(ctx, base+"hist").Bytes()
	if err != nil {
		b.Fatal(err)
	}
	lens, err := rdb.Get(ctx, base+"hlen").Bytes()
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		if err := rdb.MSet(ctx, base+"hist", hist, base+"hlen", lens).Err(); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the CPU (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

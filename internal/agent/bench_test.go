package agent_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambdagent/lambdagent/internal/agent"
	"github.com/lambdagent/lambdagent/internal/claude"
	"github.com/lambdagent/lambdagent/internal/memlimit"
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
// model is an HTTP server in another process (this test binary started
// again, see [TestMain]) that reads the request and answers a fixed reply
// at once, so the figure is the store's two round trips to a real
// redis-server, building the request from the stored history, the real
// Claude client over real HTTP, and the commit; the CPU counted is this
// process's only, the agent's, not the model stand-in's nor Redis's. It
// reports the Redis round trips and bytes per turn and the process CPU
// time per turn. window/ and compact/ run those strategies: their cost
// must not grow with the history (#14), since a turn reads the history
// from the session's cut on.
//
//	go test ./internal/agent -run '^$' -bench Turn -benchtime 2s
func BenchmarkTurn(b *testing.B) {
	modelURL := startModel(b)
	client, err := claude.New(claude.Config{APIKey: "k", BaseURL: modelURL})
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
	run := func(name string, cfg agent.Config, depths []int) {
		if strings.HasPrefix(name, lambda512) {
			defer sizeGC(512 << 20)()
		}
		a, err := agent.New(store, client, nil, cfg)
		if err != nil {
			b.Fatal(err)
		}
		for _, depth := range depths {
			b.Run(fmt.Sprintf("%sdepth=%d", name, depth), func(b *testing.B) {
				id := fmt.Sprintf("bench-%s%d", strings.TrimSuffix(name, "/"), depth)
				seedHistory(b, store, id, depth, cfg.History == agent.HistoryCompact)
				restore := snapshotHistory(b, rdb, prefix+"{"+id+"}:")
				// One turn first, as a session that has been talking has
				// had: under window and compact it stores the session's
				// cut, which the turns measured then read from (the
				// history put back keeps the messages the cut points into).
				if _, err := a.Run(b.Context(), agent.Request{SessionID: id, Message: "What is the weather in Zürich tomorrow?"}); err != nil {
					b.Fatal(err)
				}
				restore()
				var trips, sent, recv int
				var cpu time.Duration
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
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
					b.StartTimer()
				}
				b.ReportMetric(float64(trips)/float64(b.N), "roundtrips/turn")
				b.ReportMetric(float64(sent)/float64(b.N), "redis-sentB/turn")
				b.ReportMetric(float64(recv)/float64(b.N), "redis-recvB/turn")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/turn")
			})
		}
	}
	// The floor: what moving a history costs with no lambdagent at all,
	// one GET of its bytes from the same Redis and one POST of them to the
	// same model with a plain net/http client. A turn's figure minus this
	// is what lambdagent adds.
	floor := func(name string, depths []int) {
		if strings.HasPrefix(name, lambda512) {
			defer sizeGC(512 << 20)()
		}
		for _, depth := range depths {
			b.Run(fmt.Sprintf("%sfloor/depth=%d", name, depth), func(b *testing.B) {
				id := fmt.Sprintf("bench-%sfloor-%d", strings.TrimSuffix(name, "/"), depth)
				seedHistory(b, store, id, depth, false)
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
					resp, err := http.Post(modelURL, "application/json", bytes.NewReader(hist))
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
	// 600 turns are 400 KB of history, what #14 calls turn 800.
	run("", agent.Config{}, []int{1, 10, 100, 600, 800, 1000})
	run("window/", agent.Config{History: agent.HistoryWindow}, []int{10, 1000})
	run("compact/", agent.Config{History: agent.HistoryCompact}, []int{10, 1000})
	floor("", []int{1, 100, 600, 800, 1000})
	// lambda512/: the same with the garbage collector sized as the binary
	// sizes it in a 512 MB Lambda function (or a container given 512 MiB):
	// see internal/memlimit.
	run(lambda512, agent.Config{}, []int{600, 800, 1000})
	floor(lambda512, []int{600, 800, 1000})
}

// lambda512 names the sub-benchmarks run as in a 512 MB function.
const lambda512 = "lambda512/"

// sizeGC sizes the garbage collector as the binary does for a process
// given memory bytes (memlimit), and returns what puts it back.
func sizeGC(memory int64) func() {
	limit, percent := debug.SetMemoryLimit(-1), debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	memlimit.Apply(memlimit.For(memory, "benchmark"))
	return func() {
		debug.SetMemoryLimit(limit)
		debug.SetGCPercent(percent)
		runtime.GC()
	}
}

// modelEnv, set, makes the test binary the benchmarks' model stand-in
// (see [TestMain]).
const modelEnv = "LAMBDAGENT_BENCH_MODEL"

// TestMain runs the tests, or, with modelEnv set, serves as the model
// stand-in of [BenchmarkTurn]: an HTTP server on a free loopback port
// whose URL it prints, answering every request with cannedReply, until
// its stdin closes. It is a process of its own so that its CPU is not
// counted as the turn's.
func TestMain(m *testing.M) {
	if os.Getenv(modelEnv) == "" {
		os.Exit(m.Run())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bufs := sync.Pool{New: func() any { return new([1 << 20]byte) }}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := bufs.Get().(*[1 << 20]byte)
		for {
			if _, err := r.Body.Read(buf[:]); err != nil {
				break
			}
		}
		bufs.Put(buf)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("request-id", "req_bench")
		_, _ = w.Write(cannedReply)
	})}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Printf("http://%s\n", ln.Addr())
	_ = srv.Serve(ln)
}

// startModel starts the model stand-in process and returns its URL; it
// stops when b ends (its stdin closes).
func startModel(b *testing.B) string {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), modelEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	url, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("model stand-in: %v", err)
	}
	return strings.TrimSpace(url)
}

// compactedReply is an assistant message that opens with a compaction
// block, as a reply past the compact strategy's trigger does: a summary
// of a few hundred bytes, its encrypted form and signature.
var compactedReply = json.RawMessage(`{"role":"assistant","content":[{"type":"compaction","content":"` + strings.Repeat("The user asked about the weather in Zürich; ", 8) +
	`","encrypted_content":"` + strings.Repeat("B", 512) + `","signature":"` + strings.Repeat("C", 344) + `"},{"type":"text","text":"Rain tomorrow afternoon."}]}`)

// seedHistory commits depth turns of realistic size in one commit. With
// compacted, the reply of the turn 5 turns from the end carries a
// compaction block (compactedReply), so a compact session sends the last
// 5 turns and the placeholder.
func seedHistory(b testing.TB, s session.Store, id string, depth int, compacted bool) {
	b.Helper()
	user := json.RawMessage(`{"role":"user","content":[{"type":"text","text":"What is the weather in Zürich tomorrow, and should I take an umbrella?"}]}`)
	var reply struct {
		Content json.RawMessage `json:"content"`
	}
	_ = json.Unmarshal(cannedReply, &reply)
	assistant := json.RawMessage(`{"role":"assistant","content":` + string(reply.Content) + `}`)
	msgs := make([]json.RawMessage, 0, 2*depth)
	for i := range depth {
		if compacted && i == depth-5 {
			msgs = append(msgs, user, compactedReply)
			continue
		}
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

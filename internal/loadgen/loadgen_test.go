package loadgen_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lambdagent/lambdagent/internal/claudesim"
	"github.com/lambdagent/lambdagent/internal/loadgen"
	"github.com/lambdagent/lambdagent/internal/stacktest"
)

// TestRealStack runs the load against the real handler, agent, embedded
// store and simulator: every turn arrives once, in order, with its
// history, and both checks run.
func TestRealStack(t *testing.T) {
	url := startStack(t, 20*time.Millisecond)
	rep, err := loadgen.Run(t.Context(), loadgen.Config{URL: url, Sessions: 20, Turns: 5, ModelLatency: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Turns != 100 || rep.FailedTurns != 0 || len(rep.Errors) != 0 {
		t.Fatalf("turns %d, failed %d, errors %v; want 100, 0, none", rep.Turns, rep.FailedTurns, rep.Errors)
	}
	h := rep.History
	if h.Violations != 0 || h.Method != "session_api+echo" || h.SessionsChecked != 20 || h.EchoAnswers != 100 {
		t.Fatalf("history = %+v; want 0 violations from 20 sessions and 100 echoes", h)
	}
	if rep.Latency.Min < 20 || rep.Overhead.Min < 0 || rep.Overhead.Max > rep.Latency.Max-20+0.001 {
		t.Errorf("latency %+v, overhead %+v: want latency ≥ the 20ms model latency and overhead = latency − 20ms", rep.Latency, rep.Overhead)
	}
	if rep.TokensPerTurn.Input <= 0 || rep.TokensPerTurn.Output <= 0 || rep.ModelCallsPerTurn != 1 {
		t.Errorf("tokens per turn %+v, model calls %v; want positive tokens and 1 call", rep.TokensPerTurn, rep.ModelCallsPerTurn)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"100 answered, 0 failed", "p99", "overhead", "errors      none", "history     0 violations (20 sessions read back"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
}

// startStack serves lambdagent (embedded store, simulator with the given
// latency) and returns its URL.
func startStack(t *testing.T, latency time.Duration) string {
	return stacktest.Start(t, stacktest.Options{Sim: claudesim.Config{Latency: latency}}).URL
}

// TestBrokenServers runs the load against servers that break histories on
// purpose, and checks the history check reports each break.
func TestBrokenServers(t *testing.T) {
	tests := []struct {
		name       string
		server     *toyServer
		wantMethod string
		wantKinds  []string // kinds that must be reported; nil: no violations
	}{
		{name: "correct", server: &toyServer{}, wantMethod: "session_api+echo"},
		{name: "correct without session API", server: &toyServer{noAPI: true}, wantMethod: "echo"},
		{name: "correct, plain replies", server: &toyServer{plain: true}, wantMethod: "session_api"},
		{name: "drops every fourth turn", server: &toyServer{drop: true}, wantMethod: "session_api+echo", wantKinds: []string{loadgen.KindLost}},
		{name: "drops, seen by the echo alone", server: &toyServer{drop: true, noAPI: true}, wantMethod: "echo", wantKinds: []string{loadgen.KindLost}},
		{name: "drops, seen by the session API alone", server: &toyServer{drop: true, plain: true}, wantMethod: "session_api", wantKinds: []string{loadgen.KindLost}},
		{name: "reverses the stored history", server: &toyServer{reverse: true}, wantMethod: "session_api+echo", wantKinds: []string{loadgen.KindOutOfOrder}},
		{name: "stores turn 3 twice", server: &toyServer{double: true}, wantMethod: "session_api+echo", wantKinds: []string{loadgen.KindDuplicated}},
		// Session N loses turn 2 and its model sees too little; session
		// N+1 holds a stranger's turn and its model sees too much.
		{name: "stores turn 2 in the next session", server: &toyServer{misroute: true}, wantMethod: "session_api+echo", wantKinds: []string{loadgen.KindCrossed, loadgen.KindDuplicated, loadgen.KindLost}},
		{name: "numbers turns from 0", server: &toyServer{turnOff: true}, wantMethod: "session_api+echo", wantKinds: []string{loadgen.KindTurnNumber}},
		{name: "forgets odd sessions", server: &toyServer{forget: true}, wantMethod: "session_api+echo", wantKinds: []string{loadgen.KindLost}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.server)
			defer srv.Close()
			rep, err := loadgen.Run(t.Context(), loadgen.Config{URL: srv.URL, Sessions: 4, Turns: 8})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Turns != 32 {
				t.Fatalf("%d turns answered, want 32; errors %v", rep.Turns, rep.Errors)
			}
			h := rep.History
			if h.Method != tc.wantMethod {
				t.Errorf("method %q, want %q", h.Method, tc.wantMethod)
			}
			var got []string
			for k, n := range h.ByKind {
				if n > 0 {
					got = append(got, k)
				}
			}
			slices.Sort(got)
			want := slices.Clone(tc.wantKinds)
			slices.Sort(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("violation kinds (-want +got):\n%s\ndetails: %+v", diff, h.Details)
			}
			if tc.wantKinds != nil && h.Sessions == 0 {
				t.Errorf("no session reported with violations")
			}
			var text bytes.Buffer
			_ = rep.WriteText(&text)
			t.Logf("report:\n%s", text.String())
			if tc.wantKinds != nil && !strings.Contains(text.String(), "    "+h.Details[0].Session+": "+h.Details[0].Kind) {
				t.Errorf("text report does not list %s's violations:\n%s", h.Details[0].Session, text.String())
			}
		})
	}
}

// TestRetriesKeepTheKey: a turn answered 503 is sent again with the same
// Idempotency-Key, and counted once.
func TestRetriesKeepTheKey(t *testing.T) {
	srv := &toyServer{fail: 2}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	rep, err := loadgen.Run(t.Context(), loadgen.Config{URL: ts.URL + "/agent", Sessions: 2, Turns: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Turns != 6 || rep.Requests != 18 || rep.Retries != 12 || rep.History.Violations != 0 {
		t.Fatalf("turns %d, requests %d, retries %d, violations %d; want 6, 18, 12, 0", rep.Turns, rep.Requests, rep.Retries, rep.History.Violations)
	}
	if diff := cmp.Diff(map[string]int{"503 store_unavailable": 12}, rep.Errors); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.keys) != 6 {
		t.Errorf("%d distinct Idempotency-Keys, want one per turn (6)", len(srv.keys))
	}
	for k, n := range srv.keys {
		if n != 3 {
			t.Errorf("key %s sent %d times, want 3", k, n)
		}
	}
}

// TestGivesUp: a turn that keeps failing ends its session; the history
// check accepts it either way.
func TestGivesUp(t *testing.T) {
	ts := httptest.NewServer(&toyServer{fail: 1000})
	defer ts.Close()
	rep, err := loadgen.Run(t.Context(), loadgen.Config{URL: ts.URL, Sessions: 3, Turns: 5, Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Turns != 0 || rep.FailedTurns != 3 || rep.Requests != 3 || rep.History.Violations != 0 {
		t.Fatalf("turns %d failed %d requests %d violations %d; want 0 3 3 0", rep.Turns, rep.FailedTurns, rep.Requests, rep.History.Violations)
	}
}

// TestLimits checks the request cap and the time limit.
func TestLimits(t *testing.T) {
	ts := httptest.NewServer(&toyServer{})
	defer ts.Close()
	tests := []struct {
		name string
		cfg  loadgen.Config
		min  int
		max  int
	}{
		{"max requests", loadgen.Config{Sessions: 5, Turns: 10, MaxRequests: 17}, 17, 17},
		{"duration", loadgen.Config{Sessions: 2, Turns: 1000, Think: 20 * time.Millisecond, Duration: 200 * time.Millisecond}, 2, 30},
		{"ramp", loadgen.Config{Sessions: 4, Turns: 2, Ramp: 40 * time.Millisecond}, 8, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.URL = ts.URL
			var last loadgen.Progress
			cfg.Progress = func(p loadgen.Progress) { last = p }
			cfg.ProgressEvery = 10 * time.Millisecond
			rep, err := loadgen.Run(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Turns < tc.min || rep.Turns > tc.max || rep.History.Violations != 0 {
				t.Fatalf("%d turns, %d violations; want %d..%d turns, none", rep.Turns, rep.History.Violations, tc.min, tc.max)
			}
			if last.Done != int64(rep.Turns) {
				t.Errorf("last progress %+v; want Done %d", last, rep.Turns)
			}
		})
	}
}

func TestBadConfig(t *testing.T) {
	for _, u := range []string{"", "localhost:8080", "ftp://x/agent", "http://"} {
		if _, err := loadgen.Run(t.Context(), loadgen.Config{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

// toyServer is a deliberately simple, in-memory agent endpoint that can
// break histories in the ways the check must notice. It answers as the
// simulator does ("echo: TEXT (messages: N)") unless plain.
type toyServer struct {
	noAPI    bool // no session API: GET answers 404
	plain    bool // replies are not echoes
	drop     bool // every fourth turn is answered but not stored
	reverse  bool // the session API returns the turns newest first
	double   bool // turn 3 is stored twice
	misroute bool // turn 2 of session N is stored in session N+1
	turnOff  bool // answers carry turn-1
	forget   bool // the session API does not know sessions with an odd number
	fail     int  // the first fail attempts of every turn answer 503

	mu       sync.Mutex
	sessions map[string][]json.RawMessage // guarded by mu, as are the maps below
	turns    map[string]int               // turns answered per session
	keys     map[string]int               // attempts per Idempotency-Key
}

func (s *toyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		s.sessions, s.turns, s.keys = map[string][]json.RawMessage{}, map[string]int{}, map[string]int{}
	}
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/sessions/") {
		id := strings.TrimPrefix(r.URL.Path, "/v1/sessions/")
		msgs, ok := s.sessions[id]
		if s.noAPI || !ok || (s.forget && sessionIndex(id)%2 == 1) {
			http.NotFound(w, r)
			return
		}
		if s.reverse {
			var rev []json.RawMessage
			for i := len(msgs) - 2; i >= 0; i -= 2 {
				rev = append(rev, msgs[i], msgs[i+1])
			}
			msgs = rev
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"messages": msgs})
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/agent" {
		http.NotFound(w, r)
		return
	}
	var req struct {
		SessionID string `json:"session_id"`
		Message   string `json:"message"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	s.keys[key]++
	if s.keys[key] <= s.fail {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(503)
		fmt.Fprint(w, `{"error":{"type":"store_unavailable","message":"try again"}}`)
		return
	}
	id := req.SessionID
	msgs := s.sessions[id]
	s.turns[id]++
	turn := s.turns[id]
	user := json.RawMessage(fmt.Sprintf(`{"role":"user","content":[{"type":"text","text":%q}]}`, req.Message))
	text := fmt.Sprintf("echo: %s (messages: %d)", req.Message, len(msgs)+1)
	if s.plain {
		text = "Sure."
	}
	reply := json.RawMessage(fmt.Sprintf(`{"role":"assistant","content":[{"type":"text","text":%q}]}`, text))
	dst := id
	if s.misroute && turn == 2 {
		dst = fmt.Sprintf("%s%d", id[:strings.LastIndexByte(id, '-')+1], sessionIndex(id)+1)
	}
	switch {
	case s.drop && turn%4 == 0:
	case s.double && turn == 3:
		s.sessions[dst] = append(s.sessions[dst], user, reply, user, reply)
	default:
		s.sessions[dst] = append(s.sessions[dst], user, reply)
	}
	if _, ok := s.sessions[id]; !ok {
		s.sessions[id] = []json.RawMessage{}
	}
	if s.turnOff {
		turn--
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"response": text, "session_id": id, "turn": turn})
}

// sessionIndex is N of a session id lg-RUN-N.
func sessionIndex(id string) int {
	var n int
	fmt.Sscan(id[strings.LastIndexByte(id, '-')+1:], &n)
	return n
}

// TestRoundRobin sends the turns of one run to three instances of one
// service: each gets a third of the requests, and the histories, read
// from the first, are whole.
func TestRoundRobin(t *testing.T) {
	store := &toyServer{}
	var hits [3]atomic.Int64
	var urls []string
	for i := range hits {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				hits[i].Add(1)
			}
			store.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		urls = append(urls, srv.URL)
	}
	rep, err := loadgen.Run(t.Context(), loadgen.Config{URL: urls[0], MoreURLs: urls[1:], Sessions: 6, Turns: 5})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Turns != 30 || rep.History.Violations != 0 || rep.History.SessionsChecked != 6 {
		t.Fatalf("turns %d, history %+v; want 30 turns, 6 sessions checked, no violation", rep.Turns, rep.History)
	}
	for i := range hits {
		if n := hits[i].Load(); n != 10 {
			t.Errorf("instance %d got %d turns; want 10 of 30", i, n)
		}
	}
	if len(rep.MoreURLs) != 2 {
		t.Errorf("report's more_urls = %v; want the 2 others", rep.MoreURLs)
	}
	if _, err := loadgen.Run(t.Context(), loadgen.Config{URL: urls[0], MoreURLs: []string{"127.0.0.1:1"}}); !errors.Is(err, loadgen.ErrBadConfig) {
		t.Errorf("a bad second URL: %v; want ErrBadConfig", err)
	}
}

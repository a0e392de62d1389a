package loadgen_test

import (
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/loadgen"
)

// serveEnv, when set, makes the test binary a server on that address: the
// child that TestCold starts (go-sdk's trick of re-running the test
// binary).
const serveEnv = "LOADGEN_TEST_SERVE"

func TestMain(m *testing.M) {
	if addr := os.Getenv(serveEnv); addr != "" {
		// Start slowly, as a real server reading its configuration does,
		// so the measurement has something to see.
		time.Sleep(30 * time.Millisecond)
		if err := http.ListenAndServe(addr, &toyServer{}); err != nil {
			os.Exit(3)
		}
		return
	}
	os.Exit(m.Run())
}

func TestCold(t *testing.T) {
	addr := freeAddr(t)
	rep, err := loadgen.Cold(t.Context(), loadgen.ColdConfig{
		URL:     "http://" + addr,
		Command: []string{os.Args[0]},
		Env:     append(os.Environ(), serveEnv+"="+addr),
		Runs:    3,
		Timeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := rep.StartToTurn
	if s.Count != 3 || len(rep.SamplesMS) != 3 || s.Min < 30 || s.Max < s.P50 || s.P50 < s.Min {
		t.Fatalf("start → turn %+v, samples %v; want 3 samples of at least the 30ms start delay", s, rep.SamplesMS)
	}
	if _, err := os.Stat("/proc/self/status"); err == nil && rep.PeakRSSKiB <= 0 {
		t.Errorf("peak RSS %d KiB; want it read from /proc", rep.PeakRSSKiB)
	}
	var b strings.Builder
	_ = rep.WriteText(&b)
	if !strings.Contains(b.String(), "spawn → first answered turn, 3 starts") {
		t.Errorf("text report:\n%s", b.String())
	}
}

// TestColdFailures: a server that exits, or never answers, is reported
// with its output.
func TestColdFailures(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		want    string
	}{
		{"exits", []string{"sh", "-c", "echo no config; exit 1"}, "no config"},
		{"never answers", []string{"sleep", "10"}, "no answered turn within"},
		{"missing", []string{"/nonexistent/server"}, "start /nonexistent/server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadgen.Cold(t.Context(), loadgen.ColdConfig{URL: "http://" + freeAddr(t), Command: tc.command, Runs: 2, Timeout: 300 * time.Millisecond})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want it to mention %q", err, tc.want)
			}
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

//go:build unix

// Package rietest runs a Lambda bootstrap under the AWS Lambda Runtime
// Interface Emulator (aws-lambda-rie), the way Lambda runs a provided.al2023
// function: the emulator starts the bootstrap on the first invocation with
// AWS_LAMBDA_RUNTIME_API set, hands it each invocation with its deadline
// and kills it at the function timeout.
//
// The emulator is found as $AWS_LAMBDA_RIE, on PATH, or in $GOPATH/bin,
// where scripts/lambda/install-rie.sh installs the pinned version. A test
// that cannot find it fails (it never skips), naming that script.
package rietest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"go/build"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InstallScript installs the pinned emulator; CI runs it.
const InstallScript = "scripts/lambda/install-rie.sh"

// An Emulator is a running aws-lambda-rie with one function.
type Emulator struct {
	// URL is the invoke endpoint:
	// http://127.0.0.1:<port>/2015-03-31/functions/function/invocations.
	URL string
	// Timeout is the function timeout the emulator enforces.
	Timeout time.Duration

	logs *syncBuffer
}

// Binary returns the path of aws-lambda-rie, or an error naming
// InstallScript.
func Binary() (string, error) {
	if p := os.Getenv("AWS_LAMBDA_RIE"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("aws-lambda-rie"); err == nil {
		return p, nil
	}
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(dir, "bin", "aws-lambda-rie")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("rietest: aws-lambda-rie not found ($AWS_LAMBDA_RIE, PATH, $GOPATH/bin): run %s", InstallScript)
}

// Start runs the bootstrap at path under the emulator with env added to a
// minimal environment (PATH, HOME, TMPDIR) and the function timeout
// rounded up to whole seconds (at least one), and returns when the
// emulator accepts invocations. The emulator and the bootstrap stop when
// the test ends; if the test failed, their output is logged.
func Start(t testing.TB, bootstrap string, env map[string]string, timeout time.Duration) *Emulator {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	secs := max(int((timeout+time.Second-1)/time.Second), 1)
	addrs := freeAddrs(t, 2)
	cmd := exec.Command(bin, "--runtime-interface-emulator-address", addrs[0], "--runtime-api-address", addrs[1], bootstrap)
	cmd.Dir = filepath.Dir(bootstrap)
	cmd.Env = []string{"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(secs)}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GOCOVERDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	e := &Emulator{
		URL:     "http://" + addrs[0] + "/2015-03-31/functions/function/invocations",
		Timeout: time.Duration(secs) * time.Second,
		logs:    &syncBuffer{},
	}
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	// Its own process group, so that the bootstrap it starts is stopped
	// with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("rietest: start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("aws-lambda-rie output:\n%s", e.Logs())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addrs[0], 100*time.Millisecond)
		if err == nil {
			c.Close()
			return e
		}
		select {
		case <-exited:
			t.Fatalf("rietest: aws-lambda-rie exited before listening:\n%s", e.Logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("rietest: aws-lambda-rie not listening on %s after 10s:\n%s", addrs[0], e.Logs())
		}
	}
}

// Logs returns what the emulator and the bootstrap printed so far,
// including the emulator's START, END and REPORT lines (with Init
// Duration on the first).
func (e *Emulator) Logs() string { return e.logs.String() }

// A Result is the emulator's answer to an invocation.
type Result struct {
	// Status is the emulator's HTTP status: 200 also for a function error.
	Status int
	// Payload is the function's answer, or its error
	// {"errorMessage","errorType"}.
	Payload []byte
	// RequestID is the invocation's request id (lambdacontext's
	// AwsRequestID), chosen by Invoke.
	RequestID string
	// Duration is how long the invocation ran, from the emulator's REPORT
	// line.
	Duration time.Duration
}

// Invoke sends one invocation and waits for its answer (at most the
// function timeout plus 10s) and its REPORT line. Invocations of one
// emulator must not overlap: it runs one at a time, like one Lambda
// execution environment.
func (e *Emulator) Invoke(t testing.TB, payload []byte) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e.Timeout+10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	id := newRequestID()
	req.Header.Set("X-Amzn-RequestId", id)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("rietest: invoke: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("rietest: read invoke answer: %v", err)
	}
	res := Result{Status: resp.StatusCode, Payload: body, RequestID: id}
	// The emulator prints REPORT before it answers, but its output reaches
	// us through a pipe, maybe after the answer.
	for wait := time.Now().Add(5 * time.Second); ; {
		if i := slices.IndexFunc(e.Reports(), func(r Report) bool { return r.RequestID == id }); i >= 0 {
			res.Duration = e.Reports()[i].Duration
			return res
		}
		if time.Now().After(wait) {
			t.Fatalf("rietest: no REPORT line for request %s", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newRequestID returns a random UUID-shaped id.
func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// freeAddrs returns n loopback addresses with ports that were free a moment
// ago.
func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	var addrs []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("rietest: find a free port: %v", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return addrs
}

// syncBuffer collects output written from the emulator's copy goroutines.
type syncBuffer struct {
	mu sync.Mutex
	// guarded by mu
	b bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Report is one REPORT line of the emulator: how long an invocation ran.
type Report struct {
	RequestID string
	Duration  time.Duration
}

// Reports parses the REPORT lines printed so far, oldest first.
func (e *Emulator) Reports() []Report {
	var out []Report
	for _, line := range strings.Split(e.Logs(), "\n") {
		rest, ok := strings.CutPrefix(line, "REPORT RequestId: ")
		if !ok {
			continue
		}
		fields := strings.Split(rest, "\t")
		r := Report{RequestID: strings.TrimSpace(fields[0])}
		for _, f := range fields[1:] {
			if v, ok := strings.CutPrefix(strings.TrimSpace(f), "Duration: "); ok {
				r.Duration = parseMillis(strings.TrimSuffix(v, " ms"))
			}
		}
		out = append(out, r)
	}
	return out
}

// InitDuration returns the init phase of the bootstrap as the emulator
// logged it ("INIT REPORT(durationMs: …)"): from starting the process to
// its first request for an invocation. It is false before the first
// invocation. (The "Init Duration" of the REPORT line measures only the
// emulator's own bookkeeping.)
func (e *Emulator) InitDuration() (time.Duration, bool) {
	_, rest, ok := strings.Cut(e.Logs(), "INIT REPORT(durationMs: ")
	if !ok {
		return 0, false
	}
	v, _, _ := strings.Cut(rest, ")")
	return parseMillis(v), true
}

func parseMillis(s string) time.Duration {
	ms, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0
	}
	return time.Duration(ms * float64(time.Millisecond))
}

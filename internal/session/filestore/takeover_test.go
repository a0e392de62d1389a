package filestore_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambdagent/lambdagent/internal/session"
	"github.com/lambdagent/lambdagent/internal/session/filestore"
)

// holderEnv names the session file a child process of TestTakeover opens
// to take a lease and then wait to be killed.
const holderEnv = "FILESTORE_TEST_HOLDER"

// TestTakeover checks #17's fast takeover on the file: a process that
// takes a lease of a minute and is killed with SIGKILL (a real child
// process) leaves its session free for the next process that opens the
// file, at once, not after the lease's TTL; and the lease held by this
// process's own Store stays busy.
func TestTakeover(t *testing.T) {
	if path := os.Getenv(holderEnv); path != "" {
		holdAndWait(path)
		return
	}
	path := filepath.Join(t.TempDir(), "sessions.db")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestTakeover$")
	cmd.Env = append(os.Environ(), holderEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "held") {
		_ = cmd.Process.Kill()
		t.Fatalf("child: %q, %v; want it to say held", line, err)
	}
	_ = cmd.Process.Kill() // SIGKILL: nothing released, nothing closed
	_ = cmd.Wait()
	died := time.Now()

	s := open(t, path, filestore.Config{})
	ctx := t.Context()
	st, err := s.Begin(ctx, session.BeginRequest{ID: "held", LeaseToken: "next", LeaseTTL: time.Minute})
	if err != nil {
		t.Fatalf("Begin of the dead child's session: %v; want its lease taken over", err)
	}
	t.Logf("session free %v after its holder was killed (lease TTL 1m)", time.Since(died).Round(time.Millisecond))
	if st.Version != 1 {
		t.Errorf("version %d; want the child's checkpoint (1 message)", st.Version)
	}
	if _, err := s.Begin(ctx, session.BeginRequest{ID: "held", LeaseToken: "third", LeaseTTL: time.Minute}); !isBusy(err) {
		t.Errorf("Begin of a session this process holds: err = %v; want busy", err)
	}
	if _, err := s.Commit(ctx, session.Commit{ID: "held", LeaseToken: "next", Version: st.Version, Release: true}); err != nil {
		t.Errorf("commit of the new holder: %v", err)
	}
}

func isBusy(err error) bool {
	_, ok := errors.AsType[*session.BusyError](err)
	return ok
}

// holdAndWait is the child of TestTakeover: it takes a lease, commits a
// checkpoint, says "held" and waits to be killed.
func holdAndWait(path string) {
	s, err := filestore.Open(path, filestore.Config{})
	if err != nil {
		os.Exit(2)
	}
	ctx := context.Background()
	if _, err := s.Begin(ctx, session.BeginRequest{ID: "held", LeaseToken: "child", LeaseTTL: time.Minute}); err != nil {
		os.Exit(3)
	}
	if _, err := s.Commit(ctx, session.Commit{ID: "held", LeaseToken: "child", Messages: []json.RawMessage{json.RawMessage(`{"role":"user","content":"hi"}`)}, Pending: "mark"}); err != nil {
		os.Exit(4)
	}
	os.Stdout.WriteString("held\n")
	time.Sleep(time.Minute)
	os.Exit(5)
}

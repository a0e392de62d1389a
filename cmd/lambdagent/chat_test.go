package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestChatScripted drives `lambdagent chat` through stdin and stdout
// against `lambdagent dev`, as a script would.
func TestChatScripted(t *testing.T) {
	p := start(t, "dev", "LAMBDAGENT_DB="+filepath.Join(t.TempDir(), "dev.db"))
	in := "hello\nhow are you?\n/history\n/quit\nnever sent\n"
	out, code := runLambdagent(t, in, nil, "chat", "-url", "http://"+p.addr, "-session", "c1")
	want := `echo: hello (messages: 1)
echo: how are you? (messages: 3)
session c1: 2 turns, 4 messages
  you: hello
  claude: echo: hello (messages: 1)
  you: how are you?
  claude: echo: how are you? (messages: 3)
`
	if diff := cmp.Diff(want, out); code != 0 || diff != "" {
		t.Fatalf("exit code %d; output (-want +got):\n%s", code, diff)
	}
	// The session goes on in a second chat.
	out, code = runLambdagent(t, "again\n/usage\n", nil, "chat", "-url", "http://"+p.addr+"/agent", "-session", "c1")
	if code != 0 || !strings.HasPrefix(out, "echo: again (messages: 5)\nsession c1: 3 turns, 3 model calls\n  tokens: input ") {
		t.Fatalf("exit code %d; output:\n%s", code, out)
	}
}

func TestChatUsage(t *testing.T) {
	for _, args := range [][]string{{"chat", "-url", "ftp://x"}, {"chat", "extra"}, {"chat", "-nope"}} {
		if out, code := runLambdagent(t, "", nil, args...); code == 0 {
			t.Errorf("%v: exit code 0; output:\n%s", args, out)
		}
	}
}

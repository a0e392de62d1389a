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

// TestChatKey drives a scripted chat against a server in mode key: with
// the key it answers; without it, or with a wrong one, it stops at the
// first request saying what to fix, and the key is never printed.
func TestChatKey(t *testing.T) {
	p, key := keyServer(t)
	url := "http://" + p.addr
	wrong := "lga_" + strings.Repeat("a", 12) + key[len("lga_")+12:]
	tests := []struct {
		name string
		env  []string
		args []string
		code int
		want string
	}{
		{"flag", nil, []string{"-key", key}, 0, "session k1: 1 turn, 2 messages"},
		{"environment", []string{"LAMBDAGENT_API_KEY=" + key}, nil, 0, "session k1: 2 turns, 4 messages"},
		{"none", nil, nil, 1, "lambdagent: chatui: the server wants an API key: pass -key or set LAMBDAGENT_API_KEY\n"},
		{"wrong", nil, []string{"-key", wrong}, 1, "lambdagent: chatui: the key was refused\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"chat", "-url", url, "-session", "k1"}, tc.args...)
			out, code := runLambdagent(t, "hello\n/history\n", tc.env, args...)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit code %d, want %d; output (want %q):\n%s", code, tc.code, tc.want, out)
			}
			if tc.code != 0 && out != tc.want {
				t.Errorf("output %q, want only %q", out, tc.want)
			}
			if strings.Contains(out, key[len("lga_")+13:]) || strings.Contains(out, wrong[len("lga_")+13:]) {
				t.Errorf("output shows a key:\n%s", out)
			}
		})
	}
}

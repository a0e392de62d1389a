//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestChatTerminal drives `lambdagent chat` through a pseudo-terminal, as
// a person would: prompts, labelled answers, Up for the last line, the
// arrow keys to fix a typo, Ctrl-D to leave.
func TestChatTerminal(t *testing.T) {
	p := start(t, "dev", "LAMBDAGENT_DB="+filepath.Join(t.TempDir(), "dev.db"))
	master, slave := openPTY(t)
	cmd := exec.Command(binary, "chat", "-url", "http://"+p.addr, "-session", "tty1")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TERM=xterm"}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close() // the child has it

	screen := &syncBuffer{}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			screen.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		master.Close()
		<-readDone
	})

	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(screen.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the screen never showed %q; it shows:\n%q", want, screen.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	typeKeys := func(keys string) {
		t.Helper()
		if _, err := master.Write([]byte(keys)); err != nil {
			t.Fatal(err)
		}
	}

	waitFor("lambdagent chat · session tty1")
	waitFor("you> ")
	typeKeys("hello\r")
	waitFor("claude> echo: hello (messages: 1)")
	waitFor("turn 1 · ")
	// Up brings back "hello".
	typeKeys("\x1b[A\r")
	waitFor("claude> echo: hello (messages: 3)")
	// "wrld", three times Left, "o": "world".
	typeKeys("wrld\x1b[D\x1b[D\x1b[Do\r")
	waitFor("claude> echo: world (messages: 5)")
	typeKeys("/usage\r")
	waitFor("session tty1: 3 turns, 3 model calls")
	typeKeys("\x04") // Ctrl-D on an empty line
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("chat exited with %v; screen:\n%q", err, screen.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("chat did not leave on Ctrl-D; screen:\n%q", screen.String())
	}
}

// openPTY opens a pseudo-terminal pair of 80×24.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	ioctl := func(req uintptr, arg unsafe.Pointer) {
		if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), req, uintptr(arg)); errno != 0 {
			m.Close()
			t.Fatalf("ioctl %#x: %v", req, errno)
		}
	}
	var n uint32
	ioctl(syscall.TIOCGPTN, unsafe.Pointer(&n))
	var unlock int32
	ioctl(syscall.TIOCSPTLCK, unsafe.Pointer(&unlock))
	ws := struct{ row, col, x, y uint16 }{24, 80, 0, 0}
	ioctl(syscall.TIOCSWINSZ, unsafe.Pointer(&ws))
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m, s
}

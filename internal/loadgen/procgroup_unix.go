//go:build unix

package loadgen

import (
	"os"
	"syscall"
)

// newGroup puts a started server in a process group of its own, so that
// killGroup takes along what a wrapper (go run, a shell) started.
func newGroup() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }

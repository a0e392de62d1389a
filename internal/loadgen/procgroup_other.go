//go:build !unix

package loadgen

import (
	"os"
	"syscall"
)

func newGroup() *syscall.SysProcAttr { return nil }

func killGroup(p *os.Process) { _ = p.Kill() }

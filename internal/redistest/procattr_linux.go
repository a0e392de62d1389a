package redistest

import "syscall"

// procAttr makes the kernel kill redis-server when the thread that started
// it exits, so a crashed test binary leaves no server behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

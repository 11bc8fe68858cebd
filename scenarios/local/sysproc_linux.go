package local

import "syscall"

// sysProcAttr puts a child in its own process group, so that it and
// anything it starts can be signalled at once, and has the kernel kill it
// if the platform's process dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

//go:build !linux

package local

import "syscall"

// sysProcAttr puts a child in its own process group, so that it and
// anything it starts can be signalled at once.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

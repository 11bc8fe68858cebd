//go:build unix

package main

import (
	"os"
	"strings"
	"syscall"
)

// stackSetting is the runtime setting that starts goroutines with the
// stack size the program's goroutines have needed on average instead of
// the minimum. The HTTP/2 server starts a goroutine per stream, whose
// stack would otherwise grow, and be copied, on every request: 10 % of the
// proxy's CPU over h2c, and 12–28 % more requests/s with it
// (docs/performance.md). It is read only from GODEBUG at start-up, and a
// //go:debug line cannot set it.
const stackSetting = "adaptivestackstart"

// adaptiveStacks re-executes the proxy, in the same process, with
// adaptivestackstart=1 added to GODEBUG unless GODEBUG already says
// something about it (an operator's choice wins). It returns only when it
// did not re-execute.
func adaptiveStacks() {
	godebug, set := os.LookupEnv("GODEBUG")
	if strings.Contains(godebug, stackSetting+"=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	value := stackSetting + "=1"
	if set && godebug != "" {
		value = godebug + "," + value
	}
	env := []string{"GODEBUG=" + value}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GODEBUG=") {
			env = append(env, kv)
		}
	}
	_ = syscall.Exec(exe, os.Args, env) // on failure, run as we are
}

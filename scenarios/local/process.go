package local

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is one child the platform started, in its own process group.
type process struct {
	name string // pod, proxy or "load"
	log  string // path of its combined stdout and stderr
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and was reaped
	err  error         // Wait's error, valid once done is closed
}

// startProcess starts bin with args in its own process group, in the
// working directory wd (empty: the current one), with env added to the
// environment, and with stdout and stderr appended to logPath.
func startProcess(name, logPath, wd string, env []string, bin string, args ...string) (*process, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	defer f.Close() // the child has its own descriptor once started
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = sysProcAttr()
	cmd.Dir = wd
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	fmt.Fprintf(f, "# %s\n", strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid is the process's id, which is also its process group's id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes how the process ended, with the tail of its log.
func (p *process) exitError() error {
	state := "exited"
	if p.err != nil {
		state = p.err.Error()
	} else if p.cmd.ProcessState != nil {
		state = p.cmd.ProcessState.String()
	}
	return fmt.Errorf("%s %s; last lines of %s:\n%s", p.name, state, p.log, tail(p.log, 20))
}

// signal sends sig to the process's whole group.
func (p *process) signal(sig syscall.Signal) {
	if p.exited() {
		return
	}
	// A negative pid addresses the process group created by Setpgid.
	_ = syscall.Kill(-p.pid(), sig)
}

// stopAll sends SIGTERM to every process group, waits up to grace for all
// of them to exit, then sends SIGKILL to the groups still running and waits
// for every process to be reaped. It stops early waiting for the graceful
// exit, not for the reaping, when ctx ends.
func stopAll(ctx context.Context, procs []*process, grace time.Duration) {
	for _, p := range procs {
		p.signal(syscall.SIGTERM)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for _, p := range procs {
		select {
		case <-p.done:
		case <-timer.C:
		case <-ctx.Done():
		}
		if !p.exited() {
			break
		}
	}
	for _, p := range procs {
		p.signal(syscall.SIGKILL)
	}
	for _, p := range procs {
		<-p.done
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const limit = 8 << 10
	st, err := f.Stat()
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	off := max(0, st.Size()-limit)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && len(lines[0]) == 0 {
		return "(empty)"
	}
	return "  " + string(bytes.Join(lines, []byte("\n  ")))
}

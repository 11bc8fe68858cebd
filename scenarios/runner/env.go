package runner

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Environment describes the machine and the build a run happens on: CPU
// model, cores, Go version, OS and architecture, kernel, hostname, and
// meshbench's version and git commit (from the build information, or from
// `git rev-parse HEAD` when the binary was built without it inside a
// checkout).
func Environment(ctx context.Context) map[string]any {
	env := map[string]any{
		"cpu_model":  cpuModel(),
		"cores":      runtime.NumCPU(),
		"go_version": runtime.Version(),
		"goos":       runtime.GOOS,
		"goarch":     runtime.GOARCH,
		"kernel":     kernelVersion(ctx),
		"version":    "(devel)",
	}
	if h, err := os.Hostname(); err == nil {
		env["hostname"] = h
	}
	commit := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			env["version"] = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				env["git_modified"] = s.Value == "true"
			}
		}
	}
	if commit == "" {
		commit = gitHead(ctx)
	}
	if commit != "" {
		env["git_commit"] = commit
	}
	return env
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// kernelVersion returns the kernel's name and release, as `uname -sr`.
func kernelVersion(ctx context.Context) string {
	ostype, err1 := os.ReadFile("/proc/sys/kernel/ostype")
	release, err2 := os.ReadFile("/proc/sys/kernel/osrelease")
	if err1 == nil && err2 == nil {
		return strings.TrimSpace(string(ostype)) + " " + strings.TrimSpace(string(release))
	}
	return command(ctx, "uname", "-sr")
}

// gitHead returns the commit checked out in the working directory, or "".
func gitHead(ctx context.Context) string {
	return command(ctx, "git", "rev-parse", "HEAD")
}

// command runs a short command and returns its trimmed output, or "" when
// it fails.
func command(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

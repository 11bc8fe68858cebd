package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshbench/meshbench/reports/result"
)

func TestRunVerbUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"run"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "SCENARIO") {
		t.Errorf("run without a scenario: exit %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run(t.Context(), []string{"run", "quick", "--platform", "k8s"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "want local, kind or kube") {
		t.Errorf("run --platform k8s: exit %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run(t.Context(), []string{"run", "quick", "--platform", "kube"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "needs --image") {
		t.Errorf("run --platform kube without --image: exit %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run(t.Context(), []string{"run", filepath.Join(t.TempDir(), "none.yaml")}, &out, &errb); code != 2 || errb.Len() == 0 {
		t.Errorf("run of a missing file: exit %d %q", code, errb.String())
	}
}

func TestRunVerbDryRun(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"run", "--dry-run", "quick", "--network", "127.70"}, &out, &errb); code != 0 || out.Len() == 0 {
		t.Fatalf("dry run: exit %d\nstdout %s\nstderr %s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "127.70.") {
		t.Errorf("dry run does not show the network's addresses:\n%s", out.String())
	}
}

// buildBinaries builds meshbench and meshproxy into one directory, as
// `make build` does.
// buildBinaries builds meshbench and meshproxy as `make build` does
// (static, so that the kind platform can put them in its image) into a
// temporary directory and returns it.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-trimpath", "-o", dir+string(filepath.Separator), "./cmd/meshbench", "./cmd/meshproxy")
	build.Dir = moduleRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building: %v\n%s", err, out)
	}
	return dir
}

// startRun starts `meshbench run quick` as a child; the cleanup kills it if
// the test left it running (its own children die with it: Pdeathsig).
func startRun(t *testing.T, bin, out, network string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	return startMeshbench(t, bin, nil, "run", "quick", "--out", out, "--network", network)
}

// startMeshbench starts bin/meshbench with args as a child, its stderr
// also copied to log when log is not nil; the cleanup kills it if the
// test left it running.
func startMeshbench(t *testing.T, bin string, log io.Writer, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "meshbench"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if log != nil {
		cmd.Stderr = io.MultiWriter(&stderr, log)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, &stdout, &stderr
}

// wait waits for cmd up to d and returns its exit code.
func wait(t *testing.T, cmd *exec.Cmd, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.ExitCode()
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("meshbench run still running after %v", d)
		return -1
	}
}

// leftovers returns the processes whose command line mentions any of
// marks: the run's network base or its results directory.
func leftovers(marks ...string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		for _, m := range marks {
			if strings.Contains(cmdline, m) {
				out = append(out, e.Name()+": "+cmdline)
				break
			}
		}
	}
	return out
}

func readRunInfo(path string) (*result.Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ri result.Run
	if err := json.Unmarshal(b, &ri); err != nil {
		return nil, err
	}
	return &ri, nil
}

func readCellResult(t *testing.T, path string) *result.CellResult {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var res result.CellResult
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &res
}

// lastLine is the last line of the output.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestRunQuick runs the built-in quick scenario end to end on the local
// platform, then again, interrupted after its first cell.
func TestRunQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick scenario")
	}
	bin := buildBinaries(t)

	t.Run("complete", func(t *testing.T) {
		out := t.TempDir()
		cmd, stdout, stderr := startRun(t, bin, out, "127.71")
		code := wait(t, cmd, 10*time.Minute)
		t.Logf("stderr:\n%s", stderr.String())
		if code != 0 {
			t.Fatalf("exit %d, want 0", code)
		}
		dir := lastLine(stdout.String())
		if !strings.HasPrefix(dir, out) {
			t.Fatalf("last stdout line %q: want the run directory under %s", dir, out)
		}
		ri, err := readRunInfo(filepath.Join(dir, result.RunFile))
		if err != nil {
			t.Fatal(err)
		}
		if ri.Incomplete || ri.Finished.IsZero() || ri.Platform != "local" || len(ri.Cells) == 0 {
			t.Fatalf("run.json: %+v", ri)
		}
		for _, c := range ri.Cells {
			if c.Status != result.StatusDone {
				t.Errorf("cell %s: %s %s", c.ID, c.Status, c.Error)
				continue
			}
			res := readCellResult(t, filepath.Join(dir, c.ID, result.ResultFile))
			if res.Requests <= 0 || res.Cell.ID != c.ID {
				t.Errorf("%s: %d requests, cell %q", c.ID, res.Requests, res.Cell.ID)
			}
			if c.Labels["topology"] != "" && c.Labels["topology"] != "baseline" {
				if len(res.Resources.Proxies) == 0 || res.Resources.Total.CPUSeconds <= 0 || res.Resources.Total.RSSPeakBytes <= 0 {
					t.Errorf("%s: resources %+v: want the proxies' CPU and memory", c.ID, res.Resources)
				}
				if len(res.Proxies) == 0 {
					t.Errorf("%s: no proxy metrics", c.ID)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, c.ID, result.HdrLogFile)); err != nil {
				t.Errorf("%s: %v", c.ID, err)
			}
		}
		if n := strings.Count(stderr.String(), "elapsed"); n != 2*len(ri.Cells) {
			t.Errorf("%d progress lines for %d cells, want 2 per cell", n, len(ri.Cells))
		}
		if left := leftovers("127.71.", out); len(left) > 0 {
			t.Errorf("processes left after the run:\n%s", strings.Join(left, "\n"))
		}
	})

	t.Run("interrupted", func(t *testing.T) {
		out := t.TempDir()
		cmd, stdout, stderr := startRun(t, bin, out, "127.72")
		// Wait for the first cell to be done, then interrupt.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		var runFile string
		for runFile == "" {
			matches, _ := filepath.Glob(filepath.Join(out, "*", "*", result.RunFile))
			if len(matches) == 1 {
				if ri, err := readRunInfo(matches[0]); err == nil && len(ri.Cells) > 1 && ri.Cells[0].Status == result.StatusDone {
					runFile = matches[0]
					break
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the first cell did not finish; stderr:\n%s", stderr.String())
			case <-time.After(100 * time.Millisecond):
			}
		}
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		code := wait(t, cmd, 2*time.Minute)
		t.Logf("stderr:\n%s", stderr.String())
		if code != 130 {
			t.Errorf("exit %d, want 130", code)
		}
		if dir := lastLine(stdout.String()); dir != filepath.Dir(runFile) {
			t.Errorf("last stdout line %q, want %q", dir, filepath.Dir(runFile))
		}
		ri, err := readRunInfo(runFile)
		if err != nil {
			t.Fatal(err)
		}
		if !ri.Incomplete || ri.Reason != "interrupted" || !ri.Finished.IsZero() {
			t.Errorf("run.json incomplete %v reason %q finished %v: want an interrupted run", ri.Incomplete, ri.Reason, ri.Finished)
		}
		if ri.Cells[0].Status != result.StatusDone {
			t.Errorf("first cell %s", ri.Cells[0].Status)
		}
		for _, c := range ri.Cells[1:] {
			ok := c.Status == result.StatusPending || (c.Status == result.StatusFailed && c.Error == "interrupted") || c.Status == result.StatusDone
			if !ok {
				t.Errorf("cell %s after the interruption: %s %q", c.ID, c.Status, c.Error)
			}
		}
		if ri.Cells[len(ri.Cells)-1].Status != result.StatusPending {
			t.Errorf("the last cell ran although the run was interrupted")
		}
		res := readCellResult(t, filepath.Join(filepath.Dir(runFile), ri.Cells[0].ID, result.ResultFile))
		if res.Requests <= 0 || res.Incomplete {
			t.Errorf("the finished cell's result: %d requests, incomplete %v", res.Requests, res.Incomplete)
		}
		if left := leftovers("127.72.", out); len(left) > 0 {
			t.Errorf("processes left after the interruption:\n%s", strings.Join(left, "\n"))
		}
	})
}

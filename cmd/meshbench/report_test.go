package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// copyRun copies the reports package's fixture run into dir/<name>.
func copyRun(t *testing.T, dir, name string) string {
	t.Helper()
	src := filepath.Join("..", "..", "reports", "testdata", "run1")
	dst := filepath.Join(dir, name)
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func reportLastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

func TestReportVerb(t *testing.T) {
	scenario := t.TempDir()
	runDir := copyRun(t, scenario, "20260115T100000Z")
	out := filepath.Join(t.TempDir(), "rep")

	// Flags after the directory, as the usage line shows.
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"report", runDir, "--out", out}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	if got := reportLastLine(stdout.String()); got != filepath.Join(out, "report.html") {
		t.Errorf("last stdout line = %q, want the report.html path", got)
	}
	for _, f := range []string{"report.html", "report.md", "plots/percentiles.png", "plots/percentiles.svg",
		"export/baseline-none-none-r1.fortio.json", "export/baseline-none-none-r1.smp.json"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	if !strings.Contains(stderr.String(), "2 of 12 cells have no result") || !strings.Contains(stderr.String(), "incomplete") {
		t.Errorf("stderr does not warn of missing cells: %q", stderr.String())
	}

	// A scenario's directory: the newest run is used, by default into
	// DIR/report, and the choice is reported.
	stdout.Reset()
	stderr.Reset()
	code = run(t.Context(), []string{"report", scenario}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("scenario dir: exit %d: %s", code, stderr.String())
	}
	if got, want := reportLastLine(stdout.String()), filepath.Join(runDir, "report", "report.html"); got != want {
		t.Errorf("scenario dir: last line %q, want %q", got, want)
	}
	if !strings.Contains(stderr.String(), "newest run "+runDir) {
		t.Errorf("scenario dir: stderr does not name the run it picked: %q", stderr.String())
	}
}

func TestReportVerbErrors(t *testing.T) {
	empty := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"not a run", []string{"report", empty}, 1, "no run.json"},
		{"missing dir", []string{"report", filepath.Join(empty, "nope")}, 1, "no such file"},
		{"no dir", []string{"report"}, 2, "want one run directory"},
		{"two dirs", []string{"report", empty, empty}, 2, "want one run directory"},
		{"bad flag", []string{"report", "--frob", empty}, 2, "frob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tc.code, tc.msg)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
		})
	}
}

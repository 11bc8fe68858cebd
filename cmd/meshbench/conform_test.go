package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/suite"
)

func TestConformBadInput(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--proxy", "linkerd"}, `unknown proxy "linkerd"`},
		{[]string{"--profile", "nope"}, `--profile "nope": no such profile`},
		{[]string{"--run", "("}, "--run: error parsing regexp"},
		{[]string{"--run", "^no-such-check$"}, "no check matches"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var stdout, stderr strings.Builder
		code := run(t.Context(), append([]string{"conform"}, tc.args...), &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("conform %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
	var stdout, stderr strings.Builder
	if code := run(t.Context(), []string{"conform", "--list", "--profile", "core-http"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "core-http/http1") {
		t.Errorf("conform --list: exit %d, %q", code, stdout.String())
	}
}

// TestConformAll runs the whole suite, as a user would, against the
// reference proxy and every installed peer: the reference passes every
// check, no peer fails a check it claims to support (but for the known
// intermittent failures the expected matrix allows), every status is the
// expected matrix's, and the results are written in every form.
func TestConformAll(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole conformance suite")
	}
	proxies := []string{"reference"}
	for _, b := range []string{"nginx", "haproxy", "caddy"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("MESHBENCH_REQUIRE_PEERS") == "1" {
				t.Fatalf("%s not on PATH: install the Debian package %s", b, b)
			}
			t.Logf("%s not on PATH (Debian package %s): not in this run", b, b)
			continue
		}
		proxies = append(proxies, b)
	}
	proxies = append(proxies, "envoy")
	bin := buildBinaries(t)
	out := t.TempDir()
	cmd, stdout, stderr := startMeshbench(t, bin, nil, "conform", "--proxy", strings.Join(proxies, ","), "--out", out)
	code := wait(t, cmd, 25*time.Minute)
	t.Logf("stdout:\n%s", stdout.String())
	if code != 0 && code != 1 {
		t.Fatalf("exit %d, want 0 (or 1 for a known intermittent failure of a peer); stderr:\n%s", code, stderr.String())
	}
	want := readMatrix(t)
	b, err := os.ReadFile(filepath.Join(out, "conformance.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep conformance.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Checks) != len(suite.Checks()) || len(rep.Proxies) != len(proxies) || rep.Incomplete {
		t.Fatalf("conformance.json: %d checks, %d proxies, incomplete %v; want %d, %d, false", len(rep.Checks), len(rep.Proxies), rep.Incomplete, len(suite.Checks()), len(proxies))
	}
	requireTools := os.Getenv("MESHBENCH_REQUIRE_TOOLS") == "1"
	for _, p := range rep.Proxies {
		if p.Version == "" {
			t.Errorf("%s: no version", p.Name)
		}
		for _, r := range p.Results {
			switch {
			case r.Status == conformance.StatusFail && p.Name != "reference" && slices.Contains(want[p.Name][r.ID], "fail"):
				t.Logf("%s on %s: a known intermittent failure (testdata/conform-matrix.txt): %s", r.ID, p.Name, r.Reason)
			case r.Status == conformance.StatusFail:
				t.Errorf("%s on %s: fail: %s", r.ID, p.Name, r.Reason)
			case p.Name == "reference" && r.Status != conformance.StatusPass && !(r.Status == conformance.StatusSkipped && !requireTools):
				t.Errorf("%s on the reference proxy: %s (%s), want pass", r.ID, r.Status, r.Reason)
			case r.Status == conformance.StatusSkipped && requireTools:
				t.Errorf("%s on %s: skipped with MESHBENCH_REQUIRE_TOOLS=1: %s", r.ID, p.Name, r.Reason)
			case r.Status == conformance.StatusUnsupported && r.Reason == "":
				t.Errorf("%s on %s: n/a without a reason", r.ID, p.Name)
			case p.Name == "envoy" && p.ConfigOnly && r.Status == conformance.StatusPass:
				t.Errorf("%s on envoy: pass without an envoy binary", r.ID)
			}
		}
	}
	for _, p := range proxies {
		x, err := os.ReadFile(filepath.Join(out, "junit-"+p+".xml"))
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Suites []struct {
				Tests int `xml:"tests,attr"`
			} `xml:"testsuite"`
		}
		if err := xml.Unmarshal(x, &v); err != nil {
			t.Fatalf("junit-%s.xml: %v", p, err)
		}
		n := 0
		for _, s := range v.Suites {
			n += s.Tests
		}
		if n != len(suite.Checks()) {
			t.Errorf("junit-%s.xml: %d test cases, want %d", p, n, len(suite.Checks()))
		}
	}
	for _, f := range []string{"report.md", "report.html"} {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range suite.Checks() {
			if !strings.Contains(string(b), c.ID) {
				t.Errorf("%s does not name %s", f, c.ID)
			}
		}
	}
	if !strings.Contains(stdout.String(), "pass/fail/n-a/skip") {
		t.Errorf("no matrix on stdout")
	}
	if code == 1 && !rep.Failed() {
		t.Errorf("exit 1 without a failed check")
	}
	checkMatrix(t, &rep, want)
}

// readMatrix reads the expected matrix (testdata/conform-matrix.txt, the
// one docs/conformance.md shows): per proxy and check the statuses
// allowed, "pass|fail" where a peer is known to fail a check now and then.
func readMatrix(t *testing.T) map[string]map[string][]string {
	t.Helper()
	b, err := os.ReadFile("testdata/conform-matrix.txt")
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	want := map[string]map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) == 0 || strings.HasPrefix(l, "#"):
		case f[0] == "check":
			cols = f[1:]
		default:
			for i, s := range f[1:] {
				if want[cols[i]] == nil {
					want[cols[i]] = map[string][]string{}
				}
				want[cols[i]][f[0]] = strings.Split(s, "|")
			}
		}
	}
	return want
}

// checkMatrix compares each proxy's statuses with the expected matrix: a
// check that turns n/a, or a peer's n/a that turns into a pass, is a
// change to look at and to write down. Envoy's column holds where no
// envoy binary is installed.
func checkMatrix(t *testing.T, rep *conformance.Report, want map[string]map[string][]string) {
	t.Helper()
	var got strings.Builder
	got.WriteString("check")
	for _, p := range rep.Proxies {
		got.WriteString(" " + p.Name)
	}
	for _, c := range rep.Checks {
		got.WriteString("\n" + c.ID)
		for _, p := range rep.Proxies {
			r, _ := p.Result(c.ID)
			got.WriteString(" " + string(r.Status))
		}
	}
	differ := false
	for _, p := range rep.Proxies {
		if p.Name == "envoy" && !p.ConfigOnly {
			continue
		}
		for _, r := range p.Results {
			if w := want[p.Name][r.ID]; !slices.Contains(w, string(r.Status)) {
				differ = true
				t.Errorf("%s on %s: %s, the expected matrix says %s (%s)", r.ID, p.Name, r.Status, strings.Join(w, " or "), r.Reason)
			}
		}
	}
	if differ {
		t.Logf("this run's matrix, for testdata/conform-matrix.txt once the change is understood:\n%s", got.String())
	}
}

// TestConformFailExit runs a check against a "reference proxy" that is not
// one (meshbench itself, which refuses meshproxy's flags): the check
// fails, the matrix says FAIL with the reason, and the exit status is 1.
func TestConformFailExit(t *testing.T) {
	bin := buildBinaries(t)
	out := t.TempDir()
	cmd, stdout, stderr := startMeshbench(t, bin, nil, "conform", "--proxy", "reference", "--run", "^core-http/http1$",
		"--meshproxy", filepath.Join(bin, "meshbench"), "--out", out)
	if code := wait(t, cmd, 2*time.Minute); code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout.String(), "FAIL core-http/http1 on reference: ") || !strings.Contains(stdout.String(), "exited before it was ready") {
		t.Errorf("stdout does not give the failure and its reason:\n%s", stdout)
	}
	b, err := os.ReadFile(filepath.Join(out, "junit-reference.xml"))
	if err != nil || !strings.Contains(string(b), "<failure") {
		t.Errorf("junit-reference.xml has no failure: %v\n%s", err, b)
	}
}

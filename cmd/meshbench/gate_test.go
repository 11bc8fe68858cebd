package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/internal/inject"
	"github.com/meshbench/meshbench/reports/gate"
	"github.com/meshbench/meshbench/scenarios"
)

func TestGateBadInput(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "g.yaml")
	if err := os.WriteFile(spec, []byte("metrics: [{metric: p50, relative: 5%}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("metrics: [{metric: p50, relative: 5%, threshold: 3}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"gate", dir}, "--baseline GATE.yaml is required"},
		{[]string{"gate", "--baseline", bad, dir}, "metrics[0].threshold"},
		{[]string{"gate", "--baseline", filepath.Join(dir, "none.yaml"), dir}, "reading the gate spec"},
		{[]string{"gate", "--baseline", spec, filepath.Join(dir, "no-such-run")}, "no-such-run"},
		{[]string{"gate", "--baseline", spec}, "want one RUN_DIR"},
		{[]string{"gate", "--baseline", spec, "--base-proxy", exe}, "--base-proxy and --candidate-proxy go together"},
		{[]string{"gate", "--baseline", spec, "--base-proxy", exe, "--candidate-proxy", exe}, "scenario: required to run the gate"},
		{[]string{"gate", "--baseline", spec, "--inconclusive-exit", "5", dir}, "--inconclusive-exit 5"},
		{[]string{"gate", "--baseline", spec, "--out", dir, dir}, "--report DIR"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		if code != gate.ExitBadInput || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// TestGateEndToEnd runs the default gate (ci/gate.yaml) in its quick form
// twice on the local platform: two identical builds of meshproxy pass,
// and a candidate built to busy-wait 150 µs in every forwarded request
// (package inject) fails with exit 1 on the added latency.
func TestGateEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the gate's scenario twice")
	}
	bin := buildBinaries(t)
	root := moduleRoot(t)
	same := filepath.Join(t.TempDir(), "meshproxy-same")
	copyFile(t, filepath.Join(bin, "meshproxy"), same)
	slow := filepath.Join(t.TempDir(), "meshproxy-slow")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := inject.Build(ctx, root, slow, inject.KindLatency, 150*time.Microsecond); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(root, "ci", "gate.yaml")

	// An inconclusive verdict passes here (exit 0): what must hold is that
	// two identical builds are never a regression, and that a real one
	// is. docs/gate.md has the rates of the full form.
	gateRun := func(t *testing.T, candidate string) (int, *gate.Result, string) {
		out := t.TempDir()
		cmd, stdout, stderr := startMeshbench(t, bin, nil, "gate", "--baseline", spec, "--quick",
			"--base-proxy", filepath.Join(bin, "meshproxy"), "--candidate-proxy", candidate,
			"--inconclusive-exit", "0", "--out", out, "--network", "127.74")
		code := wait(t, cmd, 10*time.Minute)
		t.Logf("stderr:\n%s", stderr.String())
		dir := lastLine(stdout.String())
		b, err := os.ReadFile(filepath.Join(dir, "gate.json"))
		if err != nil {
			t.Fatalf("exit %d: %v", code, err)
		}
		var res gate.Result
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"gate.md", "gate.junit.xml", "gate-ratios.png"} {
			if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
				t.Errorf("%s: %v", f, err)
			}
		}
		if left := leftovers("127.74.", out); len(left) > 0 {
			t.Errorf("processes left after the gate:\n%s", strings.Join(left, "\n"))
		}
		return code, &res, stderr.String()
	}

	t.Run("identical builds pass", func(t *testing.T) {
		code, res, _ := gateRun(t, same)
		if code != 0 || res.Verdict == gate.Regression || !res.Identical {
			t.Errorf("exit %d, verdict %s, identical %v: want 0, no regression, true", code, res.Verdict, res.Identical)
		}
		for _, r := range res.Rows {
			if r.Verdict == gate.Regression || len(r.Pairs) < 3 {
				t.Errorf("%s: %s with %d pairs (%s)", r.Metric, r.Verdict, len(r.Pairs), r.Reason)
			}
		}
		if len(res.Variants) != 4 {
			t.Errorf("compared variants %v: want sidecar and daemonset over http1 and grpc", res.Variants)
		}
	})
	t.Run("injected latency fails", func(t *testing.T) {
		code, res, stderr := gateRun(t, slow)
		if code != 1 || res.Verdict != gate.Regression || res.Identical {
			t.Errorf("exit %d, verdict %s: want 1, regression", code, res.Verdict)
		}
		for _, r := range res.Rows {
			if r.Metric == gate.MetricP50 && r.Verdict != gate.Regression {
				t.Errorf("p50: %s (%s), want regression", r.Verdict, r.Reason)
			}
		}
		if !strings.Contains(stderr, "REGRESSION") {
			t.Error("the terminal table names no regression")
		}
	})
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod)))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestCISpecs checks every gate spec under ci/: it parses, its scenario
// opens, and with two builds every compared variant runs both of them.
func TestCISpecs(t *testing.T) {
	root := moduleRoot(t)
	files, _ := filepath.Glob(filepath.Join(root, "ci", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join(root, "ci", "gates", "*.yaml"))
	files = append(files, more...)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	specs := 0
	for _, f := range files {
		spec, err := gate.Load(f)
		if err != nil {
			if strings.HasSuffix(f, "-scenario.yaml") {
				continue // a scenario, not a spec
			}
			t.Errorf("%s: %v", f, err)
			continue
		}
		specs++
		sc, err := scenarios.Open(spec.ScenarioPath())
		if err != nil {
			t.Errorf("%s: scenario %s: %v", f, spec.Scenario, err)
			continue
		}
		var builds buildFlag
		for _, b := range []string{"base", "candidate"} {
			if err := builds.Set(b + "=" + exe); err != nil {
				t.Fatal(err)
			}
		}
		ab, _, err := applyBuilds(sc, &builds)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		cells, err := ab.Cells(scenarios.CellOptions{Quick: spec.Quick, Repeats: spec.Repeats})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		runs := map[string]int{}
		for _, c := range cells {
			runs[c.Labels["proxy"]]++
		}
		if runs[spec.Base] == 0 || runs[spec.Base] != runs[spec.Candidate] {
			t.Errorf("%s: cells per proxy %v: want as many of %s as of %s", f, runs, spec.Base, spec.Candidate)
		}
	}
	if specs < 7 {
		t.Errorf("%d gate specs under ci/, want ci/gate.yaml and one per built-in scenario", specs)
	}
}

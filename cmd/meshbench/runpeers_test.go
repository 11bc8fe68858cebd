package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/reports/result"
)

// TestRunPeersQuick runs the built-in peers scenario with --quick: the
// reference proxy, nginx, HAProxy and Caddy each as sidecars and node
// proxies over HTTP/1.1 and gRPC, without an error and through every pod;
// Envoy, which no package provides here, and the balancers a peer lacks
// are n/a with their reason; the report sets the proxies side by side.
func TestRunPeersQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the peers scenario")
	}
	for _, b := range []string{"nginx", "haproxy", "caddy"} {
		if _, err := exec.LookPath(b); err != nil {
			if os.Getenv("MESHBENCH_REQUIRE_PEERS") == "1" {
				t.Fatalf("%s not on PATH: install the Debian package %s", b, b)
			}
			t.Skipf("%s not on PATH (Debian package %s)", b, b)
		}
	}
	_, envoyErr := exec.LookPath("envoy")
	bin := buildBinaries(t)
	out := t.TempDir()
	cmd, stdout, stderr := startMeshbench(t, bin, nil, "run", "peers", "--quick", "--out", out, "--network", "127.73")
	code := wait(t, cmd, 15*time.Minute)
	t.Logf("stderr:\n%s", stderr.String())
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	dir := lastLine(stdout.String())
	ri, err := readRunInfo(filepath.Join(dir, result.RunFile))
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]bool{}
	for _, c := range ri.Cells {
		l := c.Labels
		proxy, topo := l["proxy"], l["topology"]
		switch {
		case proxy == "envoy" && envoyErr != nil:
			if c.Status != result.StatusNA || !strings.Contains(c.Error, "not run: no envoy binary") {
				t.Errorf("%s: %s %q, want n/a: not run", c.ID, c.Status, c.Error)
			}
			continue
		case l["balancer"] == "peak_ewma" && proxy != "reference":
			if c.Status != result.StatusNA || !strings.Contains(c.Error, "latency-aware") {
				t.Errorf("%s: %s %q, want n/a: no latency-aware balancer", c.ID, c.Status, c.Error)
			}
			continue
		}
		if c.Status != result.StatusDone {
			t.Errorf("%s: %s %s", c.ID, c.Status, c.Error)
			continue
		}
		res := readCellResult(t, filepath.Join(dir, c.ID, result.ResultFile))
		if res.Labels["proxy"] != proxy {
			t.Errorf("%s: labels.proxy %q, want %q", c.ID, res.Labels["proxy"], proxy)
		}
		if l["degradation"] == "none" && (res.Errors.Total != 0 || len(res.Endpoints) != 5) {
			t.Errorf("%s: %d errors, endpoints %v: want none and all 5 pods", c.ID, res.Errors.Total, res.Endpoints)
		}
		if topo != "baseline" {
			if len(res.Resources.Proxies) == 0 || res.Resources.Total.CPUSeconds <= 0 || res.Resources.Total.RSSPeakBytes <= 0 {
				t.Errorf("%s: resources %+v: want every proxy's CPU and memory", c.ID, res.Resources.Total)
			}
			ran[proxy+" "+topo+" "+l["protocol"]] = true
		}
	}
	for _, p := range []string{"reference", "nginx", "haproxy", "caddy"} {
		for _, topo := range []string{"sidecar", "daemonset"} {
			for _, proto := range []string{"http1", "grpc"} {
				if !ran[p+" "+topo+" "+proto] {
					t.Errorf("%s as %s over %s did not run", p, topo, proto)
				}
			}
		}
	}
	if f, ok := ri.Cluster["peers"].(map[string]any); !ok || f["nginx"] == nil || f["haproxy"] == nil || f["caddy"] == nil {
		t.Errorf("run.json cluster facts %v: want each peer's version", ri.Cluster["peers"])
	}

	rep := exec.Command(filepath.Join(bin, "meshbench"), "report", dir)
	if b, err := rep.CombinedOutput(); err != nil {
		t.Fatalf("meshbench report: %v\n%s", err, b)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	sec := section(string(md), "## Proxy comparison")
	for _, p := range []string{"reference", "nginx", "haproxy", "caddy"} {
		for _, topo := range []string{"sidecar", "daemonset"} {
			if !strings.Contains(sec, "| "+p+" | "+topo+" |") {
				t.Errorf("report.md's proxy comparison has no row for %s as %s:\n%s", p, topo, sec)
			}
		}
	}
	if na := section(string(md), "## Not applicable (n/a)"); !strings.Contains(na, "n/a — nginx: no latency-aware balancer") {
		t.Errorf("report.md's n/a section does not give nginx's reason:\n%s", na)
	}
	if left := leftovers("127.73.", out); len(left) > 0 {
		t.Errorf("processes left after the run:\n%s", strings.Join(left, "\n"))
	}
}

// section returns the part of a Markdown document from heading to the
// next heading of the same level.
func section(doc, heading string) string {
	_, rest, ok := strings.Cut(doc, heading+"\n")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/kind/cluster"
	"github.com/meshbench/meshbench/kind/kindtest"
	"github.com/meshbench/meshbench/reports/result"
)

// TestRunQuickOnKind runs the quick scenario on a 2-node kind cluster that
// the run creates and deletes: baseline, sidecar and daemonset measured on
// Kubernetes, with the same results as on the local platform, the
// cluster's facts in run.json, and a report.
func TestRunQuickOnKind(t *testing.T) {
	kindtest.Require(t)
	dir := buildBinaries(t)
	name := kindRunCluster(t, "meshbench-e2e")
	log := slog.New(slog.DiscardHandler)
	cmd, stdout, _ := startMeshbench(t, dir, testWriter{t}, "run", "quick", "--platform", "kind", "--cluster-name", name, "--out", t.TempDir())
	if code := wait(t, cmd, 14*time.Minute); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	if ok, err := cluster.Exists(name, log); err != nil || ok {
		t.Errorf("the run's cluster still exists (%v) after the run", err)
	}
	runDir := lastLine(stdout.String())
	ri, err := readRunInfo(filepath.Join(runDir, result.RunFile))
	if err != nil {
		t.Fatal(err)
	}
	if ri.Platform != "kind" || ri.Incomplete || ri.Cluster["kubernetes_version"] == nil || ri.Cluster["node_image"] == nil || ri.Cluster["nodes"] != float64(2) {
		t.Fatalf("run.json: platform %q incomplete %v cluster %v", ri.Platform, ri.Incomplete, ri.Cluster)
	}
	for _, c := range ri.Cells {
		if c.Status != result.StatusDone {
			t.Errorf("cell %s: %s %s", c.ID, c.Status, c.Error)
			continue
		}
		res := readCellResult(t, filepath.Join(runDir, c.ID, result.ResultFile))
		if res.Requests < 100 || res.Errors.Total != 0 {
			t.Errorf("%s: %d requests, errors %+v", c.ID, res.Requests, res.Errors)
		}
		// Every echo pod answered: the proxies found them all.
		if len(res.Endpoints) != 3 {
			t.Errorf("%s: endpoints %v, want the 3 echo pods", c.ID, res.Endpoints)
		}
		if _, err := os.Stat(filepath.Join(runDir, c.ID, "manifests.yaml")); err != nil {
			t.Errorf("%s: %v", c.ID, err)
		}
		if c.Labels["topology"] == "baseline" {
			continue
		}
		if len(res.Resources.Proxies) == 0 || res.Resources.Total.RSSPeakBytes <= 0 || res.Resources.Total.CPUSeconds <= 0 {
			t.Errorf("%s: resources %+v: want the proxies' CPU and memory from the kubelets", c.ID, res.Resources)
		}
		var routed int64
		for _, pm := range res.Proxies {
			for _, eps := range pm.Endpoints {
				for _, n := range eps {
					routed += n
				}
			}
		}
		// Every measured request crosses at least one proxy, a sidecar's
		// two. The proxies' account starts at the runner's first scrape,
		// up to a status poll (200 ms) and the scrapes through the API
		// server after the load generator's measured part began: half the
		// requests is far below what it can miss.
		if len(res.Proxies) == 0 || routed < res.Requests/2 {
			t.Errorf("%s: proxy metrics %d proxies, %d upstream requests for %d requests", c.ID, len(res.Proxies), routed, res.Requests)
		}
	}
	var rout bytes.Buffer
	if code := run(t.Context(), []string{"report", runDir}, &rout, io.Discard); code != 0 {
		t.Fatalf("report: exit %d", code)
	}
	md, err := os.ReadFile(filepath.Join(runDir, "report", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"sidecar", "daemonset", "kubernetes_version", "node_image"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report.md does not mention %s", want)
		}
	}
}

// kindRunCluster names the kind cluster a test's run creates (and deletes)
// and makes sure it is gone when the test ends.
func kindRunCluster(t *testing.T, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	log := slog.New(slog.DiscardHandler)
	t.Cleanup(func() {
		if ok, _ := cluster.Exists(name, log); ok {
			t.Errorf("kind cluster %s left behind; deleting it", name)
			if c, err := cluster.Open(t.Context(), name, log); err == nil {
				_ = c.Delete(t.Context())
			}
		}
	})
	return name
}

// testWriter sends a child's output to the test log, line by line.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestGeneratorsOnKind shares each cell's load between two generator pods
// on the two nodes of a kind cluster and compares it with one generator
// at the same total rate in the same cluster: the merged histograms keep
// every request, each generator's own figures are kept, and the two
// measurements agree.
func TestGeneratorsOnKind(t *testing.T) {
	kindtest.Require(t)
	dir := buildBinaries(t)
	name := fmt.Sprintf("meshbench-gens-%d", os.Getpid())
	log := slog.New(slog.DiscardHandler)
	t.Cleanup(func() {
		if c, err := cluster.Open(context.Background(), name, log); err == nil {
			_ = c.Delete(context.Background())
		}
	})
	doc := `name: gens
nodes: 2
services:
- {name: echo, replicas: 2, backend: {latency: "fixed:2ms"}}
load: {service: echo, rate: 200, connections: 4, duration: 4s, warmup: 1s, generators: %d}
matrix:
  topology: [sidecar, daemonset]
`
	results := map[int]map[string]*result.CellResult{}
	for _, n := range []int{1, 2} {
		file := filepath.Join(t.TempDir(), "gens.yaml")
		if err := os.WriteFile(file, []byte(fmt.Sprintf(doc, n)), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd, stdout, _ := startMeshbench(t, dir, testWriter{t}, "run", file, "--platform", "kind", "--cluster-name", name, "--keep-cluster", "--out", t.TempDir())
		if code := wait(t, cmd, 14*time.Minute); code != 0 {
			t.Fatalf("%d generators: exit %d", n, code)
		}
		runDir := lastLine(stdout.String())
		results[n] = map[string]*result.CellResult{}
		for _, topo := range []string{"sidecar", "daemonset"} {
			results[n][topo] = readCellResult(t, filepath.Join(runDir, topo+"-r1", result.ResultFile))
		}
	}
	for _, topo := range []string{"sidecar", "daemonset"} {
		one, two := results[1][topo], results[2][topo]
		if one.Errors.Total != 0 || two.Errors.Total != 0 {
			t.Errorf("%s: errors %d and %d", topo, one.Errors.Total, two.Errors.Total)
		}
		compareGenerators(t, topo, one, two, 200)
		// In sidecar cells each generator pod has its own client sidecar.
		sidecars := 0
		for _, p := range two.Resources.Proxies {
			if strings.HasPrefix(p.Name, "sidecar-client") {
				sidecars++
			}
		}
		if want := map[string]int{"sidecar": 2, "daemonset": 0}[topo]; sidecars != want {
			t.Errorf("%s: %d client sidecars sampled, want %d", topo, sidecars, want)
		}
	}
}

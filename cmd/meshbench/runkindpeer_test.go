package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshbench/meshbench/kind/kindtest"
	"github.com/meshbench/meshbench/reports/result"
)

// TestRunPeerOnKind runs HAProxy as sidecars and as node proxies on a
// 2-node kind cluster the run creates and deletes: its image built from
// the host's binary and libraries, its configuration rendered for the
// cluster with the pods' IPs, every pod reached, no error.
func TestRunPeerOnKind(t *testing.T) {
	kindtest.Require(t)
	if _, err := exec.LookPath("haproxy"); err != nil {
		if os.Getenv("MESHBENCH_REQUIRE_PEERS") == "1" {
			t.Fatal("haproxy not on PATH: install the Debian package haproxy")
		}
		t.Skip("haproxy not on PATH (Debian package haproxy)")
	}
	bin := buildBinaries(t)
	name := kindRunCluster(t, "meshbench-e2e-peer")
	scenario := filepath.Join(t.TempDir(), "peer-kind.yaml")
	if err := os.WriteFile(scenario, []byte(`name: peer-kind
nodes: 2
services: [{name: echo, replicas: 3, backend: {latency: "fixed:1ms"}}]
load: {rate: 100, connections: 3, duration: 3s, warmup: 1s, timeout: 2s}
matrix:
  topology: [sidecar, daemonset]
  proxy: [haproxy]
  balancer: [round_robin]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, stdout, _ := startMeshbench(t, bin, testWriter{t}, "run", scenario, "--platform", "kind", "--cluster-name", name, "--out", t.TempDir())
	if code := wait(t, cmd, 12*time.Minute); code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	runDir := lastLine(stdout.String())
	ri, err := readRunInfo(filepath.Join(runDir, result.RunFile))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := ri.Cluster["peers"].(map[string]any); v["haproxy"] == nil {
		t.Errorf("run.json cluster facts: peers %v, want haproxy's version", ri.Cluster["peers"])
	}
	for _, c := range ri.Cells {
		if c.Status != result.StatusDone {
			t.Errorf("cell %s: %s %s", c.ID, c.Status, c.Error)
			continue
		}
		res := readCellResult(t, filepath.Join(runDir, c.ID, result.ResultFile))
		if res.Labels["proxy"] != "haproxy" || res.Requests < 100 || res.Errors.Total != 0 || len(res.Endpoints) != 3 {
			t.Errorf("%s: proxy %q, %d requests, errors %+v, endpoints %v: want haproxy, no error, the 3 echo pods",
				c.ID, res.Labels["proxy"], res.Requests, res.Errors, res.Endpoints)
		}
		if len(res.Resources.Proxies) == 0 || res.Resources.Total.RSSPeakBytes <= 0 {
			t.Errorf("%s: resources %+v: want the proxies' CPU and memory from the kubelets", c.ID, res.Resources.Total)
		}
		manifests, err := os.ReadFile(filepath.Join(runDir, c.ID, "manifests.yaml"))
		if err != nil || !bytes.Contains(manifests, []byte("meshbench/peer-haproxy:")) {
			t.Errorf("%s: manifests.yaml does not run the haproxy image (%v)", c.ID, err)
		}
	}
}

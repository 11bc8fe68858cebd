package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/reports/result"
)

// TestRunMigrationQuick runs the built-in migration scenario quickly: one
// total rate, HTTP/1.1 and gRPC at once through the same proxies; every
// cell keeps each stream's own figures beside the merged ones.
func TestRunMigrationQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the migration scenario")
	}
	bin := buildBinaries(t)
	out := t.TempDir()
	cmd, stdout, stderr := startMeshbench(t, bin, nil, "run", "migration", "--quick", "--out", out, "--network", "127.75")
	if code := wait(t, cmd, 10*time.Minute); code != 0 {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
	dir := lastLine(stdout.String())
	ri, err := readRunInfo(filepath.Join(dir, result.RunFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(ri.Cells) != 9 || strings.Join(ri.Dimensions, ",") != "topology,mix" {
		t.Fatalf("%d cells, dimensions %v", len(ri.Cells), ri.Dimensions)
	}
	for _, c := range ri.Cells {
		if c.Status != result.StatusDone {
			t.Errorf("cell %s: %s %s", c.ID, c.Status, c.Error)
			continue
		}
		res := readCellResult(t, filepath.Join(dir, c.ID, result.ResultFile))
		want := map[string]string{"100-0": "http1", "50-50": "http1 grpc", "0-100": "grpc"}[c.Labels["mix"]]
		var got []string
		var sum int64
		for _, m := range res.Mix {
			got = append(got, m.Stream)
			sum += m.Requests
			if m.Latency.P50 <= 0 || m.Histogram == "" {
				t.Errorf("%s stream %s: p50 %d, histogram %d bytes", c.ID, m.Stream, m.Latency.P50, len(m.Histogram))
			}
			if m.Invalid != "" { // a busy machine; the report leaves the cell out
				t.Logf("%s stream %s: invalid: %s", c.ID, m.Stream, m.Invalid)
			}
		}
		if strings.Join(got, " ") != want || sum != res.Requests || res.Protocol != "mix" || math.Abs(res.AchievedRate-400) > 20 {
			t.Errorf("%s: streams %v (want %s), %d of %d requests, protocol %s, %.0f req/s", c.ID, got, want, sum, res.Requests, res.Protocol, res.AchievedRate)
		}
		if c.Labels["mix"] == "50-50" && (res.Mix[0].RequestedRate != 200 || res.Mix[1].RequestedRate != 200) {
			t.Errorf("%s: requested %v and %v, want half of 400 each", c.ID, res.Mix[0].RequestedRate, res.Mix[1].RequestedRate)
		}
	}
	var rep, rerr strings.Builder
	if code := run(t.Context(), []string{"report", dir}, &rep, &rerr); code != 0 {
		t.Fatalf("report: exit %d: %s", code, rerr.String())
	}
	md, err := os.ReadFile(filepath.Join(dir, "report", "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	// The streams table: each stream's latency per cell.
	for _, want := range []string{"Streams", "| sidecar-50-50 | http1 | http1 |", "| sidecar-50-50 | grpc | grpc |", "| daemonset-0-100 | grpc | grpc |"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
}

// TestRunGenerators shares one cell's load between two generators on two
// nodes and compares it with one generator at the same total rate.
func TestRunGenerators(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a scenario")
	}
	bin := buildBinaries(t)
	doc := `name: gens
nodes: 2
services:
- {name: echo, replicas: 2, backend: {latency: "fixed:2ms"}}
load: {service: echo, rate: 400, connections: 8, duration: 3s, warmup: 500ms, generators: %d}
matrix:
  topology: [sidecar, daemonset]
`
	results := map[int]map[string]*result.CellResult{}
	for i, n := range []int{1, 2} {
		file := filepath.Join(t.TempDir(), "gens.yaml")
		if err := os.WriteFile(file, []byte(fmt.Sprintf(doc, n)), 0o644); err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		cmd, stdout, stderr := startMeshbench(t, bin, nil, "run", file, "--out", out, "--network", fmt.Sprintf("127.7%d", 6+i))
		if code := wait(t, cmd, 5*time.Minute); code != 0 {
			t.Fatalf("%d generators: exit %d:\n%s", n, code, stderr.String())
		}
		dir := lastLine(stdout.String())
		results[n] = map[string]*result.CellResult{}
		for _, topo := range []string{"sidecar", "daemonset"} {
			results[n][topo] = readCellResult(t, filepath.Join(dir, topo+"-r1", result.ResultFile))
			if n == 2 {
				for _, g := range []string{"g0", "g1"} {
					if _, err := os.Stat(filepath.Join(dir, topo+"-r1", "result-load-"+g+".json")); err != nil {
						t.Error(err)
					}
				}
			}
		}
	}
	for _, topo := range []string{"sidecar", "daemonset"} {
		one, two := results[1][topo], results[2][topo]
		compareGenerators(t, topo, one, two, 400)
	}
}

// compareGenerators checks a cell whose load two generators shared
// against the cell of one generator at the same total rate: each had half
// the rate and the connections, on one schedule, the merge holds every
// request, and the two measure the same (p50 within a factor of 1.5, the
// same achieved rate).
func compareGenerators(t *testing.T, topo string, one, two *result.CellResult, rate float64) {
	t.Helper()
	if len(one.Generators) != 0 || len(two.Generators) != 2 {
		t.Fatalf("%s: %d and %d generators kept", topo, len(one.Generators), len(two.Generators))
	}
	g0, g1 := two.Generators[0], two.Generators[1]
	if g0.RequestedRate != rate/2 || g1.RequestedRate != rate/2 || g0.Connections != one.Connections/2 || g0.Labels["generator"] != "g0" ||
		two.Requests != g0.Requests+g1.Requests || two.RequestedRate != rate || two.Labels["generator"] != "" || !g0.Start.Equal(g1.Start) {
		t.Errorf("%s: generators %v+%v req/s, %d connections, %d+%d=%d requests, labels %v, starts %v %v", topo, g0.RequestedRate, g1.RequestedRate,
			g0.Connections, g0.Requests, g1.Requests, two.Requests, two.Labels, g0.Start, g1.Start)
	}
	ratio := float64(two.Latency.P50) / float64(one.Latency.P50)
	t.Logf("%s: p50 %d µs with one generator, %d µs with two (%.2f×); p99 %d and %d µs; %.0f and %.0f req/s",
		topo, one.Latency.P50, two.Latency.P50, ratio, one.Latency.P99, two.Latency.P99, one.AchievedRate, two.AchievedRate)
	if ratio < 0.67 || ratio > 1.5 || math.Abs(two.AchievedRate-one.AchievedRate) > 0.05*one.AchievedRate {
		t.Errorf("%s: two generators measure a different cell than one: p50 %.2f×, %.0f vs %.0f req/s", topo, ratio, two.AchievedRate, one.AchievedRate)
	}
}

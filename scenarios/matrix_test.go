package scenarios_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
)

// base is a scenario without a matrix; each case appends one.
const base = `name: m
nodes: 2
services: [{name: echo, replicas: 2, backend: {latency: "fixed:1ms"}}]
degradations:
  slow: [{service: echo, replica: 1, backend: {latency: "fixed:10ms"}}]
load: {rate: 100, connections: 4, duration: 5s}
`

func variants(cells []result.Cell) []string {
	var out []string
	for _, c := range cells {
		if c.Repeat == 1 {
			out = append(out, c.Variant)
		}
	}
	return out
}

func TestExpansion(t *testing.T) {
	cases := []struct {
		name   string
		matrix string
		dims   string
		want   []string
	}{
		{"product in the file's order",
			"matrix:\n  protocol: [http1, grpc]\n  topology: [sidecar, daemonset]\n",
			"protocol,topology",
			[]string{"http1-sidecar", "http1-daemonset", "grpc-sidecar", "grpc-daemonset"}},
		{"absent dimensions are not dimensions",
			"matrix: {balancer: [round_robin, least_request]}\n",
			"balancer",
			[]string{"round_robin", "least_request"}},
		{"baseline has no balancer, proxy or mtls; duplicates collapse",
			"matrix:\n  topology: [baseline, sidecar]\n  proxy: [reference]\n  balancer: [round_robin, peak_ewma]\n  mtls: [off]\n",
			"topology,proxy,balancer,mtls",
			[]string{"baseline-none-none-off", "sidecar-reference-round_robin-off", "sidecar-reference-peak_ewma-off"}},
		{"one-sided topologies have no mtls; duplicates collapse",
			"matrix:\n  topology: [baseline, sidecar, daemonset, client-sidecar, server-sidecar]\n  mtls: [off, on]\n",
			"topology,mtls",
			[]string{"baseline-off", "sidecar-off", "sidecar-on", "daemonset-off", "daemonset-on",
				"client-sidecar-off", "server-sidecar-off"}},
		{"exclude removes every match of all keys",
			"matrix:\n  topology: [sidecar, daemonset]\n  balancer: [round_robin, peak_ewma]\n  degradation: [none, slow]\n" +
				"  exclude:\n  - {topology: daemonset, degradation: slow}\n  - {balancer: round_robin, degradation: none}\n",
			"topology,balancer,degradation",
			[]string{"sidecar-round_robin-slow", "sidecar-peak_ewma-none", "sidecar-peak_ewma-slow", "daemonset-peak_ewma-none"}},
		{"exclude none matches baseline cells",
			"matrix:\n  topology: [baseline, sidecar]\n  balancer: [round_robin]\n  exclude: [{balancer: none}]\n",
			"topology,balancer",
			[]string{"sidecar-round_robin"}},
		{"include adds, missing keys take the first value, duplicates go",
			"matrix:\n  topology: [baseline, sidecar, daemonset]\n  balancer: [peak_ewma]\n  degradation: [none]\n" +
				"  include:\n  - {topology: sidecar, balancer: round_robin, degradation: slow}\n  - {degradation: slow}\n" +
				"  - {topology: sidecar}\n  - {topology: baseline, balancer: round_robin}\n",
			"topology,balancer,degradation",
			[]string{"baseline-none-none", "sidecar-peak_ewma-none", "daemonset-peak_ewma-none",
				"sidecar-round_robin-slow", "baseline-none-slow"}},
		{"include survives exclude",
			"matrix:\n  topology: [sidecar, daemonset]\n  exclude: [{topology: daemonset}]\n  include: [{topology: daemonset}]\n",
			"topology",
			[]string{"sidecar", "daemonset"}},
		{"a rate sweep is the last dimension",
			"matrix: {topology: [sidecar, daemonset]}\n",
			"topology,rate",
			[]string{"sidecar-r100", "sidecar-r250.5", "daemonset-r100", "daemonset-r250.5"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := base + c.matrix
			if strings.Contains(c.dims, "rate") {
				doc = strings.Replace(doc, "rate: 100", "rates: [100, 250.5]", 1)
			}
			s := parse(t, doc)
			if d := strings.Join(s.Dimensions(), ","); d != c.dims {
				t.Errorf("dimensions %s, want %s", d, c.dims)
			}
			got := variants(cellsOf(t, s, scenarios.CellOptions{}))
			if !slices.Equal(got, c.want) {
				t.Errorf("variants\n got %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestCellsInterleaveRepeats(t *testing.T) {
	s := parse(t, base+"matrix: {topology: [baseline, sidecar, daemonset]}\nrepeats: 2\nquick: {repeats: 3}\n")
	cells := cellsOf(t, s, scenarios.CellOptions{})
	var ids []string
	for _, c := range cells {
		ids = append(ids, c.ID)
		if c.Status != result.StatusPending || c.ID != fmt.Sprintf("%s-r%d", c.Variant, c.Repeat) || c.Labels["topology"] != c.Variant {
			t.Errorf("cell %+v", c)
		}
	}
	// Even repeats run in reverse: no variant always runs first.
	want := []string{"baseline-r1", "sidecar-r1", "daemonset-r1", "daemonset-r2", "sidecar-r2", "baseline-r2"}
	if !slices.Equal(ids, want) {
		t.Errorf("order %v, want %v", ids, want)
	}
	for _, c := range []struct {
		o    scenarios.CellOptions
		want int
	}{
		{scenarios.CellOptions{}, 6},
		{scenarios.CellOptions{Repeats: 4}, 12},
		{scenarios.CellOptions{Quick: true}, 9},
		{scenarios.CellOptions{Quick: true, Repeats: 1}, 3},
	} {
		if n := len(cellsOf(t, s, c.o)); n != c.want {
			t.Errorf("%+v: %d cells, want %d", c.o, n, c.want)
		}
		if r := s.RunRepeats(c.o); r*3 != c.want {
			t.Errorf("%+v: %d repeats", c.o, r)
		}
	}
	// Cells share no label maps: a runner may annotate one freely.
	cells[0].Labels["topology"] = "x"
	if cellsOf(t, s, scenarios.CellOptions{})[5].Labels["topology"] != "baseline" {
		t.Error("labels are shared between cells")
	}
}

func TestQuickRates(t *testing.T) {
	s := parse(t, strings.Replace(base, "rate: 100", "rates: [100, 200, 400]", 1)+
		"matrix:\n  topology: [sidecar]\n  exclude: [{rate: 200}]\nquick: {rates: [50, 400]}\n")
	if got := variants(cellsOf(t, s, scenarios.CellOptions{})); !slices.Equal(got, []string{"sidecar-r100", "sidecar-r400"}) {
		t.Errorf("variants %v", got)
	}
	cells := cellsOf(t, s, scenarios.CellOptions{Quick: true})
	if got := variants(cells); !slices.Equal(got, []string{"sidecar-r50", "sidecar-r400"}) {
		t.Errorf("quick variants %v", got)
	}
	p, err := s.Plan(cells[0], scenarios.PlanOptions{Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.Load.Rate != 50 {
		t.Errorf("rate %v", p.Load.Rate)
	}
}

func TestPlanRejectsForeignLabels(t *testing.T) {
	s := parse(t, base+"matrix: {topology: [sidecar, daemonset]}\n")
	for _, labels := range []map[string]string{
		{},
		{"topology": "sidecar", "balancer": "round_robin"},
		{"topology": "mesh"},
	} {
		if _, err := s.Plan(result.Cell{ID: "x", Labels: labels}, scenarios.PlanOptions{}); err == nil {
			t.Errorf("labels %v accepted", labels)
		}
	}
}

// cellsOf returns the cells of s with options o, failing t if the matrix
// does not expand.
func cellsOf(t testing.TB, s *scenarios.Scenario, o scenarios.CellOptions) []result.Cell {
	t.Helper()
	cells, err := s.Cells(o)
	if err != nil {
		t.Fatal(err)
	}
	return cells
}

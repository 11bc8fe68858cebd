package scenarios_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/scenarios"
)

// good is a valid scenario that the error cases below break one way each.
const good = `name: t
description: test
nodes: 2
services:
- name: echo
  replicas: 5
  backend: {latency: "fixed:2ms", concurrency: 2}
  replica_overrides: {3: {latency: "fixed:5ms"}}
degradations:
  slow:
  - {service: echo, replica: 4, backend: {latency: "fixed:20ms", concurrency: 1}}
  later:
  - {service: echo, replica: 4, at: 10s, backend: {latency: "fixed:20ms"}}
load:
  service: echo
  protocol: http1
  rate: 400
  connections: 10
  duration: 20s
  warmup: 3s
  timeout: 5s
matrix:
  topology: [baseline, sidecar, daemonset]
  balancer: [round_robin, peak_ewma]
  degradation: [none, slow]
repeats: 2
quick: {duration: 4s, warmup: 1s, repeats: 1, rate: 200}
`

func parse(t *testing.T, doc string) *scenarios.Scenario {
	t.Helper()
	s, err := scenarios.Parse("t.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return s
}

func TestParseGoodAndDefaults(t *testing.T) {
	s := parse(t, good)
	if s.Name != "t" || s.Repeats != 2 || s.Nodes != 2 || len(s.Services) != 1 || s.Load.Rate != 400 || s.Load.Streams != 1 {
		t.Errorf("parsed %+v", s)
	}
	if d := s.Dimensions(); strings.Join(d, ",") != "topology,balancer,degradation" {
		t.Errorf("dimensions %v", d)
	}
	// Left out: name from the file, one node, one replica, and the load's
	// defaults.
	s2, err := scenarios.Parse("dir/minimal.yaml", []byte("services: [{name: api}]\nload: {rate: 10}\n"))
	if err != nil {
		t.Fatal(err)
	}
	l := s2.Load
	if s2.Name != "minimal" || s2.Nodes != 1 || s2.Repeats != 1 || s2.Services[0].Replicas != 1 || l.Service != "api" ||
		l.Protocol != "http1" || l.Connections != scenarios.DefaultConnections || l.Duration != scenarios.DefaultDuration ||
		l.Timeout != scenarios.DefaultTimeout || len(s2.Dimensions()) != 0 {
		t.Errorf("defaults: %+v", s2)
	}
	if cells := cellsOf(t, s2, scenarios.CellOptions{}); len(cells) != 1 || cells[0].ID != "minimal-r1" {
		t.Errorf("a matrix without dimensions has one variant named after the scenario: %+v", cells)
	}
}

// TestErrors holds one case per class of mistake; each message must name
// the file and the field path, and say what is wrong.
func TestErrors(t *testing.T) {
	r := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("fixture lacks %q", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	cases := []struct {
		name, doc string
		want      []string
	}{
		{"unknown field", r("nodes: 2", "nodes: 2\nnode_count: 3"),
			[]string{"t.yaml:4: node_count: unknown field"}},
		{"unknown nested field", r("  connections: 10", "  connections: 10\n  conns: 3"),
			[]string{"load.conns: unknown field"}},
		{"bad duration", r("duration: 20s", "duration: 20x"),
			[]string{`t.yaml:19: load.duration: "20x": not a duration`}},
		{"rate zero", r("rate: 400", "rate: -1"),
			[]string{"t.yaml:17: load.rate: must be > 0"}},
		{"rate and rates", r("rate: 400", "rate: 400\n  rates: [1, 2]"),
			[]string{"load.rates: rate and rates are exclusive"}},
		{"bad topology", r("topology: [baseline, sidecar, daemonset]", "topology: [baseline, sidecars]"),
			[]string{`t.yaml:23: matrix.topology[1]: "sidecars": unknown topology`}},
		{"mtls value", r("matrix:\n", "matrix:\n  mtls: [false]\n"),
			[]string{`matrix.mtls[0]: "false": must be off or on`}},
		{"unknown proxy", r("matrix:\n", "matrix:\n  proxy: [reference, linkerd]\n"),
			[]string{`matrix.proxy[1]: "linkerd": unknown proxy (known: reference, nginx, haproxy, caddy, envoy, or reference@BUILD for a build named at run time)`}},
		{"unknown balancer", r("round_robin, peak_ewma", "round_robin, p2c"),
			[]string{`matrix.balancer[1]: "p2c": unknown balancer policy`}},
		{"unknown degradation", r("degradation: [none, slow]", "degradation: [none, slower]"),
			[]string{`matrix.degradation[1]: "slower": no degradation has this name (known: none, later, slow)`}},
		{"duplicate value", r("round_robin, peak_ewma", "round_robin, round_robin"),
			[]string{`matrix.balancer[1]: "round_robin": value listed twice`}},
		{"empty dimension", r("round_robin, peak_ewma", ""),
			[]string{"matrix.balancer: at least one value is required"}},
		{"unknown include key", r("repeats: 2", "  include: [{topology: sidecar, color: red}]\nrepeats: 2"),
			[]string{"matrix.include[0].color: unknown key: not a dimension of this matrix (dimensions: topology, balancer, degradation)"}},
		{"include key of an absent dimension", r("repeats: 2", "  exclude: [{protocol: h2c}]\nrepeats: 2"),
			[]string{"matrix.exclude[0].protocol: unknown key"}},
		{"include bad value", r("repeats: 2", "  include: [{topology: mesh}]\nrepeats: 2"),
			[]string{`matrix.include[0].topology: "mesh": unknown topology`}},
		{"everything excluded", r("repeats: 2", "  exclude: [{degradation: none}, {degradation: slow}]\nrepeats: 2"),
			[]string{"t.yaml:23: matrix: every combination is excluded"}},
		{"unknown load service", r("  service: echo", "  service: api"),
			[]string{`load.service: "api": no service has this name`}},
		{"client node", r("load:\n", "load:\n  client_node: 2\n"),
			[]string{"load.client_node: 2: no such node (nodes are 0 to 1)"}},
		{"protocol", r("protocol: http1", "protocol: http3"),
			[]string{`load.protocol: "http3": must be one of http1, h2c, grpc`}},
		{"few connections", r("connections: 10", "connections: 4"),
			[]string{"load.connections: 4: topology baseline spreads the connections over the 5 pods of echo; at least 5 are needed"}},
		{"few quick connections", r("rate: 200}", "rate: 200, connections: 3}"),
			[]string{"quick.connections: 3: topology baseline"}},
		{"quick rates without a sweep", r("rate: 200}", "rates: [1]}"),
			[]string{"quick.rates: the load has one rate: set quick.rate instead"}},
		{"quick unknown field", r("rate: 200}", "rate: 200, speed: 3}"),
			[]string{"quick.speed: unknown field"}},
		{"service name", r("- name: echo", "- name: Echo_1"),
			[]string{`services[0].name: "Echo_1": a DNS label is required`}},
		{"bad latency", r(`latency: "fixed:2ms", concurrency: 2`, `latency: "fixed:2"`),
			[]string{`services[0].backend.latency: "fixed:2": `}},
		{"bad error rate", r("concurrency: 2}", "concurrency: 2, error_rate: 1.5}"),
			[]string{"services[0].backend.error_rate: 1.5: must be in [0, 1]"}},
		{"override index", r("{3: {latency", "{5: {latency"),
			[]string{"services[0].replica_overrides.5: not a replica index (0 to 4)"}},
		{"service nodes", r("  replica_overrides:", "  nodes: [0, 2]\n  replica_overrides:"),
			[]string{"services[0].nodes[1]: 2: no such node (nodes are 0 to 1)"}},
		{"degradation service", r("- {service: echo, replica: 4, backend: {latency: \"fixed:20ms\", concurrency: 1}}", "- {service: db, replica: 4, backend: {latency: \"fixed:20ms\"}}"),
			[]string{`degradations.slow[0].service: "db": no service has this name`}},
		{"degradation replica", r("replica: 4, at: 10s", "replica: 5, at: 10s"),
			[]string{"degradations.later[0].replica: 5: echo has replicas 0 to 4"}},
		{"degradation after the end", r("at: 10s", "at: 30s"),
			[]string{"degradations.later[0].at: 30s: must be within load.duration (20s)"}},
		{"degradation none", r("  slow:\n", "  none:\n  - {service: echo, backend: {latency: none}}\n  slow:\n"),
			[]string{`degradations.none: "none" is built in`}},
		{"degradation changes nothing", r(`at: 10s, backend: {latency: "fixed:20ms"}`, "at: 10s, backend: {}"),
			[]string{"degradations.later[0].backend: nothing changes"}},
		{"retry attempts", r("repeats: 2", "repeats: 2\nproxy_config: {retry: {attempts: 20}}"),
			[]string{"proxy_config.retry.attempts: 20: between 1 and 10"}},
		{"outlier percent", r("repeats: 2", "repeats: 2\nproxy_config: {outlier_detection: {max_ejection_percent: 200}}"),
			[]string{"proxy_config.outlier_detection.max_ejection_percent: 200: a percentage"}},
		{"kubernetes quantities", r("repeats: 2", "repeats: 2\nkubernetes: {proxy_resources: {requests: {cpu: 100m, memory: lots}}, app_resources: {limits: {cpu: -x}}}"),
			[]string{`kubernetes.proxy_resources.requests.memory: "lots": not a Kubernetes quantity`,
				`kubernetes.app_resources.limits.cpu: "-x": not a Kubernetes quantity`}},
		{"repeats", r("repeats: 2", "repeats: -1"),
			[]string{"repeats: -1: must be at least 1"}},
		{"every problem at once", r("rate: 400", "rate: -1\n  streams: 5000"),
			[]string{"load.rate: must be > 0", "load.streams: 5000: must be 1 to 1000"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := scenarios.Parse("t.yaml", []byte(c.doc))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "t.yaml") {
					t.Errorf("error line does not name the file: %q", line)
				}
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	if _, err := scenarios.Load("testdata/nonexistent.yaml"); err == nil || !strings.Contains(err.Error(), "nonexistent.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestQuickOverrides(t *testing.T) {
	s := parse(t, good)
	cells := cellsOf(t, s, scenarios.CellOptions{Quick: true})
	p, err := s.Plan(cells[0], scenarios.PlanOptions{Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	if l := p.Load; l.Duration != 4*time.Second || l.Warmup != time.Second || l.Rate != 200 || l.Connections != 10 {
		t.Errorf("quick load %+v", l)
	}
	if n := len(cells); n != 10 { // 10 variants x 1 quick repeat
		t.Errorf("quick cells: %d", n)
	}
	// Without a quick block, --quick caps the duration and the warmup and
	// runs once.
	s2 := parse(t, strings.Replace(good, "quick: {duration: 4s, warmup: 1s, repeats: 1, rate: 200}\n", "", 1))
	p, err = s2.Plan(cellsOf(t, s2, scenarios.CellOptions{Quick: true})[0], scenarios.PlanOptions{Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	if l := p.Load; l.Duration != scenarios.DefaultQuickDuration || l.Warmup != scenarios.DefaultQuickWarmup || l.Rate != 400 {
		t.Errorf("default quick load %+v", l)
	}
	if n := len(cellsOf(t, s2, scenarios.CellOptions{Quick: true})); n != 10 {
		t.Errorf("default quick repeats: %d cells", n)
	}
}

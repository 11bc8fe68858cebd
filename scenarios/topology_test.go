package scenarios_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/local"
)

// topo has three replicas on two nodes: echo-0 and echo-2 on node-0 with
// the client, echo-1 on node-1.
const topo = `name: topo
nodes: 2
services: [{name: echo, replicas: 3, backend: {latency: "fixed:1ms"}}]
load: {rate: 100, connections: 6, streams: 4, duration: 5s, timeout: 2s}
matrix:
  topology: [baseline, sidecar, daemonset, client-sidecar, server-sidecar]
  protocol: [http1, grpc]
`

// onLoopback renders a plan as the local platform does, on the default
// network base.
func onLoopback(t *testing.T, p *scenarios.Plan) *local.Addresses {
	t.Helper()
	a, err := local.Loopback{}.Addresses(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// targets returns the load's targets on loopback.
func targets(t *testing.T, p *scenarios.Plan) []string {
	t.Helper()
	a := onLoopback(t, p)
	var out []string
	for _, tg := range p.Load.Targets {
		r, err := scenarios.ResolveTarget(tg, a)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// validConfig renders a generated configuration on loopback and checks
// it, in the YAML form every platform writes, with the proxy's own
// validation.
func validConfig(t *testing.T, p *scenarios.Plan, px scenarios.Proxy) *config.Config {
	t.Helper()
	c, err := scenarios.RenderConfig(px.Config, onLoopback(t, p))
	if err != nil {
		t.Fatalf("proxy %s: %v", px.Name, err)
	}
	y, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	fromYAML, err := config.Parse(px.Name+".yaml", y)
	if err != nil {
		t.Fatalf("proxy %s: config fails validation: %v\n%s", px.Name, err, y)
	}
	return fromYAML
}

func planOf(t *testing.T, s *scenarios.Scenario, variant string, o scenarios.PlanOptions) *scenarios.Plan {
	t.Helper()
	for _, c := range cellsOf(t, s, scenarios.CellOptions{Quick: o.Quick}) {
		if c.Variant == variant {
			p, err := s.Plan(c, o)
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatalf("no variant %s", variant)
	return nil
}

func cluster(c *config.Config, name string) *config.Cluster {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i]
		}
	}
	return nil
}

func TestPlanTopologies(t *testing.T) {
	s := parse(t, topo)
	cases := []struct {
		variant   string
		proxies   []string
		targets   []string
		streams   int
		endpoints []string // the client-side cluster "echo", if any
	}{
		{"baseline-http1", nil,
			[]string{"http://127.77.1.11:8080/", "http://127.77.2.10:8080/", "http://127.77.1.12:8080/"}, 1, nil},
		{"baseline-grpc", nil,
			[]string{"127.77.1.11:9090", "127.77.2.10:9090", "127.77.1.12:9090"}, 4, nil},
		{"sidecar-http1", []string{"sidecar-client-0", "sidecar-echo-0", "sidecar-echo-1", "sidecar-echo-2"},
			[]string{"http://127.77.1.10:4140/"}, 1, []string{"127.77.1.11:4143", "127.77.2.10:4143", "127.77.1.12:4143"}},
		{"sidecar-grpc", []string{"sidecar-client-0", "sidecar-echo-0", "sidecar-echo-1", "sidecar-echo-2"},
			[]string{"127.77.1.10:4140"}, 4, []string{"127.77.1.11:4143", "127.77.2.10:4143", "127.77.1.12:4143"}},
		{"client-sidecar-http1", []string{"sidecar-client-0"},
			[]string{"http://127.77.1.10:4140/"}, 1, []string{"127.77.1.11:8080", "127.77.2.10:8080", "127.77.1.12:8080"}},
		{"server-sidecar-grpc", []string{"sidecar-echo-0", "sidecar-echo-1", "sidecar-echo-2"},
			[]string{"127.77.1.11:4143", "127.77.2.10:4143", "127.77.1.12:4143"}, 4, nil},
		{"daemonset-http1", []string{"node-0", "node-1"},
			[]string{"http://127.77.1.1:4140/"}, 1, []string{"127.77.1.11:8080", "127.77.2.10:8080", "127.77.1.12:8080"}},
	}
	for _, c := range cases {
		t.Run(c.variant, func(t *testing.T) {
			p := planOf(t, s, c.variant, scenarios.PlanOptions{})
			var names []string
			a := onLoopback(t, p)
			for _, px := range p.Proxies {
				names = append(names, px.Name)
				c := validConfig(t, p, px)
				addr := a.Node(px.Node)
				if px.Pod != "" {
					addr = a.Pod(px.Pod)
				}
				if c.Admin != addr+":9901" {
					t.Errorf("proxy %s admin %q", px.Name, c.Admin)
				}
			}
			if !slices.Equal(names, c.proxies) {
				t.Errorf("proxies %v, want %v", names, c.proxies)
			}
			if got := targets(t, p); !slices.Equal(got, c.targets) {
				t.Errorf("targets %v, want %v", got, c.targets)
			}
			if p.Load.Authority != "echo" || p.Load.ClientPod != "client-0" || p.Load.Streams != c.streams ||
				p.Load.Timeout != 2*time.Second || p.Load.Rate != 100 || p.Load.Connections != 6 {
				t.Errorf("load %+v", p.Load)
			}
			if len(p.Pods) != 4 || len(p.Nodes) != 2 || p.Pods[0].Backend != nil || p.Pods[1].Backend == nil {
				t.Errorf("pods %+v", p.Pods)
			}
			for _, pod := range p.Pods {
				if pod.Sidecar != "" && !slices.Contains(names, pod.Sidecar) {
					t.Errorf("pod %s names sidecar %s, which is not a proxy", pod.Name, pod.Sidecar)
				}
			}
			if c.endpoints != nil {
				rc := validConfig(t, p, p.Proxies[0])
				cl := cluster(rc, "echo")
				if cl == nil || !slices.Equal(cl.Endpoints, c.endpoints) {
					t.Fatalf("cluster echo %+v, want endpoints %v", cl, c.endpoints)
				}
				if cl.Balancer.Policy != "peak_ewma" || cl.Protocol != config.UpstreamSame {
					t.Errorf("cluster echo %+v", cl)
				}
				g := cluster(rc, "echo.grpc")
				if g == nil || g.Protocol != config.UpstreamH2C || len(g.Endpoints) != 3 {
					t.Errorf("cluster echo.grpc %+v", g)
				}
			}
		})
	}
}

func TestPlanAddressing(t *testing.T) {
	s := parse(t, topo)
	p := planOf(t, s, "sidecar-http1", scenarios.PlanOptions{})
	a, err := local.Loopback{Base: "127.9"}.Addresses(p)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{
		"client-0": {"node-0", "127.9.1.10"},
		"echo-0":   {"node-0", "127.9.1.11"},
		"echo-1":   {"node-1", "127.9.2.10"},
		"echo-2":   {"node-0", "127.9.1.12"},
	}
	for _, pod := range p.Pods {
		if w := want[pod.Name]; pod.Node != w[0] || a.Pod(pod.Name) != w[1] {
			t.Errorf("pod %s on %s at %s, want %v", pod.Name, pod.Node, a.Pod(pod.Name), w)
		}
	}
	if a.Node("node-1") != "127.9.2.1" || p.Nodes[1].Name != "node-1" {
		t.Errorf("nodes %+v", p.Nodes)
	}
	if _, err := (local.Loopback{Base: "10.0.0"}).Addresses(p); err == nil {
		t.Error("a three-octet base accepted")
	}
}

// TestPlanDaemonSet checks the node proxies: pods on other nodes through
// their node's proxy, pods on the same node directly, and an inbound
// listener that delivers only to its node's pods.
func TestPlanDaemonSet(t *testing.T) {
	s := parse(t, strings.Replace(topo, "backend:", "nodes: [1, 0, 1], backend:", 1))
	// echo-0 and echo-2 on node-1, echo-1 on node-0 with the client.
	p := planOf(t, s, "daemonset-grpc", scenarios.PlanOptions{})
	n0, n1 := validConfig(t, p, p.Proxies[0]), validConfig(t, p, p.Proxies[1])
	g := cluster(n0, "echo.grpc")
	wantGW := map[string]string{"127.77.2.10:9090": "127.77.2.1:4143", "127.77.2.11:9090": "127.77.2.1:4143"}
	if g == nil || g.Via == nil || !maps.Equal(g.Via.Gateways, wantGW) || g.Via.Header != config.DefaultDstHeader {
		t.Errorf("node-0 echo.grpc %+v via %+v", g, g.Via)
	}
	h := cluster(n1, "echo")
	if h == nil || h.Via == nil || !maps.Equal(h.Via.Gateways, map[string]string{"127.77.1.11:8080": "127.77.1.1:4143"}) {
		t.Errorf("node-1 echo %+v", h)
	}
	loc := cluster(n1, "local")
	if loc == nil || loc.OriginalDst == nil || !slices.Equal(loc.OriginalDst.Allowed,
		[]string{"127.77.2.10:8080", "127.77.2.10:9090", "127.77.2.11:8080", "127.77.2.11:9090"}) {
		t.Errorf("node-1 local %+v", loc)
	}
	if got := targets(t, p); got[0] != "127.77.1.1:4140" {
		t.Errorf("targets %v", got)
	}

	// A node without server pods has no inbound listener.
	s = parse(t, strings.Replace(topo, "backend:", "nodes: [1], backend:", 1))
	p = planOf(t, s, "daemonset-http1", scenarios.PlanOptions{})
	if n := len(p.Proxies[0].Config.Listeners); n != 1 {
		t.Errorf("node-0 has %d listeners", n)
	}
	if n := len(p.Proxies[1].Config.Listeners); n != 2 {
		t.Errorf("node-1 has %d listeners", n)
	}
	if cl := cluster(validConfig(t, p, p.Proxies[1]), "echo"); cl.Via != nil {
		t.Errorf("node-1 reaches its own pods through a gateway: %+v", cl.Via)
	}
}

func TestPlanSidecarInbound(t *testing.T) {
	s := parse(t, topo)
	p := planOf(t, s, "sidecar-grpc", scenarios.PlanOptions{})
	c := validConfig(t, p, p.Proxies[2]) // sidecar-echo-1
	l := c.Listeners[0]
	if l.Address != "127.77.2.10:4143" || l.Direction != config.Inbound || len(l.Routes) != 2 {
		t.Fatalf("listener %+v", l)
	}
	if g := cluster(c, l.Routes[0].Cluster); g.Protocol != config.UpstreamH2C || !slices.Equal(g.Endpoints, []string{"127.77.2.10:9090"}) {
		t.Errorf("gRPC route goes to %+v", g)
	}
	if h := cluster(c, l.Routes[1].Cluster); h.Protocol != config.UpstreamSame || !slices.Equal(h.Endpoints, []string{"127.77.2.10:8080"}) {
		t.Errorf("other requests go to %+v", h)
	}
	for _, r := range l.Routes {
		if r.Timeout.D() != 2*time.Second || r.Retry != nil {
			t.Errorf("route %+v", r)
		}
	}
}

func TestPlanDegradations(t *testing.T) {
	doc := `name: d
services: [{name: echo, replicas: 3, backend: {latency: "fixed:2ms", concurrency: 2}, replica_overrides: {1: {error_rate: 0.5}}}]
degradations:
  mixed:
  - {service: echo, replica: 2, at: 10s, backend: {latency: "fixed:20ms"}}
  - {service: echo, replica: 2, backend: {concurrency: 1}}
  - {service: echo, at: 15s, backend: {latency: "fixed:3ms"}}
load: {rate: 100, connections: 3, duration: 20s}
matrix: {degradation: [none, mixed]}
quick: {duration: 4s}
`
	s := parse(t, doc)
	backendOf := func(p *scenarios.Plan) []scenarios.BackendSpec {
		var out []scenarios.BackendSpec
		for _, pod := range p.Pods[1:] {
			out = append(out, *pod.Backend)
		}
		return out
	}
	p := planOf(t, s, "none", scenarios.PlanOptions{})
	want := []scenarios.BackendSpec{
		{Latency: "fixed:2ms", Concurrency: 2},
		{Latency: "fixed:2ms", Concurrency: 2, ErrorRate: 0.5},
		{Latency: "fixed:2ms", Concurrency: 2},
	}
	if got := backendOf(p); !slices.Equal(got, want) || len(p.Events) != 0 {
		t.Errorf("none: backends %+v events %+v", got, p.Events)
	}
	p = planOf(t, s, "mixed", scenarios.PlanOptions{})
	want[2].Concurrency = 1
	if got := backendOf(p); !slices.Equal(got, want) {
		t.Errorf("mixed: backends %+v", got)
	}
	wantEvents := []scenarios.Event{
		{At: 10 * time.Second, Pod: "echo-2", Backend: scenarios.BackendSpec{Latency: "fixed:20ms", Concurrency: 1}},
		{At: 15 * time.Second, Pod: "echo-0", Backend: scenarios.BackendSpec{Latency: "fixed:3ms", Concurrency: 2}},
		{At: 15 * time.Second, Pod: "echo-1", Backend: scenarios.BackendSpec{Latency: "fixed:3ms", Concurrency: 2, ErrorRate: 0.5}},
		{At: 15 * time.Second, Pod: "echo-2", Backend: scenarios.BackendSpec{Latency: "fixed:3ms", Concurrency: 1}},
	}
	if !slices.Equal(p.Events, wantEvents) {
		t.Errorf("events\n got %+v\nwant %+v", p.Events, wantEvents)
	}
	// The change in place from the start is listed for the record.
	if wantInitial := []scenarios.Event{{Pod: "echo-2", Backend: want[2]}}; !slices.Equal(p.Initial, wantInitial) {
		t.Errorf("initial\n got %+v\nwant %+v", p.Initial, wantInitial)
	}
	// --quick scales the changes' times with the duration (20s -> 4s).
	p = planOf(t, s, "mixed", scenarios.PlanOptions{Quick: true})
	if p.Events[0].At != 2*time.Second || p.Events[1].At != 3*time.Second {
		t.Errorf("quick events %+v", p.Events)
	}
}

func TestProxyConfigApplied(t *testing.T) {
	s := parse(t, topo+"proxy_config:\n  retry: {attempts: 3, on: [\"503\"]}\n  outlier_detection: {consecutive_5xx: 3}\n")
	for _, v := range []string{"sidecar-http1", "daemonset-http1"} {
		p := planOf(t, s, v, scenarios.PlanOptions{})
		c := validConfig(t, p, p.Proxies[0])
		out := c.Listeners[0]
		if r := out.Routes[1].Retry; r == nil || r.Attempts != 3 || !slices.Equal(r.On, []string{"503"}) {
			t.Errorf("%s: retry %+v", v, r)
		}
		if od := cluster(c, "echo").OutlierDetection; od == nil || od.Consecutive5xx != 3 {
			t.Errorf("%s: outlier detection %+v", v, od)
		}
	}
	// Inbound routes never retry.
	p := planOf(t, s, "sidecar-http1", scenarios.PlanOptions{})
	if r := p.Proxies[1].Config.Listeners[0].Routes[0].Retry; r != nil {
		t.Errorf("inbound retry %+v", r)
	}
}

func TestPlanKeepsTheCell(t *testing.T) {
	s := parse(t, topo)
	c := cellsOf(t, s, scenarios.CellOptions{Repeats: 2})[11]
	p, err := s.Plan(c, scenarios.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Scenario != "topo" || p.Cell.ID != c.ID || p.Topology != c.Labels["topology"] || p.Cell.Repeat != 2 {
		t.Errorf("plan %s %+v topology %s", p.Scenario, p.Cell, p.Topology)
	}
	if p.Topology == scenarios.Baseline && p.ProxyImpl != "none" || p.Topology != scenarios.Baseline && p.ProxyImpl != "reference" {
		t.Errorf("proxy %q for %s", p.ProxyImpl, p.Topology)
	}
}

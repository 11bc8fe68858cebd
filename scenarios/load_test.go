package scenarios_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/platform"
)

const mixDoc = `name: m
nodes: 2
services:
- {name: echo, replicas: 2}
- {name: other, replicas: 1}
load:
  service: echo
  rate: 400
  connections: 4
  duration: 5s
  mix:
  - {name: web, protocol: http1}
  - {name: rpc, protocol: grpc, grpc_mode: stream, connections: 2, streams: 8, request_size: 64, response_size: 128}
  - {name: side, protocol: h2c, service: other}
  shares:
    all-web: {web: 100%}
    half: {web: 50%, rpc: 25%, side: 25%}
matrix:
  topology: [baseline, sidecar]
  mix: [all-web, half]
`

func TestMixedLoadPlans(t *testing.T) {
	s := parse(t, mixDoc)
	if d := s.Dimensions(); strings.Join(d, ",") != "topology,mix" {
		t.Fatalf("dimensions %v", d)
	}
	cells, err := s.Cells(scenarios.CellOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, c := range cells {
		ids = append(ids, c.ID)
	}
	if strings.Join(ids, " ") != "baseline-all-web-r1 baseline-half-r1 sidecar-all-web-r1 sidecar-half-r1" {
		t.Fatalf("cells %v", ids)
	}
	plan := func(id string) *scenarios.Plan {
		i := slices.IndexFunc(cells, func(c result.Cell) bool { return c.ID == id })
		p, err := s.Plan(cells[i], scenarios.PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := plan("baseline-half-r1")
	if len(p.Load.Mix) != 3 || p.Load.Protocol != loadgen.ProtocolMix || p.Load.Rate != 400 || len(p.Load.Targets) != 0 {
		t.Fatalf("load %+v", p.Load)
	}
	web, rpc, side := p.Load.Mix[0], p.Load.Mix[1], p.Load.Mix[2]
	if web.Share != 0.5 || rpc.Share != 0.25 || side.Share != 0.25 || web.Connections != 4 || web.Streams != 1 ||
		rpc.Connections != 2 || rpc.Streams != 8 || rpc.GRPCMode != "stream" || rpc.BodySize != 64 || rpc.ResponseSize != 128 ||
		side.Authority != "other" || web.Authority != "echo" {
		t.Errorf("streams %+v", p.Load.Mix)
	}
	// Baseline: each stream straight to its service's pods, on its
	// protocol's port.
	a := onLoopback(t, p)
	args, err := platform.LoadArgs(p.Load, p.Cell, a, "r.json", "l.hlog")
	if err != nil {
		t.Fatal(err)
	}
	mix := argAfter(t, args, "--mix")
	var streams []loadgen.Stream
	if err := json.Unmarshal([]byte(mix), &streams); err != nil {
		t.Fatal(err)
	}
	if len(streams) != 3 || len(streams[0].Targets) != 2 || !strings.HasSuffix(streams[0].Targets[0], ":8080/") ||
		!strings.HasSuffix(streams[1].Targets[0], ":9090") || len(streams[2].Targets) != 1 || streams[1].Share != 0.25 {
		t.Errorf("--mix %s", mix)
	}
	if slices.Contains(args, "--protocol") || argAfter(t, args, "--rate") != "400" {
		t.Errorf("args %v", args)
	}
	// The streams that have no share in a mix do not run.
	if p := plan("sidecar-all-web-r1"); len(p.Load.Mix) != 1 || p.Load.Mix[0].Name != "web" || p.Load.Mix[0].Share != 1 ||
		!strings.Contains(p.Load.Mix[0].Targets[0], "outbound") {
		t.Errorf("all-web: %+v", p.Load.Mix)
	}
	if got := plan("sidecar-half-r1").Load.Protocols(); strings.Join(got, ",") != "http1,grpc,h2c" {
		t.Errorf("protocols %v", got)
	}
}

func argAfter(t *testing.T, args []string, flag string) string {
	t.Helper()
	i := slices.Index(args, flag)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("%s not in %v", flag, args)
	}
	return args[i+1]
}

func TestRateForms(t *testing.T) {
	base := "services: [{name: api}]\nload: {rate: RATE, duration: 2s}\n"
	doc := func(rate string) string { return strings.Replace(base, "RATE", rate, 1) }
	s := parse(t, doc("[100, 200]"))
	if !slices.Equal(s.Load.Rates, []float64{100, 200}) || strings.Join(s.Dimensions(), ",") != "rate" {
		t.Errorf("a sweep: rates %v dimensions %v", s.Load.Rates, s.Dimensions())
	}
	s = parse(t, doc("{search: {p99: 10ms, errors: 0.1%, max: 20000}}"))
	ss := s.Load.Search
	if ss == nil || ss.Objective.P99 != 10*time.Millisecond || ss.Objective.Errors != 0.001 || ss.Max != 20000 || len(s.Dimensions()) != 0 {
		t.Fatalf("a search: %+v", ss)
	}
	cells, err := s.Cells(scenarios.CellOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Plan(cells[0], scenarios.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	args, err := platform.LoadArgs(p.Load, p.Cell, onLoopback(t, p), "r.json", "l.hlog")
	if err != nil {
		t.Fatal(err)
	}
	if got := argAfter(t, args, "--search"); got != "p99=10ms,errors=0.001,max=20000" {
		t.Errorf("--search %q", got)
	}
	parsed, err := loadgen.ParseSearch(searchFields(argAfter(t, args, "--search")))
	if err != nil || parsed.Objective != ss.Objective || parsed.Max != ss.Max {
		t.Errorf("--search does not read back: %+v %v", parsed, err)
	}
}

func searchFields(flag string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(flag, ",") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct{ old, new, want string }{
		{"rate: 400\n", "rate: {search: {p99: 10ms}}\n", "t.yaml:8: load.rate: search: max must be a positive rate"},
		{"rate: 400\n", "rate: {search: {p99: 10ms, max: 100, color: red}}\n", "search color \"red\": unknown field"},
		{"rate: 400\n", "rate: {sweep: [1]}\n", "a rate mapping is {search:"},
		{"rate: 400\n", "rate: [100, x]\n", "a sweep lists requests per second"},
		{"rate: 400\n", "rate: [100, 200]\n  rates: [1]\n", "load.rates: load.rate already lists"},
		{"  - {name: web, protocol: http1}\n", "  - {name: web, protocol: h3}\n", `load.mix[0].protocol: "h3"`},
		{"  - {name: web, protocol: http1}\n", "  - {name: rpc, protocol: http1}\n", `"rpc": stream name used twice`},
		{"  - {name: web, protocol: http1}\n", "  - {name: web, protocol: http1, response_size: 10}\n", "a stream sets it for grpc only"},
		{"  - {name: web, protocol: http1}\n", "  - {name: web, protocol: http1, grpc_mode: stream}\n", "grpc_mode: only for protocol grpc"},
		{"  - {name: web, protocol: http1}\n", "  - {name: web, protocol: http1, share: 50%}\n", "leave out their share and rate"},
		{"half: {web: 50%, rpc: 25%, side: 25%}", "half: {web: 50%, rpc: 25%}", "load.shares.half: the shares add up to 0.75"},
		{"half: {web: 50%, rpc: 25%, side: 25%}", "half: {web: 50%, rpc: 25%, nope: 25%}", "load.shares.half.nope: no stream"},
		{"half: {web: 50%, rpc: 25%, side: 25%}", "half: {web: 150%, rpc: 25%, side: 25%}", "want a share from 0 to 1"},
		{"mix: [all-web, half]", "mix: [all-web, most]", `matrix.mix[1]: "most": not one of load.shares`},
		{"mix: [all-web, half]", "mix: [all-web, half]\n  protocol: [http1]", "leave out the protocol dimension"},
		{"service: other}", "service: nowhere}", `load.mix[2].service: "nowhere"`},
		{"  mix:\n", "  new_connection_per_request: true\n  mix:\n", "load.new_connection_per_request: HTTP/1.1 only"},
	} {
		doc := strings.Replace(mixDoc, tc.old, tc.new, 1)
		if doc == mixDoc {
			t.Fatalf("%q not in the document", tc.old)
		}
		_, err := scenarios.Parse("t.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s -> %s: error %v, want %q", tc.old, tc.new, err, tc.want)
		}
	}
	// Streams of their own rates, or shares that add up, without shares.
	own := strings.Replace(strings.Replace(mixDoc, "  shares:\n    all-web: {web: 100%}\n    half: {web: 50%, rpc: 25%, side: 25%}\n", "", 1), "  mix: [all-web, half]\n", "", 1)
	rates := strings.NewReplacer("{name: web, protocol: http1}", "{name: web, protocol: http1, rate: 5}",
		"protocol: grpc, grpc_mode", "protocol: grpc, rate: 5, grpc_mode", "protocol: h2c, service", "protocol: h2c, rate: 5, service").Replace(own)
	if _, err := scenarios.Parse("t.yaml", []byte(rates)); err == nil || !strings.Contains(err.Error(), "leave out load.rate") {
		t.Errorf("streams of their own rates, load.rate given: %v", err)
	}
	if _, err := scenarios.Parse("t.yaml", []byte(strings.Replace(rates, "  rate: 400\n", "", 1))); err != nil {
		t.Errorf("streams of their own rates: %v", err)
	}
	searched := strings.Replace(rates, "rate: 400\n", "rate: {search: {p99: 10ms, max: 100}}\n", 1)
	if _, err := scenarios.Parse("t.yaml", []byte(searched)); err == nil || !strings.Contains(err.Error(), "give the streams shares instead of rates") {
		t.Errorf("a search over streams of their own rates: %v", err)
	}
	for _, tc := range []struct{ old, new, want string }{
		{"{name: web, protocol: http1}", "{name: web, protocol: http1, share: 70%}", "the shares add up to 1.1"},
		{"{name: web, protocol: http1}", "{name: web, protocol: http1, rate: 5}", "every stream a share of load.rate, or every stream its own rate"},
	} {
		doc := strings.Replace(own, tc.old, tc.new, 1)
		doc = strings.Replace(doc, "protocol: grpc, grpc_mode", "protocol: grpc, share: 20%, grpc_mode", 1)
		doc = strings.Replace(doc, "protocol: h2c, service", "protocol: h2c, share: 20%, service", 1)
		_, err := scenarios.Parse("t.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.new, err, tc.want)
		}
	}
}

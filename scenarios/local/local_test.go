package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/platform"
)

// bins holds the meshbench and meshproxy binaries TestMain builds.
var bins struct{ meshbench, meshproxy string }

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "meshbench-local-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go env GOMOD:", err)
		return 1
	}
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/meshbench", "./cmd/meshproxy")
	build.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the binaries: %v\n%s", err, out)
		return 1
	}
	bins.meshbench = filepath.Join(dir, "meshbench")
	bins.meshproxy = filepath.Join(dir, "meshproxy")
	return m.Run()
}

// newPlatform returns a local platform on network base 127.<b>.
func newPlatform(t *testing.T, b int) *Platform {
	t.Helper()
	p := New(Options{Meshbench: bins.meshbench, Meshproxy: bins.meshproxy, NetworkBase: fmt.Sprintf("127.%d", b),
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	t.Cleanup(func() { _ = p.Teardown(context.Background()) })
	return p
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// sidecarPlan is a hand-built sidecar topology: a client pod with an
// outbound sidecar on node-0, and echo-0 (node-0) and echo-1 (node-1),
// each behind an inbound sidecar.
func sidecarPlan() *scenarios.Plan {
	inbound := func(pod, node string) scenarios.Proxy {
		return scenarios.Proxy{Name: "sidecar-" + pod, Kind: scenarios.KindSidecar, Pod: pod, Node: node,
			Config: &config.Config{
				Admin: scenarios.PodRef(pod, scenarios.PortNameAdmin),
				Listeners: []config.Listener{{Name: "inbound", Address: scenarios.PodRef(pod, scenarios.PortNameInbound),
					Direction: config.Inbound,
					Routes:    []config.Route{{Match: config.Match{Authority: "*"}, Cluster: "local", Timeout: config.Duration(2 * time.Second)}}}},
				Clusters: []config.Cluster{{Name: "local", Endpoints: []string{scenarios.PodRef(pod, scenarios.PortNameHTTP)}}},
			}}
	}
	in0, in1 := inbound("echo-0", "node-0"), inbound("echo-1", "node-1")
	out := scenarios.Proxy{Name: "sidecar-client-0", Kind: scenarios.KindSidecar, Node: "node-0", Pod: "client-0",
		Config: &config.Config{
			Admin: scenarios.PodRef("client-0", scenarios.PortNameAdmin),
			Listeners: []config.Listener{{Name: "outbound", Address: scenarios.PodRef("client-0", scenarios.PortNameOutbound),
				Direction: config.Outbound,
				Routes:    []config.Route{{Match: config.Match{Authority: "echo"}, Cluster: "echo", Timeout: config.Duration(2 * time.Second)}}}},
			Clusters: []config.Cluster{{Name: "echo", Balancer: config.Balancer{Policy: "round_robin"},
				Endpoints: []string{scenarios.ServiceRef("echo", scenarios.PortNameInbound)}}},
		}}
	return &scenarios.Plan{
		Scenario: "test",
		Cell: result.Cell{ID: "sidecar-round_robin-http1-r1", Variant: "sidecar-round_robin-http1",
			Labels: map[string]string{"topology": "sidecar", "balancer": "round_robin", "protocol": "http1"}, Repeat: 1},
		Nodes: []scenarios.Node{{Name: "node-0"}, {Name: "node-1"}},
		Pods: []scenarios.Pod{
			{Name: "client-0", Service: "client", Node: "node-0", Sidecar: out.Name},
			{Name: "echo-0", Service: "echo", Node: "node-0", Backend: &scenarios.BackendSpec{Latency: "fixed:1ms"}, Sidecar: in0.Name},
			{Name: "echo-1", Service: "echo", Replica: 1, Node: "node-1", Backend: &scenarios.BackendSpec{Latency: "fixed:1ms"}, Sidecar: in1.Name},
		},
		Proxies: []scenarios.Proxy{out, in0, in1},
		Load: scenarios.LoadPlan{ClientPod: "client-0", Protocol: "http1", Targets: []string{scenarios.PodRef("client-0", scenarios.PortNameOutbound)},
			Authority: "echo", Rate: 100, Connections: 2, Duration: 2 * time.Second, Warmup: 500 * time.Millisecond, Timeout: 2 * time.Second},
	}
}

// baselinePlan has two echo pods and no proxy; the load goes to the pods.
func baselinePlan() *scenarios.Plan {
	return &scenarios.Plan{
		Scenario: "test",
		Cell:     result.Cell{ID: "baseline-r1", Variant: "baseline", Labels: map[string]string{"topology": "baseline"}, Repeat: 1},
		Nodes:    []scenarios.Node{{Name: "node-0"}, {Name: "node-1"}},
		Pods: []scenarios.Pod{
			{Name: "client-0", Service: "client", Node: "node-0"},
			{Name: "echo-0", Service: "echo", Node: "node-0", Backend: &scenarios.BackendSpec{}},
			{Name: "echo-1", Service: "echo", Replica: 1, Node: "node-1", Backend: &scenarios.BackendSpec{}},
		},
		Load: scenarios.LoadPlan{ClientPod: "client-0", Protocol: "http1",
			Targets: []string{scenarios.PodRef("echo-0", scenarios.PortNameHTTP), scenarios.PodRef("echo-1", scenarios.PortNameHTTP)},
			Rate:    100, Connections: 2, Duration: 3 * time.Second, Warmup: 500 * time.Millisecond, Timeout: 2 * time.Second},
	}
}

// assertGone fails unless every pid has exited and been reaped.
func assertGone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after teardown (kill -0: %v)", pid, err)
		}
	}
}

func TestSidecarPlan(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newPlatform(t, 91)
	dir := t.TempDir()
	plan := sidecarPlan()
	if err := p.Deploy(ctx, plan, dir); err != nil {
		t.Fatal(err)
	}
	pids := p.pids()
	if len(pids) != 5 {
		t.Fatalf("%d processes after deploy, want 5 (2 backends, 3 proxies)", len(pids))
	}
	res, err := p.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pids = p.pids() // now with the load generator
	usage, metrics, err := p.Resources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pids)
	if err := p.Teardown(ctx); err != nil {
		t.Errorf("second teardown: %v", err)
	}
	t.Logf("requests %d, resources %+v", res.Requests, usage)
	for _, m := range metrics {
		t.Logf("metrics %+v", m)
	}

	// The load's result.
	if res.Requests == 0 || res.Errors.Total != 0 {
		t.Fatalf("requests %d errors %+v, want requests without errors", res.Requests, res.Errors)
	}
	if res.Endpoints["echo-0"] == 0 || res.Endpoints["echo-1"] == 0 {
		t.Errorf("endpoints %v: want both echo pods", res.Endpoints)
	}
	if res.Labels["topology"] != "sidecar" || res.Labels["balancer"] != "round_robin" {
		t.Errorf("labels %v: want the cell's", res.Labels)
	}
	for _, f := range []string{result.HdrLogFile, "proxies/sidecar-client-0.yaml", "logs/echo-1.log", "logs/sidecar-echo-0.log", "logs/load.log"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: want a non-empty file (%v)", f, err)
		}
	}

	// Resources.
	if len(usage.Proxies) != 3 {
		t.Fatalf("resources of %d proxies, want 3: %+v", len(usage.Proxies), usage)
	}
	for _, u := range usage.Proxies {
		if u.CPUSeconds <= 0 || u.CPUMicrosPerRequest <= 0 || u.RSSPeakBytes <= 0 || u.RSSMeanBytes <= 0 || u.RSSMeanBytes > u.RSSPeakBytes {
			t.Errorf("%s: usage %+v: want CPU and memory", u.Name, u.Usage)
		}
		// The idle reading is taken before the load: a ready proxy's
		// RSS, not above its peak under load; anonymous memory is part
		// of the RSS.
		if u.IdleRSSBytes <= 0 || u.IdleRSSBytes > u.RSSPeakBytes || u.AnonPeakBytes <= 0 || u.AnonPeakBytes > u.RSSPeakBytes {
			t.Errorf("%s: idle RSS %d, anonymous peak %d, peak %d", u.Name, u.IdleRSSBytes, u.AnonPeakBytes, u.RSSPeakBytes)
		}
		if u.Kind != scenarios.KindSidecar || u.Node == "" {
			t.Errorf("%s: kind %q node %q", u.Name, u.Kind, u.Node)
		}
	}
	if usage.Total.CPUSeconds < usage.Proxies[0].CPUSeconds || usage.Total.RSSPeakBytes <= usage.Proxies[0].RSSPeakBytes ||
		usage.Total.IdleRSSBytes <= usage.Proxies[0].IdleRSSBytes {
		t.Errorf("total %+v does not sum the proxies", usage.Total)
	}
	if usage.SampleIntervalMs != 200 {
		t.Errorf("sample interval %d ms, want 200", usage.SampleIntervalMs)
	}

	// The proxies' own account of the measured part.
	byName := map[string]result.ProxyMetrics{}
	for _, m := range metrics {
		byName[m.Name] = m
	}
	client := byName["sidecar-client-0"]
	eps := client.Endpoints["echo"]
	if len(eps) != 2 {
		t.Fatalf("client sidecar endpoints %v: want the two inbound sidecars", client.Endpoints)
	}
	var sent int64
	for ep, n := range eps {
		if n == 0 {
			t.Errorf("endpoint %s got no request", ep)
		}
		sent += n
	}
	// The scrapes bracket the measured part, its start estimated from the
	// load generator's start and warm-up: the first scrape is never
	// before the warm-up began, so at most the warm-up's requests leak
	// in; a fifth of the measured part may be missed if the load
	// generator's clock started before the scrape answered.
	warm := int64(plan.Load.Rate * plan.Load.Warmup.Seconds())
	if lo, hi := res.Requests*80/100, res.Requests+warm+10; sent < lo || sent > hi {
		t.Errorf("client sidecar sent %d requests in the measured part, load generator completed %d (warm-up %d)", sent, res.Requests, warm)
	}
	// Units: each request's time in the proxy is part of its time at the
	// load generator; the proxy's buckets may overstate a quantile up to
	// 2.5 times (0.1–0.25 ms is the widest ratio).
	out := client.Latency["outbound"]
	if out.Count == 0 || out.P50 < 1000 || out.P99 < out.P50 || out.P99 > 3*res.Latency.Max {
		t.Errorf("client sidecar outbound latency %+v: want percentiles above the backends' 1 ms and within the load generator's (max %d µs)", out, res.Latency.Max)
	}
	for _, name := range []string{"sidecar-echo-0", "sidecar-echo-1"} {
		in := byName[name].Latency["inbound"]
		if in.Count == 0 || in.P50 < 1000 {
			t.Errorf("%s inbound latency %+v: want counts and percentiles above 1 ms", name, in)
		}
	}
}

func TestPortInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.92.2.10:8080")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p := newPlatform(t, 92)
	err = p.Deploy(context.Background(), baselinePlan(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "127.92.2.10:8080 (for echo-1) is already in use: another run on the same network base?") {
		t.Fatalf("deploy with a port taken: %v", err)
	}
	if pids := p.pids(); len(pids) != 0 {
		t.Errorf("processes %v left after the failed deploy", pids)
	}
}

func TestExitedEarly(t *testing.T) {
	p := newPlatform(t, 93)
	plan := baselinePlan()
	plan.Pods[1].Backend.Latency = "gamma:1ms" // refused by the backend
	err := p.Deploy(context.Background(), plan, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "echo-0") || !strings.Contains(err.Error(), "gamma") {
		t.Fatalf("deploy of a backend that cannot start: %v; want its name and its log's complaint", err)
	}
	t.Log(err)
}

func TestEventChangesBackend(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p := newPlatform(t, 94)
	plan := baselinePlan()
	// The event is at 2 s of the platform's measured part, which starts
	// before the load generator's by its process start-up: the load's
	// second 0 ends before the event if start-up takes under a second,
	// and its second 3 begins after the event if applying it does.
	plan.Load.Duration = 4 * time.Second
	slow := scenarios.BackendSpec{Latency: "fixed:30ms"}
	plan.Events = []scenarios.Event{{At: 2 * time.Second, Pod: "echo-0", Backend: slow}, {At: 2 * time.Second, Pod: "echo-1", Backend: slow}}
	if err := p.Deploy(ctx, plan, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	res, err := p.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 2 {
		t.Fatalf("events %+v: want 2 applied", res.Events)
	}
	for _, ev := range res.Events {
		if ev.AtMs < 2000 || ev.AtMs > 3000 || ev.Latency != "fixed:30ms" {
			t.Errorf("event %+v: want fixed:30ms applied at 2000 ms (within a second)", ev)
		}
	}
	if len(res.Timeseries) < 4 {
		t.Fatalf("timeseries %+v: want 4 seconds", res.Timeseries)
	}
	// Before: no delay, so a p99 of 20 ms would take 1 % of the requests
	// stalled for twenty times their time; after: 30 ms at least.
	before, after := res.Timeseries[0].P99, res.Timeseries[3].P99
	if before >= 20_000 || after < 25_000 {
		t.Errorf("per-second p99 %d µs before the event and %d µs after it: want it to rise to the new 30 ms", before, after)
	}
}

func TestRunCancel(t *testing.T) {
	p := newPlatform(t, 95)
	plan := baselinePlan()
	plan.Load.Duration = time.Minute
	if err := p.Deploy(context.Background(), plan, t.TempDir()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(1500*time.Millisecond, cancel)
	start := time.Now()
	_, err := p.Run(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run canceled: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("canceled run took %v to return", d)
	}
	pids := p.pids()
	if err := p.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pids)
}

func TestConfigYAMLRoundTrip(t *testing.T) {
	plan := sidecarPlan()
	a, err := Loopback{Base: "127.96"}.Addresses(plan)
	if err != nil {
		t.Fatal(err)
	}
	c, err := scenarios.RenderConfig(plan.Proxies[0].Config, a)
	if err != nil {
		t.Fatal(err)
	}
	c.Listeners[0].Routes[0].RequestHeaders.Add = map[string]string{"x-n": "0", "x-yes": "yes"}
	b, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Parse("gen.yaml", b)
	if err != nil {
		t.Fatalf("the proxy refuses the generated config: %v\n%s", err, b)
	}
	if got.Listeners[0].Routes[0].RequestHeaders.Add["x-n"] != "0" || got.Clusters[0].Balancer.Policy != "round_robin" ||
		got.Listeners[0].Routes[0].Timeout.D() != 2*time.Second || len(got.Clusters[0].Endpoints) != 2 {
		t.Errorf("round trip lost values:\n%s", b)
	}
	if strings.Contains(string(b), "{") || strings.Contains(string(b), "null") {
		t.Errorf("want block-style YAML without nulls:\n%s", b)
	}
}

func TestLoadArgs(t *testing.T) {
	plan := baselinePlan()
	addrs, err := Loopback{Base: "127.97"}.Addresses(plan)
	if err != nil {
		t.Fatal(err)
	}
	args, err := platform.LoadArgs(plan.Load, plan.Cell, addrs, "/d/result-load.json", "/d/latency.hlog")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{"--target http://127.97.1.11:8080 --target http://127.97.2.10:8080", "--rate 100",
		"--connections 2", "--duration 3s", "--warmup 500ms", "--timeout 2s", "--label topology=baseline",
		"--out /d/result-load.json", "--hdr-log /d/latency.hlog", "--quiet"} {
		if !strings.Contains(got, want) {
			t.Errorf("load args %q: missing %q", got, want)
		}
	}
	plan.Load.Protocol, plan.Load.Rate = "grpc", 0
	plan.Load.Targets[1] = "http://" + scenarios.PodRef("echo-1", scenarios.PortNameGRPC) + "/"
	args, _ = platform.LoadArgs(plan.Load, plan.Cell, addrs, "/d/result-load.json", "/d/latency.hlog")
	if got := strings.Join(args, " "); !strings.Contains(got, "--target 127.97.1.11:8080 --target 127.97.2.10:9090 ") || !strings.Contains(got, "--rate max") {
		t.Errorf("grpc closed-loop args %q", got)
	}
	// A target that is not a reference never reaches the load generator.
	plan.Load.Targets[1] = "127.97.2.10:9090"
	if _, err := platform.LoadArgs(plan.Load, plan.Cell, addrs, "/d/result-load.json", "/d/latency.hlog"); err == nil || !strings.Contains(err.Error(), "is not a reference") {
		t.Errorf("a literal target: %v", err)
	}
}

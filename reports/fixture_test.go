package reports

import (
	"github.com/meshbench/meshbench/reports/result"

	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/meshbench/meshbench/loadgen"
)

// regen rewrites testdata/run1 from run1Spec:
//
//	go test ./reports -run TestFixture -regen
var regen = flag.Bool("regen", false, "regenerate the results directory in testdata/run1")

// fixtureProxy is a proxy instance of a fixture variant.
type fixtureProxy struct {
	name, kind, node string
	cpuPerReq        float64 // µs
	rssMiB           float64
}

// fixtureVariant describes how to synthesise a variant's cells.
type fixtureVariant struct {
	id      string
	labels  map[string]string
	baseUs  float64 // typical latency
	proxies []fixtureProxy
	weights []float64 // request share of echo-0, echo-1, ...
	// event, when set, makes pod echo-<slowPod> slow from event.AtMs on;
	// afterWeights then replace weights (a balancer steering away).
	event        *result.Event
	slowPod      int
	afterWeights []float64
	// status per repeat (1-based) when not done.
	status map[int]string
}

type fixtureRun struct {
	info     result.Run
	rate     float64
	seconds  int
	variants []fixtureVariant
}

func labelsOf(topology, proxy, balancer, degradation, rate string) map[string]string {
	return map[string]string{
		"topology": topology, "proxy": proxy, "balancer": balancer, "protocol": "http1",
		"degradation": degradation, "mtls": "off", "rate": rate,
	}
}

func sidecars(clientCPU, serverCPU float64) []fixtureProxy {
	return []fixtureProxy{
		{"sidecar-client-0", "sidecar", "node-0", clientCPU, 14},
		{"sidecar-echo-0", "sidecar", "node-0", serverCPU, 12},
		{"sidecar-echo-1", "sidecar", "node-1", serverCPU, 12},
		{"sidecar-echo-2", "sidecar", "node-1", serverCPU, 12},
	}
}

// run1Spec is the committed fixture: baseline, sidecar and daemonset
// twice each, two balancers under a pod made slow mid-run, and a variant
// whose cells failed or never ran (the run was interrupted).
func run1Spec() fixtureRun {
	even := []float64{1, 1, 1}
	slow := &result.Event{AtMs: 5000, Pod: "echo-1", Latency: "5ms", Concurrency: 1}
	return fixtureRun{
		info: result.Run{
			Scenario: "compare", Description: "Topologies and balancers side by side (test fixture).",
			Platform: "local", Started: time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC),
			Incomplete: true, Reason: "interrupted by SIGINT", Repeats: 2,
			Dimensions: []string{"topology", "balancer", "degradation"},
			Env: map[string]any{"cpu_model": "Example CPU @ 2.00GHz", "cores": 2, "go_version": "go1.26.0",
				"commit": "0123abc", "kernel": "6.1.0"},
		},
		rate: 100, seconds: 10,
		variants: []fixtureVariant{
			{id: "baseline-none-none", labels: labelsOf("baseline", "none", "none", "none", "100"), baseUs: 300, weights: even},
			{id: "sidecar-round_robin-none", labels: labelsOf("sidecar", "meshproxy", "round_robin", "none", "100"), baseUs: 520,
				weights: even, proxies: sidecars(45, 15)},
			{id: "daemonset-round_robin-none", labels: labelsOf("daemonset", "meshproxy", "round_robin", "none", "100"), baseUs: 470,
				weights: even, proxies: []fixtureProxy{{"node-0", "node", "node-0", 48, 20}, {"node-1", "node", "node-1", 30, 19}}},
			{id: "sidecar-round_robin-slow", labels: labelsOf("sidecar", "meshproxy", "round_robin", "slow", "100"), baseUs: 520,
				weights: even, proxies: sidecars(45, 15), event: slow, slowPod: 1, afterWeights: even},
			{id: "sidecar-peak_ewma-slow", labels: labelsOf("sidecar", "meshproxy", "peak_ewma", "slow", "100"), baseUs: 530,
				weights: even, proxies: sidecars(47, 15), event: slow, slowPod: 1, afterWeights: []float64{0.495, 0.01, 0.495}},
			{id: "server-sidecar-round_robin-none", labels: labelsOf("server-sidecar", "meshproxy", "round_robin", "none", "100"), baseUs: 400,
				weights: even, proxies: sidecars(0, 15)[1:], status: map[int]string{1: result.StatusFailed, 2: result.StatusPending}},
		},
	}
}

// rateSweepSpec has a rate dimension: baseline and sidecar at three rates.
func rateSweepSpec() fixtureRun {
	even := []float64{1, 1}
	f := fixtureRun{
		info: result.Run{
			Scenario: "sweep", Platform: "local", Started: time.Date(2026, 1, 16, 9, 0, 0, 0, time.UTC),
			Finished: time.Date(2026, 1, 16, 9, 5, 0, 0, time.UTC), Repeats: 2,
			Dimensions: []string{"topology", "rate"},
		},
		rate: 50, seconds: 4,
	}
	for _, r := range []string{"50", "100", "200"} {
		x, _ := strconv.ParseFloat(r, 64)
		f.variants = append(f.variants,
			fixtureVariant{id: "baseline-" + r, labels: labelsOf("baseline", "none", "none", "none", r), baseUs: 300 + x, weights: even},
			fixtureVariant{id: "sidecar-" + r, labels: labelsOf("sidecar", "meshproxy", "round_robin", "none", r), baseUs: 500 + 2*x,
				weights: even, proxies: sidecars(40, 14)[:3]},
		)
	}
	return f
}

func seedOf(s string, r int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s/%d", s, r)
	return h.Sum64()
}

func pick(rng *rand.Rand, w []float64) int {
	var sum float64
	for _, x := range w {
		sum += x
	}
	u := rng.Float64() * sum
	for i, x := range w {
		if u < x {
			return i
		}
		u -= x
	}
	return len(w) - 1
}

// writeFixture writes the run described by f into dir, as the runner
// would: run.json, and result.json and latency.hlog per finished cell.
func writeFixture(dir string, f fixtureRun) error {
	info := f.info
	type job struct {
		v      fixtureVariant
		repeat int
	}
	var jobs []job
	for r := 1; r <= info.Repeats; r++ {
		for _, v := range f.variants {
			jobs = append(jobs, job{v, r})
		}
	}
	for i, j := range jobs {
		id := j.v.id + "-r" + strconv.Itoa(j.repeat)
		ci := result.Cell{ID: id, Variant: j.v.id, Labels: map[string]string{}, Repeat: j.repeat, Status: result.StatusDone}
		for _, d := range info.Dimensions {
			ci.Labels[d] = j.v.labels[d]
		}
		if st, ok := j.v.status[j.repeat]; ok {
			ci.Status = st
			if st == result.StatusFailed {
				ci.Error = "deploy: proxy sidecar-echo-0 did not become ready within 10s"
			}
			info.Cells = append(info.Cells, ci)
			continue
		}
		end := info.Started.Add(time.Duration(i+1) * 15 * time.Second)
		res, hlog, err := synthesize(f, j.v, ci, end)
		if err != nil {
			return err
		}
		cdir := filepath.Join(dir, id)
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return err
		}
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cdir, result.ResultFile), append(b, '\n'), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(cdir, result.HdrLogFile), hlog, 0o644); err != nil {
			return err
		}
		info.Cells = append(info.Cells, ci)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, result.RunFile), append(b, '\n'), 0o644)
}

// synthesize makes one cell's result from fixed seeds: open-loop arrivals
// at f.rate for f.seconds, log-normal latencies around the variant's
// base, a small tail, and the slow pod's delay after the event.
func synthesize(f fixtureRun, v fixtureVariant, ci result.Cell, end time.Time) (*result.CellResult, []byte, error) {
	rng := rand.New(rand.NewPCG(seedOf(v.id, ci.Repeat), 7))
	rate, err := strconv.ParseFloat(v.labels["rate"], 64)
	if err != nil {
		rate = f.rate
	}
	n := int(rate) * f.seconds
	all := hdrhistogram.New(1, 60_000_000, 3)
	secs := make([]*hdrhistogram.Histogram, f.seconds)
	for i := range secs {
		secs[i] = hdrhistogram.New(1, 60_000_000, 2)
	}
	endpoints := map[string]int64{}
	base := v.baseUs * (1 + 0.04*float64(ci.Repeat-1)) // repeats differ a little
	for i := 0; i < n; i++ {
		t := float64(i) / rate
		w := v.weights
		after := v.event != nil && t*1000 >= float64(v.event.AtMs)
		if after && v.afterWeights != nil {
			w = v.afterWeights
		}
		ep := pick(rng, w)
		endpoints["echo-"+strconv.Itoa(ep)]++
		lat := base * math.Exp(0.25*rng.NormFloat64())
		if rng.Float64() < 0.01 {
			lat *= 4
		}
		if after && ep == v.slowPod {
			lat += 5000 * (1 + 0.5*rng.Float64())
		}
		us := int64(lat)
		if err := all.RecordValue(us); err != nil {
			return nil, nil, err
		}
		if err := secs[int(t)].RecordValue(us); err != nil {
			return nil, nil, err
		}
	}
	enc, err := loadgen.EncodeHistogram(all)
	if err != nil {
		return nil, nil, err
	}
	pct := func(h *hdrhistogram.Histogram) loadgen.Percentiles {
		return loadgen.Percentiles{P50: h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
			P999: h.ValueAtQuantile(99.9), P9999: h.ValueAtQuantile(99.99), Max: h.Max(),
			Mean: math.Round(h.Mean()*10) / 10, Count: h.TotalCount()}
	}
	dur := float64(f.seconds)
	res := &result.CellResult{
		Result: loadgen.Result{
			Labels: v.labels, Target: "http://10.0.0.1:4140/", Protocol: "http1",
			RequestedRate: rate, AchievedRate: float64(n) / dur, DurationS: dur, Requests: int64(n),
			Connections: 4, Streams: 1, Arrival: "uniform", Sustained: true,
			Errors: loadgen.Errors{ByClass: map[string]int64{}}, Latency: pct(all), ServiceTime: pct(all),
			Histogram: enc, ServiceHistogram: enc, Endpoints: endpoints,
			StatusCodes: map[string]int64{"200": int64(n)},
			Env:         map[string]any{"time": end.Format(time.RFC3339), "cores": 2, "go_version": "go1.26.0", "os": "linux", "arch": "amd64"},
		},
		Cell: ci,
	}
	for s, h := range secs {
		res.Timeseries = append(res.Timeseries, loadgen.Second{T: s, Rate: float64(h.TotalCount()),
			P50: h.ValueAtQuantile(50), P99: h.ValueAtQuantile(99)})
	}
	if v.event != nil {
		res.Events = []result.Event{*v.event}
	}
	for _, p := range v.proxies {
		cpu := p.cpuPerReq * (1 + 0.05*rng.NormFloat64())
		rss := int64(p.rssMiB * (1 + 0.03*rng.Float64()) * (1 << 20))
		u := result.ProxyUsage{Name: p.name, Kind: p.kind, Node: p.node, Usage: result.Usage{
			CPUSeconds: math.Round(cpu*float64(n)) / 1e6, CPUMicrosPerRequest: math.Round(cpu*100) / 100,
			RSSPeakBytes: rss, RSSMeanBytes: rss * 9 / 10, IdleRSSBytes: rss * 7 / 10, AnonPeakBytes: rss / 4,
		}}
		res.Resources.Proxies = append(res.Resources.Proxies, u)
		t := &res.Resources.Total
		t.CPUSeconds += u.CPUSeconds
		t.CPUMicrosPerRequest += u.CPUMicrosPerRequest
		t.RSSPeakBytes += u.RSSPeakBytes
		t.RSSMeanBytes += u.RSSMeanBytes
		t.IdleRSSBytes += u.IdleRSSBytes
		t.AnonPeakBytes += u.AnonPeakBytes
		res.Proxies = append(res.Proxies, result.ProxyMetrics{Name: p.name,
			Latency: map[string]loadgen.Percentiles{"inbound": {P50: int64(base / 2), P99: int64(base)}}})
	}
	if len(v.proxies) > 0 {
		res.Resources.SampleIntervalMs = 100
		res.Resources.Total.CPUSeconds = math.Round(res.Resources.Total.CPUSeconds*1e6) / 1e6
		res.Resources.Total.CPUMicrosPerRequest = math.Round(res.Resources.Total.CPUMicrosPerRequest*100) / 100
	}

	var hlog bytes.Buffer
	lw := hdrhistogram.NewHistogramLogWriter(&hlog)
	start := end.Add(-time.Duration(f.seconds) * time.Second).UnixMilli()
	if err := lw.OutputLogFormatVersion(); err != nil {
		return nil, nil, err
	}
	if err := lw.OutputStartTime(start); err != nil {
		return nil, nil, err
	}
	lw.SetBaseTime(start)
	if err := lw.OutputLegend(); err != nil {
		return nil, nil, err
	}
	for s, h := range secs {
		h.SetStartTimeMs(start + int64(s)*1000)
		h.SetEndTimeMs(start + int64(s+1)*1000)
		if err := lw.OutputIntervalHistogram(h); err != nil {
			return nil, nil, err
		}
	}
	return res, hlog.Bytes(), nil
}

// TestFixture checks that testdata/run1 is what run1Spec generates (and
// rewrites it with -regen), so the fixture and its generator never drift.
// Histograms are compared decoded: their compressed bytes may change with
// the compressor.
func TestFixture(t *testing.T) {
	want := filepath.Join("testdata", "run1")
	if *regen {
		if err := os.RemoveAll(want); err != nil {
			t.Fatal(err)
		}
		if err := writeFixture(want, run1Spec()); err != nil {
			t.Fatal(err)
		}
	}
	got := t.TempDir()
	if err := writeFixture(got, run1Spec()); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(got, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(want, rel))
		if err != nil {
			t.Errorf("%s: %v (regenerate with -regen)", rel, err)
			return nil
		}
		switch filepath.Base(p) {
		case result.HdrLogFile:
			return nil
		case result.ResultFile:
			a, b = comparableResult(t, a), comparableResult(t, b)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from what the generator writes (regenerate with -regen)", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// comparableResult re-encodes a result.json with its histograms replaced
// by their percentile distribution.
func comparableResult(t *testing.T, b []byte) []byte {
	t.Helper()
	var r result.CellResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*string{&r.Histogram, &r.ServiceHistogram} {
		h, err := loadgen.DecodeHistogram(*s)
		if err != nil {
			t.Fatal(err)
		}
		*s = fmt.Sprint(h.CumulativeDistributionWithTicks(5))
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

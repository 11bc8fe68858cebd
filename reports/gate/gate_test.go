package gate_test

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports"
	"github.com/meshbench/meshbench/reports/gate"
	"github.com/meshbench/meshbench/reports/result"
)

func TestSpecErrorsNameTheField(t *testing.T) {
	cases := []struct{ doc, want string }{
		{"metrics: [{metric: p50, relative: 5%}]\nbogus: 1\n", "bogus"},
		{"metrics: [{metric: p42, relative: 5%}]\n", `metrics[0].metric: "p42": unknown metric`},
		{"metrics: [{metric: p50}]\n", "metrics[0]: a threshold is required"},
		{"metrics: [{metric: p50, relative: 5%, absolute: 10us}]\n", "metrics[0]: relative and absolute are exclusive"},
		{"metrics: [{metric: p50, relative: five}]\n", `metrics[0].relative: "five"`},
		{"metrics: [{metric: rss_peak, absolute: 4 parsecs}]\n", `metrics[0].absolute: "4 parsecs": want a size such as 4MiB`},
		{"metrics: [{metric: p50, absolute: -5us}]\n", "metrics[0].absolute"},
		{"metrics: [{metric: p50, relative: 5%}, {metric: p50, relative: 9%}]\n", `metrics[1].metric: "p50": listed twice`},
		{"confidence: 1.5\nmetrics: [{metric: p50, relative: 5%}]\n", "confidence: 1.5"},
		{"group: each\nmetrics: [{metric: p50, relative: 5%}]\n", `group: "each"`},
		{"inconclusive_exit: 7\nmetrics: [{metric: p50, relative: 5%}]\n", "inconclusive_exit: 7"},
		{"variants: [{proxy: nginx}]\nmetrics: [{metric: p50, relative: 5%}]\n", "variants[0].proxy"},
		{"base: reference@a\ncandidate: reference@a\nmetrics: [{metric: p50, relative: 5%}]\n", "candidate"},
		{"metrics: []\n", "metrics: at least one metric"},
	}
	for _, c := range cases {
		_, err := gate.Parse("g.yaml", []byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "g.yaml:") {
			t.Errorf("%q: error %v, want one with the file and %q", c.doc, err, c.want)
		}
	}
	s, err := gate.Parse("g.yaml", []byte("metrics: [{metric: p50, relative: 5%}, {metric: rss_peak, absolute: 4MiB}, {metric: cpu_per_request, absolute: 2us}, {metric: error_rate, absolute: 0.1%}, {metric: achieved_rate, absolute: 20/s}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.05, 4 << 20, 2, 0.001, 20}
	for i, m := range s.Metrics {
		if math.Abs(m.Threshold-want[i]) > 1e-9*want[i] {
			t.Errorf("%s threshold %v, want %v", m.Metric, m.Threshold, want[i])
		}
	}
	if s.Base != gate.DefaultBase || s.Candidate != gate.DefaultCandidate || s.Confidence != 0.95 || s.MinEffectRatio != 0.01 || s.ExitInconclusive() != 3 {
		t.Errorf("defaults: %+v", s)
	}
}

func TestBootstrapMedian(t *testing.T) {
	xs := []float64{1.02, 0.98, 1.01, 0.99, 1.00, 1.03, 0.97, 1.00, 1.01, 0.99}
	iv := gate.BootstrapMedian(xs, 0.95, 10000)
	if iv.Median != 1.00 || !(iv.Low < 1 && iv.High > 1) || iv.Low < 0.97 || iv.High > 1.03 {
		t.Errorf("interval %+v", iv)
	}
	if again := gate.BootstrapMedian(xs, 0.95, 10000); again != iv {
		t.Errorf("not reproducible: %+v then %+v", iv, again)
	}
	// A wider confidence gives a wider interval; more data a narrower one.
	if w := gate.BootstrapMedian(xs, 0.5, 10000); w.High-w.Low >= iv.High-iv.Low {
		t.Errorf("50%% interval %+v not narrower than 95%% %+v", w, iv)
	}
	var many []float64
	for range 10 {
		many = append(many, xs...)
	}
	if m := gate.BootstrapMedian(many, 0.95, 10000); m.High-m.Low >= iv.High-iv.Low {
		t.Errorf("100 values %+v not narrower than 10 %+v", m, iv)
	}
}

func TestRepeatsNeeded(t *testing.T) {
	iv := gate.Interval{Median: 1.04, Low: 1.00, High: 1.08}
	// The threshold 1.05 is 0.01 above the median, the half-width 0.04:
	// (0.04/0.01)^2 = 16 times the repeats.
	if n := gate.RepeatsNeeded(iv, 5, 1.05); n != 80 {
		t.Errorf("RepeatsNeeded = %d, want 80", n)
	}
	if n := gate.RepeatsNeeded(iv, 5, 1.04); n != 0 {
		t.Errorf("on the boundary: %d, want 0", n)
	}
	if n := gate.RepeatsNeeded(gate.Interval{Median: 1.2, Low: 0.5, High: 3}, 5, 1.19); n != gate.MaxRepeatsNeeded {
		t.Errorf("capped: %d", n)
	}
}

// fakeRun builds a finished A/B run in memory: a baseline, and the two
// builds of one sidecar variant over n repeats; cpu(r) and p50(r) give
// each build's figures.
func fakeRun(n int, base, cand func(r int) (cpu float64, p50 int64)) *reports.Run {
	run := &reports.Run{Dir: "run", Info: result.Run{Scenario: "gate", Platform: "local", Repeats: n,
		Dimensions: []string{"topology", "proxy"},
		Binaries: map[string]result.Binary{
			"reference@base":      {SHA256: "aaaa"},
			"reference@candidate": {SHA256: "bbbb"},
		}}}
	mk := func(id, topo, proxy string, f func(int) (float64, int64)) *reports.Variant {
		v := &reports.Variant{ID: id, Labels: map[string]string{"topology": topo, "proxy": proxy}}
		for r := 1; r <= n; r++ {
			cpu, p50 := f(r)
			res := &result.CellResult{Result: loadgen.Result{RequestedRate: 1000, AchievedRate: 1000, Sustained: true,
				Requests: 2000, Latency: loadgen.Percentiles{P50: p50, P99: 3 * p50}}}
			res.Resources.Total.CPUMicrosPerRequest = cpu
			res.Resources.Total.RSSPeakBytes = 30 << 20
			c := &reports.Cell{Info: result.Cell{ID: fmt.Sprintf("%s-r%d", id, r), Variant: id, Labels: v.Labels, Repeat: r, Status: result.StatusDone}, Result: res}
			v.Cells = append(v.Cells, c)
			run.Cells = append(run.Cells, c)
		}
		run.Variants = append(run.Variants, v)
		return v
	}
	mk("baseline-none", "baseline", "none", func(int) (float64, int64) { return 0, 100 })
	mk("sidecar-reference-base", "sidecar", "reference@base", base)
	mk("sidecar-reference-candidate", "sidecar", "reference@candidate", cand)
	return run
}

func spec(t *testing.T, doc string) *gate.Spec {
	t.Helper()
	s, err := gate.Parse("g.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// noise is a deterministic ±3% wobble per repeat.
func noise(r int, seed float64) float64 { return 1 + 0.03*math.Sin(float64(r)*1.7+seed) }

func TestVerdicts(t *testing.T) {
	const doc = "metrics: [{metric: cpu_per_request, relative: 5%}, {metric: p50, relative: 10%}]\n"
	same := func(seed float64) func(int) (float64, int64) {
		return func(r int) (float64, int64) { return 100 * noise(r, seed), 100 + int64(400*noise(r, seed+1)) }
	}
	scaled := func(cpu, lat float64) func(int) (float64, int64) {
		return func(r int) (float64, int64) {
			return 100 * cpu * noise(r, 2), 100 + int64(400*lat*noise(r, 3))
		}
	}
	cases := []struct {
		name       string
		n          int
		cand       func(int) (float64, int64)
		cpu, p50   string
		verdict    string
		exit       int
		wantReason string
	}{
		{"identical builds pass", 10, same(0.5), gate.OK, gate.OK, gate.OK, 0, ""},
		{"20% more CPU is a regression", 10, scaled(1.2, 1), gate.Regression, gate.OK, gate.Regression, 1, "worse than the threshold +5.0%"},
		{"30% more added latency is a regression", 10, scaled(1, 1.3), gate.OK, gate.Regression, gate.Regression, 1, ""},
		{"1% less CPU is ok, not an improvement", 10, scaled(0.99, 1), gate.OK, gate.OK, gate.OK, 0, "within the threshold"},
		{"on the threshold is inconclusive", 10, scaled(1.05, 1), gate.Inconclusive, gate.OK, gate.Inconclusive, 3, "straddles"},
		{"half the CPU is an improvement", 10, scaled(0.5, 1), gate.Improvement, gate.OK, gate.OK, 0, "better than"},
		{"too few repeats", 2, scaled(1.5, 1), gate.Inconclusive, gate.Inconclusive, gate.Inconclusive, 3, "2 paired repeats, 3 needed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			run := fakeRun(c.n, same(0), c.cand)
			res, err := gate.Evaluate(run, spec(t, doc))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Rows) != 2 || res.Rows[0].Verdict != c.cpu || res.Rows[1].Verdict != c.p50 {
				for _, r := range res.Rows {
					t.Logf("%s: %s %+v %s", r.Metric, r.Verdict, r.Estimate, r.Reason)
				}
				t.Fatalf("verdicts cpu %s p50 %s, want %s %s", res.Rows[0].Verdict, res.Rows[1].Verdict, c.cpu, c.p50)
			}
			if res.Verdict != c.verdict || res.Exit != c.exit {
				t.Errorf("gate %s exit %d, want %s %d", res.Verdict, res.Exit, c.verdict, c.exit)
			}
			if c.wantReason != "" && !strings.Contains(res.Rows[0].Reason, c.wantReason) {
				t.Errorf("reason %q lacks %q", res.Rows[0].Reason, c.wantReason)
			}
			if c.cpu == gate.Inconclusive && res.Rows[0].RepeatsNeeded == 0 && c.n > 2 {
				t.Logf("no estimate of the repeats needed: %s", res.Rows[0].Reason)
			}
			if len(res.Rows[0].Pairs) != c.n || res.Rows[0].Pairs[0].Repeat != 1 {
				t.Errorf("pairs %+v", res.Rows[0].Pairs)
			}
		})
	}
}

func TestAddedLatencyIsAgainstTheBaselineOfTheSameRepeat(t *testing.T) {
	// The candidate's total latency is the base's + 100 µs, with an added
	// latency (over a 100 µs baseline) of 400 vs 500 µs: a ratio of 1.25.
	run := fakeRun(6, func(int) (float64, int64) { return 100, 500 }, func(int) (float64, int64) { return 100, 600 })
	res, err := gate.Evaluate(run, spec(t, "metrics: [{metric: p50, relative: 10%}, {metric: p99, absolute: 250us}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Rows[0]; r.Estimate.Median != 1.25 || r.BaseMedian != 400 || r.CandidateMedian != 500 || r.Verdict != gate.Regression {
		t.Errorf("p50 row %+v", r)
	}
	// p99 is 3x p50: 1500-300 vs 1800-300, a difference of 300 µs > 250 µs.
	if r := res.Rows[1]; r.Relative || r.Estimate.Median != 300 || r.Verdict != gate.Regression {
		t.Errorf("p99 row %+v", r)
	}
}

func TestFailedCandidateCellIsARegression(t *testing.T) {
	same := func(int) (float64, int64) { return 100, 500 }
	run := fakeRun(5, same, same)
	for _, c := range run.Cells {
		if c.Info.ID == "sidecar-reference-candidate-r3" {
			c.Result, c.Problem, c.Info.Status = nil, "deploying proxy: exited with status 2", result.StatusFailed
		}
	}
	res, err := gate.Evaluate(run, spec(t, "metrics: [{metric: cpu_per_request, relative: 5%}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != gate.Regression || res.Exit != 1 || len(res.Failures) != 1 || !strings.Contains(res.Failures[0], "repeat 3") {
		t.Errorf("verdict %s exit %d failures %q", res.Verdict, res.Exit, res.Failures)
	}
	if res.Rows[0].Verdict != gate.OK || len(res.Rows[0].Pairs) != 4 {
		t.Errorf("row %+v", res.Rows[0])
	}
}

func TestUnsustainedCellsAreLeftOut(t *testing.T) {
	same := func(int) (float64, int64) { return 100, 500 }
	run := fakeRun(4, same, same)
	run.Cells[len(run.Cells)-1].Result.Sustained = false
	res, err := gate.Evaluate(run, spec(t, "min_pairs: 4\nmetrics: [{metric: cpu_per_request, relative: 5%}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != gate.Inconclusive || len(res.Problems) != 1 || !strings.Contains(res.Problems[0], "did not sustain") {
		t.Errorf("verdict %s problems %q", res.Verdict, res.Problems)
	}
}

func TestLowerIsWorse(t *testing.T) {
	run := fakeRun(6, func(int) (float64, int64) { return 100, 500 }, func(int) (float64, int64) { return 100, 500 })
	for _, c := range run.Cells {
		if c.Info.Labels["proxy"] == "reference@candidate" {
			c.Result.AchievedRate = 900 // 10% fewer requests/s
		}
	}
	res, err := gate.Evaluate(run, spec(t, "metrics: [{metric: achieved_rate, relative: 2%}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows[0].Verdict != gate.Regression {
		t.Errorf("a lower rate: %+v", res.Rows[0])
	}
}

func TestNothingToCompare(t *testing.T) {
	run := fakeRun(3, func(int) (float64, int64) { return 1, 1 }, func(int) (float64, int64) { return 1, 1 })
	if _, err := gate.Evaluate(run, spec(t, "candidate: reference@other\nmetrics: [{metric: p50, relative: 5%}]\n")); err == nil || !strings.Contains(err.Error(), "no variant that both") {
		t.Errorf("missing candidate: %v", err)
	}
	run.Info.Incomplete = true
	if _, err := gate.Evaluate(run, spec(t, "metrics: [{metric: p50, relative: 5%}]\n")); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("incomplete run: %v", err)
	}
}

// TestInvalidCellsAreRefused: an invalid cell (of a build or of the
// baseline) is left out and listed, and a run with one cannot pass even
// when the valid pairs say ok; a regression stays a regression.
func TestInvalidCellsAreRefused(t *testing.T) {
	same := func(int) (float64, int64) { return 100, 500 }
	const doc = "metrics: [{metric: cpu_per_request, relative: 5%}, {metric: p50, relative: 10%}]\n"
	res, err := gate.Evaluate(fakeRun(10, same, same), spec(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != gate.OK || len(res.Refused) != 0 {
		t.Fatalf("identical valid builds: verdict %s, refused %q", res.Verdict, res.Refused)
	}
	run := fakeRun(10, same, same)
	run.Cells[0].Result.Invalid = "late sends: p99 send lag 9ms above the 5ms bound" // the baseline's repeat 1
	run.Cells[len(run.Cells)-1].Result.Invalid = "too few connections"               // the candidate's repeat 10
	res, err = gate.Evaluate(run, spec(t, doc))
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != gate.Inconclusive || res.Exit != gate.ExitInconclusive || len(res.Refused) != 2 ||
		!strings.Contains(res.Refused[0], "baseline-none-r1: late sends") || !strings.Contains(res.Refused[1], "candidate-r10: too few connections") {
		t.Errorf("with invalid cells: verdict %s exit %d refused %q", res.Verdict, res.Exit, res.Refused)
	}
	for _, row := range res.Rows {
		want := 9 // repeat 10 refused
		if row.Metric == gate.MetricP50 {
			want = 8 // and repeat 1's baseline too
		}
		if len(row.Pairs) != want {
			t.Errorf("%s: %d pairs, want %d", row.Metric, len(row.Pairs), want)
		}
	}
	worse := fakeRun(10, same, func(int) (float64, int64) { return 130, 500 })
	worse.Cells[0].Result.Invalid = "late sends"
	if res, err = gate.Evaluate(worse, spec(t, doc)); err != nil || res.Verdict != gate.Regression {
		t.Errorf("a regression with an invalid cell: %v %v", res.Verdict, err)
	}
}

func TestMaxRate(t *testing.T) {
	same := func(int) (float64, int64) { return 100, 500 }
	run := fakeRun(8, same, same)
	for _, c := range run.Cells {
		rate := 1000.0
		if c.Info.Labels["proxy"] == "reference@candidate" {
			rate = 850 // the candidate sustains 15% less within the objective
		}
		c.Result.Search = &loadgen.SearchResult{MaxRate: rate * noise(c.Info.Repeat, 1)}
	}
	res, err := gate.Evaluate(run, spec(t, "metrics: [{metric: max_rate, relative: 5%}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows[0].Verdict != gate.Regression || math.Abs(res.Rows[0].Estimate.Median-0.85) > 0.05 {
		t.Errorf("15%% lower max rate: %+v", res.Rows[0])
	}
	// Cells without a search have no max rate.
	res, err = gate.Evaluate(fakeRun(8, same, same), spec(t, "metrics: [{metric: max_rate, relative: 5%}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows[0].Verdict == gate.OK || len(res.Problems) == 0 || !strings.Contains(res.Problems[0], "no rate search") {
		t.Errorf("no search: verdict %s problems %q", res.Rows[0].Verdict, res.Problems)
	}
}

package reports

import (
	"github.com/meshbench/meshbench/reports/result"

	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/meshbench/meshbench/loadgen"
)

// handCell is one cell of a hand-built run: its variant, labels, repeat
// and the load generator's result, written as the runner would.
type handCell struct {
	variant string
	labels  map[string]string
	repeat  int
	res     loadgen.Result
}

// histOf encodes a histogram of the given values (µs).
func histOf(t *testing.T, us ...int64) string {
	t.Helper()
	h := hdrhistogram.New(1, 60_000_000, 3)
	for _, x := range us {
		if err := h.RecordValue(x); err != nil {
			t.Fatal(err)
		}
	}
	s, err := loadgen.EncodeHistogram(h)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// latency returns the result of a load at rate with the given p50 and
// p99 (µs), its histogram holding those two values.
func latency(t *testing.T, rate float64, p50, p99 int64) loadgen.Result {
	t.Helper()
	n := int64(rate * 10)
	return loadgen.Result{
		RequestedRate: rate, AchievedRate: rate, DurationS: 10, Requests: n, Sustained: true,
		Errors:    loadgen.Errors{ByClass: map[string]int64{}},
		Latency:   loadgen.Percentiles{P50: p50, P90: p99, P99: p99, P999: p99, Max: p99, Count: n},
		Histogram: histOf(t, p50, p99),
	}
}

// stream is latency as one stream of a mix.
func stream(t *testing.T, name, protocol string, rate float64, p50, p99 int64) loadgen.Result {
	t.Helper()
	r := latency(t, rate, p50, p99)
	r.Stream, r.Protocol = name, protocol
	return r
}

// loadHandRun writes the cells into a run directory (run.json and one
// result.json per cell) and loads it.
func loadHandRun(t *testing.T, dims []string, cells []handCell) *Run {
	t.Helper()
	dir := t.TempDir()
	info := result.Run{Scenario: "hand", Platform: "local", Dimensions: dims,
		Started: time.Date(2026, 2, 1, 10, 0, 0, 0, time.UTC), Finished: time.Date(2026, 2, 1, 10, 30, 0, 0, time.UTC)}
	for _, hc := range cells {
		info.Repeats = max(info.Repeats, hc.repeat)
		ci := result.Cell{ID: hc.variant + "-r" + strconv.Itoa(hc.repeat), Variant: hc.variant,
			Labels: map[string]string{}, Repeat: hc.repeat, Status: result.StatusDone}
		for _, d := range dims {
			if v, ok := hc.labels[d]; ok {
				ci.Labels[d] = v
			}
		}
		res := result.CellResult{Result: hc.res, Cell: ci}
		res.Labels = hc.labels
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, ci.ID), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ci.ID, result.ResultFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
		info.Cells = append(info.Cells, ci)
	}
	b, err := json.Marshal(info)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, result.RunFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	run, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// tableByID returns the table of run with the given ID; ok is false when
// Tables left it out.
func tableByID(run *Run, id string) (Table, bool) {
	for _, t := range Tables(run) {
		if t.ID == id {
			return t, true
		}
	}
	return Table{}, false
}

// rowOf returns the table's row whose first columns are key.
func rowOf(t *testing.T, tb Table, key ...string) map[string]string {
	t.Helper()
	for _, r := range tb.Rows {
		if slices.Equal(r[:len(key)], key) {
			m := map[string]string{}
			for i, h := range tb.Header {
				m[h] = r[i]
			}
			return m
		}
	}
	t.Fatalf("table %s has no row %v: %v", tb.ID, key, tb.Rows)
	return nil
}

// checkReports writes the run's report and checks that report.md and
// report.html both hold each of want (HTML-escaped in the page), and the
// page explains each figure kind in kinds.
func checkReports(t *testing.T, run *Run, kinds []string, want ...string) {
	t.Helper()
	o, err := Write(run, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(o.Markdown)
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(o.HTML)
	if err != nil {
		t.Fatal(err)
	}
	checkSelfContained(t, html)
	for _, s := range want {
		if !strings.Contains(string(md), mdCell(s)) {
			t.Errorf("report.md lacks %q:\n%s", s, md)
		}
		if !strings.Contains(string(html), htmlEscaped(s)) {
			t.Errorf("report.html lacks %q", s)
		}
	}
	for _, k := range kinds {
		if r := HowToRead(k); r == "" || !strings.Contains(string(html), htmlEscaped(r)) {
			t.Errorf("report.html does not explain figures of kind %s", k)
		}
	}
}

func figureNames(t *testing.T, run *Run) []string {
	t.Helper()
	figs, err := Figures(run)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range figs {
		names = append(names, f.Name)
	}
	return names
}

// mixedRun has a baseline and a sidecar whose load mixes an HTTP/1.1 and
// a gRPC stream, two repeats each.
func mixedRun(t *testing.T) *Run {
	t.Helper()
	labels := func(topo string) map[string]string {
		return map[string]string{"topology": topo, "proxy": "meshproxy", "mix": "60-40", "protocol": "mixed"}
	}
	// p50 and p99 of http and grpc per repeat.
	cell := func(variant, topo string, repeat int, h50, h99, g50, g99 int64) handCell {
		// The merged figures at the top level are deliberately unlike
		// either stream's.
		r := latency(t, 1000, 5555, 9999)
		r.Mix = []loadgen.Result{stream(t, "http", "http1", 600, h50, h99), stream(t, "grpc", "grpc", 400, g50, g99)}
		r.Mix[1].Errors.Total = int64(repeat)
		return handCell{variant: variant, labels: labels(topo), repeat: repeat, res: r}
	}
	return loadHandRun(t, []string{"topology", "mix"}, []handCell{
		cell("baseline", "baseline", 1, 300, 800, 500, 1200),
		cell("sidecar", "sidecar", 1, 400, 900, 700, 1500),
		cell("baseline", "baseline", 2, 310, 820, 520, 1300),
		cell("sidecar", "sidecar", 2, 420, 1000, 760, 1700),
	})
}

func TestStreamsTable(t *testing.T) {
	run := mixedRun(t)
	tb, ok := tableByID(run, "streams")
	if !ok {
		t.Fatal("no streams table for a mixed load")
	}
	if len(tb.Rows) != 4 {
		t.Errorf("streams table has %d rows, want 2 variants × 2 streams", len(tb.Rows))
	}
	for _, tc := range []struct {
		variant, stream string
		want            map[string]string
	}{
		{"sidecar", "http", map[string]string{"protocol": "http1", "n": "2", "requested rate": "600 req/s", "achieved rate": "600 req/s",
			"p50": "410 µs (400–420)", "p99": "950 µs (900–1000)", "errors": "0",
			// per repeat: 400−300, 420−310; 900−800, 1000−820
			"p50 added": "+105 µs (+100–+110)", "p99 added": "+140 µs (+100–+180)"}},
		{"sidecar", "grpc", map[string]string{"protocol": "grpc", "p50": "730 µs (700–760)", "p99": "1.60 ms (1.50–1.70)",
			"errors": "1.5 (1–2)", "p50 added": "+220 µs (+200–+240)", "p99 added": "+350 µs (+300–+400)"}},
		{"baseline", "http", map[string]string{"p50": "305 µs (300–310)", "p50 added": "baseline"}},
	} {
		row := rowOf(t, tb, tc.variant, tc.stream)
		for k, want := range tc.want {
			if row[k] != want {
				t.Errorf("%s %s: %s = %q, want %q", tc.variant, tc.stream, k, row[k], want)
			}
		}
	}
	// The summary keeps the merged figures.
	if got := run.Variant("sidecar").Stats.P50.Median; got != 5555 {
		t.Errorf("summary p50 = %v, want the merged 5555", got)
	}
	if names := figureNames(t, run); !slices.Contains(names, "streams") {
		t.Errorf("figures %v lack streams", names)
	}
	checkReports(t, run, []string{FigStreams}, "Streams", "+105 µs (+100–+110)")
}

func TestStreamsAddedNeedsTheBaselinesStream(t *testing.T) {
	labels := func(topo string) map[string]string { return map[string]string{"topology": topo} }
	base := latency(t, 600, 300, 800)
	base.Mix = []loadgen.Result{stream(t, "http", "http1", 600, 300, 800)}
	side := latency(t, 1000, 500, 900)
	side.Mix = []loadgen.Result{stream(t, "http", "http1", 600, 400, 900), stream(t, "grpc", "grpc", 400, 700, 1500)}
	run := loadHandRun(t, []string{"topology"}, []handCell{
		{"baseline", labels("baseline"), 1, base}, {"sidecar", labels("sidecar"), 1, side},
	})
	tb, _ := tableByID(run, "streams")
	if got := rowOf(t, tb, "sidecar", "http")["p50 added"]; got != "+100 µs" {
		t.Errorf("http p50 added = %q, want +100 µs", got)
	}
	if got := rowOf(t, tb, "sidecar", "grpc")["p50 added"]; got != none {
		t.Errorf("grpc p50 added = %q, want %s: the baseline has no grpc stream", got, none)
	}
}

// searchResult is a search that found rate (achieved: 99.8% of it), with
// the given probes.
func searchResult(t *testing.T, rate float64, capped bool, limit string, probes ...loadgen.Probe) loadgen.Result {
	t.Helper()
	r := latency(t, rate, 2000, 8000)
	r.Search = &loadgen.SearchResult{
		Objective: loadgen.ObjectiveJSON{P99us: 10_000, Errors: 0.001, Max: 20000},
		MaxRate:   rate, MaxAchievedRate: rate * 0.998, Capped: capped, Limit: limit, Probes: probes,
	}
	return r
}

func probe(rate float64, p50, p99 int64, invalid string) loadgen.Probe {
	return loadgen.Probe{Rate: rate, AchievedRate: rate - 1, Requests: int64(rate * 10),
		Latency: loadgen.Percentiles{P50: p50, P99: p99}, Invalid: invalid, Met: p99 <= 10_000 && invalid == ""}
}

func searchRun(t *testing.T) *Run {
	t.Helper()
	side := map[string]string{"topology": "sidecar", "proxy": "meshproxy", "protocol": "http1"}
	base := map[string]string{"topology": "baseline", "proxy": "none", "protocol": "http1"}
	ds := map[string]string{"topology": "daemonset", "proxy": "meshproxy", "protocol": "http1"}
	stopped := searchResult(t, 800, false, "at 900 req/s: invalid run: sent late", probe(800, 500, 2000, ""), probe(900, 500, 2100, "sent late"))
	stopped.Invalid = "the search was stopped by the load generator, not by the target: at 900 req/s: invalid run: sent late"
	return loadHandRun(t, []string{"topology"}, []handCell{
		{"baseline", base, 1, searchResult(t, 20000, true, "", probe(20000, 300, 900, ""))},
		{"sidecar", side, 1, searchResult(t, 1000, false, "at 1300 req/s: p99 12ms > 10ms",
			probe(500, 400, 1000, ""), probe(1300, 900, 12_000, ""), probe(1150, 700, 60_000, "sent late"), probe(1000, 600, 8000, ""))},
		{"baseline", base, 2, searchResult(t, 20000, true, "", probe(20000, 310, 950, ""))},
		{"sidecar", side, 2, searchResult(t, 1200, false, "at 1250 req/s: p99 11ms > 10ms", probe(500, 420, 1400, ""))},
		{"baseline", base, 3, searchResult(t, 20000, true, "", probe(20000, 320, 990, ""))},
		{"sidecar", side, 3, searchResult(t, 1100, false, "at 1150 req/s: p99 10.5ms > 10ms")},
		{"daemonset", ds, 1, stopped},
	})
}

func TestMaxRateTable(t *testing.T) {
	run := searchRun(t)
	tb, ok := tableByID(run, "maxrate")
	if !ok {
		t.Fatal("no max-rate table for a run with searches")
	}
	side := rowOf(t, tb, "sidecar")
	for k, want := range map[string]string{
		"proxy": "meshproxy", "topology": "sidecar", "objective": "p99 ≤ 10ms, errors ≤ 0.1%", "n": "3",
		// The median of 1000, 1200, 1100.
		"max rate": "1100 req/s (1000–1200)", "achieved rate": "1100 req/s (998–1200)",
		"capped": "no", "limit": "at 1300 req/s: p99 12ms > 10ms",
	} {
		if side[k] != want {
			t.Errorf("sidecar %s = %q, want %q", k, side[k], want)
		}
	}
	if b := rowOf(t, tb, "baseline"); b["max rate"] != "≥ 20000 req/s" || b["capped"] != "yes (≥ max)" || b["limit"] != none {
		t.Errorf("capped baseline row = %v", b)
	}
	if d := rowOf(t, tb, "daemonset"); d["max rate"] != "invalid" || d["n"] != "0" || !strings.HasPrefix(d["limit"], "the search was stopped by the load generator") {
		t.Errorf("invalid search row = %v", d)
	}
	if len(probePoints(run.Variant("daemonset"))) != 0 {
		t.Error("the probes of an invalid cell are drawn")
	}
	// The chart uses the valid probes only, by achieved rate, the
	// repeats' probes at one rate as one point.
	var rates []float64
	for _, p := range searchProbes(run.Variant("sidecar")) {
		rates = append(rates, p.Rate)
	}
	if !slices.Equal(rates, []float64{500, 500, 1000, 1300}) {
		t.Errorf("probes drawn at %v, want 500 (twice), 1000, 1300: the invalid probe at 1150 left out", rates)
	}
	pts := probePoints(run.Variant("sidecar"))
	if len(pts) != 3 || pts[0].rate != 500 || pts[0].p99 != (Spread{Median: 1200, Min: 1000, Max: 1400, N: 2}) || pts[2].rate != 1300 {
		t.Errorf("probe points = %+v, want 500 (p99 1200 from 1000 and 1400), 1000, 1300", pts)
	}
	if got := objectiveLevels(run); len(got) != 1 || got["objective p99 ≤ 10ms"] != 10 {
		t.Errorf("objective levels = %v", got)
	}
	names := figureNames(t, run)
	if !slices.Contains(names, "latency-vs-achieved-rate") || slices.Contains(names, "latency-vs-rate") {
		t.Errorf("figures = %v, want latency-vs-achieved-rate and no sweep chart", names)
	}
	checkReports(t, run, []string{FigSearch}, "Max sustainable rate at SLO", "1100 req/s (1000–1200)", "p99 ≤ 10ms, errors ≤ 0.1%")
}

func TestInvalidCellsLeftOut(t *testing.T) {
	labels := func(topo string) map[string]string { return map[string]string{"topology": topo, "proxy": "meshproxy"} }
	const why = "the generator fell behind its schedule: 80% of the requested rate"
	invalid := func(r loadgen.Result) loadgen.Result { r.Invalid = why; return r }
	run := loadHandRun(t, []string{"topology"}, []handCell{
		{"baseline", labels("baseline"), 1, latency(t, 100, 300, 800)},
		{"sidecar", labels("sidecar"), 1, latency(t, 100, 500, 900)},
		{"daemonset", labels("daemonset"), 1, invalid(latency(t, 100, 450, 850))},
		{"baseline", labels("baseline"), 2, latency(t, 100, 310, 800)},
		{"sidecar", labels("sidecar"), 2, latency(t, 100, 520, 900)},
		{"baseline", labels("baseline"), 3, latency(t, 100, 320, 800)},
		// An outlier that would show in every spread if it were counted.
		{"sidecar", labels("sidecar"), 3, invalid(latency(t, 100, 100_000, 200_000))},
	})
	side := run.Variant("sidecar")
	if s := side.Stats.P50; s.N != 2 || s.Max != 520 || s.Median != 510 {
		t.Errorf("sidecar p50 = %+v, want median 510, max 520 over 2 (the invalid repeat left out)", s)
	}
	if got := side.Merged.TotalCount(); got != 4 {
		t.Errorf("merged histogram holds %d values, want 4 (two valid repeats)", got)
	}
	for _, c := range Compare(run) {
		if c.Variant == side && (!slices.Equal(c.P50.Pairs, []int{1, 2}) || c.P50.Added.Max != 210) {
			t.Errorf("sidecar added p50 = %+v over pairs %v, want max +210 over [1 2]", c.P50.Added, c.P50.Pairs)
		}
	}
	if len(run.Missing()) != 0 {
		t.Errorf("invalid cells counted as missing: %v", run.Missing())
	}
	sum, _ := tableByID(run, "summary")
	if r := rowOf(t, sum, "sidecar"); r["n"] != "2" || r["p50"] != "510 µs (500–520)" || r["p99"] != "900 µs" {
		t.Errorf("sidecar summary = %v", r)
	}
	if r := rowOf(t, sum, "daemonset"); r["n"] != "0" || r["p50"] != "invalid" || r["achieved rate"] != "invalid" {
		t.Errorf("all-invalid variant's summary = %v, want invalid", r)
	}
	inv, ok := tableByID(run, "invalid")
	if !ok {
		t.Fatal("no invalid-cells table")
	}
	want := [][]string{{"daemonset-r1", why}, {"sidecar-r3", why}}
	if !slices.EqualFunc(inv.Rows, want, slices.Equal[[]string]) {
		t.Errorf("invalid cells = %v, want %v", inv.Rows, want)
	}
	for _, f := range Facts(run) {
		if f.Name == "Cells" && !strings.Contains(f.Value, "2 of them invalid") {
			t.Errorf("Cells fact = %q, want the invalid count", f.Value)
		}
	}
	checkReports(t, run, nil, "Invalid cells", "sidecar-r3", why)
}

func TestOldResultsHaveNoNewTables(t *testing.T) {
	run := loadRun1(t)
	for _, c := range run.Cells {
		if c.OK() && !c.Valid() {
			t.Errorf("cell %s without the invalid field is invalid", c.Info.ID)
		}
	}
	if len(run.Invalid()) != 0 {
		t.Errorf("Invalid() = %v", run.Invalid())
	}
	for _, id := range []string{"streams", "maxrate", "invalid"} {
		if _, ok := tableByID(run, id); ok {
			t.Errorf("run1 (no mixes, searches or invalid cells) has a %s table", id)
		}
	}
}

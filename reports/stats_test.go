package reports

import (
	"github.com/meshbench/meshbench/reports/result"

	"math"
	"testing"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/meshbench/meshbench/loadgen"
)

func TestSpreadOf(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name          string
		in            []float64
		med, min, max float64
		n             int
	}{
		{"one", []float64{5}, 5, 5, 5, 1},
		{"odd", []float64{9, 1, 4}, 4, 1, 9, 3},
		{"even takes the mean of the middle two", []float64{10, 2, 4, 100}, 7, 2, 100, 4},
		{"NaN ignored", []float64{nan, 3, 1}, 2, 1, 3, 2},
		{"negative", []float64{-5, 5, -1}, -1, -5, 5, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := SpreadOf(tc.in)
			if s.Median != tc.med || s.Min != tc.min || s.Max != tc.max || s.N != tc.n {
				t.Errorf("SpreadOf(%v) = %+v, want median %v min %v max %v n %d", tc.in, s, tc.med, tc.min, tc.max, tc.n)
			}
		})
	}
	if s := SpreadOf(nil); s.OK() || !math.IsNaN(s.Median) {
		t.Errorf("SpreadOf(nil) = %+v, want no values", s)
	}
}

// variantOf builds a variant whose repeats have the given p50 and p99
// (µs); a NaN p50 makes that repeat a failed cell.
func variantOf(t *testing.T, id string, labels map[string]string, p50, p99 []float64) *Variant {
	t.Helper()
	v := &Variant{ID: id, Labels: labels}
	for i := range p50 {
		c := &Cell{Info: result.Cell{ID: id, Variant: id, Repeat: i + 1, Status: result.StatusDone}}
		if math.IsNaN(p50[i]) {
			c.Info.Status, c.Problem = result.StatusFailed, "boom"
		} else {
			h := hdrhistogram.New(1, 60_000_000, 3)
			if err := h.RecordValue(int64(p50[i])); err != nil {
				t.Fatal(err)
			}
			c.Histogram = h
			c.Result = &result.CellResult{Result: loadgen.Result{Labels: labels,
				Latency: loadgen.Percentiles{P50: int64(p50[i]), P99: int64(p99[i])}}}
		}
		v.Cells = append(v.Cells, c)
	}
	if err := v.summarize(); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestAddedLatencyPairsRepeats(t *testing.T) {
	nan := math.NaN()
	base := variantOf(t, "base", map[string]string{"topology": "baseline"},
		[]float64{100, 200, 300, 400}, []float64{1000, 1000, 1000, 1000})
	// Repeat 3 of the variant failed: it pairs 1, 2 and 4 only. Pairing by
	// repeat (not by sorted value) gives differences 50, 10, 30; pairing
	// medians would give 190 − 250.
	v := variantOf(t, "side", map[string]string{"topology": "sidecar"},
		[]float64{150, 210, nan, 430}, []float64{1500, 1100, nan, 3000})
	d := AddedLatency(v, base, func(r *result.CellResult) float64 { return float64(r.Latency.P50) })
	if got := d.Pairs; len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 4 {
		t.Fatalf("pairs = %v, want [1 2 4]", got)
	}
	if d.Added.Median != 30 || d.Added.Min != 10 || d.Added.Max != 50 || d.Added.N != 3 {
		t.Errorf("added = %+v, want median 30, min 10, max 50 over 3", d.Added)
	}
	if want := 1.5; d.Ratio.Max != want {
		t.Errorf("ratio max = %v, want %v (150/100)", d.Ratio.Max, want)
	}
	if want := 1.05; math.Abs(d.Ratio.Min-want) > 1e-9 {
		t.Errorf("ratio min = %v, want %v (210/200)", d.Ratio.Min, want)
	}
	d99 := AddedLatency(v, base, func(r *result.CellResult) float64 { return float64(r.Latency.P99) })
	if d99.Added.Median != 500 || d99.Added.Min != 100 || d99.Added.Max != 2000 {
		t.Errorf("p99 added = %+v, want median 500, min 100, max 2000", d99.Added)
	}
	// Variant stats ignore the failed repeat.
	if v.Stats.P50.N != 3 || v.Stats.P50.Median != 210 {
		t.Errorf("variant p50 = %+v, want median 210 over 3", v.Stats.P50)
	}
	if got := v.Merged.TotalCount(); got != 3 {
		t.Errorf("merged histogram holds %d values, want 3 (one per done repeat)", got)
	}
}

func TestBaselineFor(t *testing.T) {
	l := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	one := []float64{1}
	run := &Run{Info: result.Run{Dimensions: []string{"topology", "protocol", "payload"}}}
	add := func(id string, labels map[string]string) *Variant {
		v := variantOf(t, id, labels, one, one)
		run.Variants = append(run.Variants, v)
		return v
	}
	bH1 := add("b-h1", l("topology", "baseline", "proxy", "none", "balancer", "none", "protocol", "http1", "payload", "small", "rate", "100"))
	bGRPC := add("b-grpc", l("topology", "baseline", "protocol", "grpc", "payload", "large", "rate", "100"))
	sH1 := add("s-h1", l("topology", "sidecar", "proxy", "meshproxy", "balancer", "p2c", "mtls", "on", "protocol", "http1", "payload", "small", "rate", "100"))
	// payload differs from every baseline: falls back to protocol+rate+degradation.
	sGRPC := add("s-grpc", l("topology", "daemonset", "protocol", "grpc", "payload", "small", "rate", "100"))
	// no baseline at rate 200.
	s200 := add("s-200", l("topology", "sidecar", "protocol", "http1", "payload", "small", "rate", "200"))

	for _, tc := range []struct {
		v     *Variant
		want  *Variant
		match string
	}{
		{sH1, bH1, MatchLabels},
		{sGRPC, bGRPC, MatchLoad},
		{s200, nil, ""},
		{bH1, nil, ""},
	} {
		got, match := BaselineFor(run, tc.v)
		if got != tc.want || match != tc.match {
			gotID := "<nil>"
			if got != nil {
				gotID = got.ID
			}
			t.Errorf("BaselineFor(%s) = %s, %q; want %v, %q", tc.v.ID, gotID, match, tc.want, tc.match)
		}
	}
	cs := Compare(run)
	if len(cs) != 3 {
		t.Fatalf("Compare gave %d comparisons, want 3 (one per non-baseline variant)", len(cs))
	}
	if cs[2].Baseline != nil || cs[2].P50.Added.OK() {
		t.Errorf("comparison without a baseline has values: %+v", cs[2])
	}
}

func TestMergeHistograms(t *testing.T) {
	a, b := hdrhistogram.New(1, 60_000_000, 3), hdrhistogram.New(1, 1_000_000, 2)
	for i := int64(1); i <= 100; i++ {
		_ = a.RecordValue(i * 10)
		_ = b.RecordValue(i * 1000)
	}
	m, err := MergeHistograms([]*hdrhistogram.Histogram{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if m.TotalCount() != 200 {
		t.Errorf("merged count = %d, want 200", m.TotalCount())
	}
	// p50 of the merged data is the top of a's values, not the average of
	// the two p50s (505 and 50000).
	if got := m.ValueAtQuantile(50); got < 990 || got > 1010 {
		t.Errorf("merged p50 = %d, want about 1000", got)
	}
	if m, err := MergeHistograms(nil); m != nil || err != nil {
		t.Errorf("MergeHistograms(nil) = %v, %v", m, err)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{FormatMicros(412), "412 µs"},
		{FormatMicros(85), "85.0 µs"},
		{FormatMicros(0.5), "0.500 µs"},
		{FormatMicros(999.7), "1000 µs"},
		{FormatMicros(1000), "1.00 ms"},
		{FormatMicros(1904), "1.90 ms"},
		{FormatMicros(12345), "12.3 ms"},
		{FormatMicros(1234567), "1230 ms"},
		{FormatMicros(9996), "10.0 ms"},
		{FormatMicros(math.NaN()), "—"},
		{FormatDelta(85), "+85.0 µs"},
		{FormatDelta(-1500), "-1.50 ms"},
		{FormatBytes(12.34 * (1 << 20)), "12.3 MiB"},
		{FormatBytes(512), "512 B"},
		{FormatRatio(1.234), "1.23×"},
		{FormatPercent(1.0 / 3), "33.3%"},
		{FormatMicrosSpread(Spread{Median: 412, Min: 398, Max: 430, N: 3}), "412 µs (398–430)"},
		{FormatMicrosSpread(Spread{Median: 990, Min: 950, Max: 1200, N: 3}), "990 µs (950–1200)"},
		{FormatMicrosSpread(Spread{Median: 1900, Min: 1850, Max: 2100, N: 2}), "1.90 ms (1.85–2.10)"},
		{FormatMicrosSpread(Spread{Median: 5, Min: 5, Max: 5, N: 1}), "5.00 µs"},
		{FormatMicrosSpread(SpreadOf(nil)), "—"},
		{FormatDeltaSpread(Spread{Median: 85, Min: -3, Max: 91, N: 3}), "+85.0 µs (-3.00–+91.0)"},
		{FormatRatioSpread(Spread{Median: 1.234, Min: 1.2341, Max: 1.2339, N: 2}), "1.23×"},
		{FormatBytesSpread(Spread{Median: 50 << 20, Min: 49 << 20, Max: 51 << 20, N: 2}), "50.0 MiB (49.0–51.0)"},
		{FormatCountSpread(Spread{Median: 2.5, Min: 0, Max: 12, N: 2}), "2.5 (0–12)"},
		{FormatNumberSpread(Spread{Median: 999.7, Min: 999.5, Max: 999.9, N: 2}, "req/s"), "1000 req/s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestMTLSCostPairsTwins(t *testing.T) {
	labels := func(topo, mtls string) map[string]string {
		return map[string]string{"topology": topo, "mtls": mtls, "protocol": "http1"}
	}
	sideOff := variantOf(t, "sidecar-off", labels("sidecar", "off"), []float64{1000, 1100}, []float64{2000, 2000})
	sideOn := variantOf(t, "sidecar-on", labels("sidecar", "on"), []float64{1100, 1300}, []float64{2400, 2200})
	dsOff := variantOf(t, "daemonset-off", labels("daemonset", "off"), []float64{900, 900}, []float64{1800, 1800})
	dsOn := variantOf(t, "daemonset-on", labels("daemonset", "on"), []float64{950, 990}, []float64{1900, 1900})
	// An mtls=on variant whose twin is missing is left out.
	lone := variantOf(t, "lone-on", map[string]string{"topology": "sidecar", "mtls": "on", "protocol": "grpc"}, []float64{1}, []float64{1})
	for i, c := range sideOn.Cells {
		c.Result.Resources.Total.CPUMicrosPerRequest = 300
		c.Result.Proxies = []result.ProxyMetrics{{Handshakes: int64(10 + i)}, {Handshakes: 6}}
		sideOff.Cells[i].Result.Resources.Total.CPUMicrosPerRequest = 200
	}
	run := &Run{Variants: []*Variant{sideOff, sideOn, dsOff, dsOn, lone}}
	got := MTLSCost(run)
	if len(got) != 2 || got[0].On != sideOn || got[0].Off != sideOff || got[1].On != dsOn || got[1].Off != dsOff {
		t.Fatalf("pairs: %+v", got)
	}
	if d := got[0].P50.Added; d.Median != 150 || d.Min != 100 || d.Max != 200 {
		t.Errorf("sidecar p50 added %+v, want 150 (100–200)", d)
	}
	if d := got[0].CPUPerRequest; d.Added.Median != 100 || d.Ratio.Median != 1.5 {
		t.Errorf("sidecar CPU/req %+v, want +100 µs, 1.5×", d)
	}
	if h := got[0].Handshakes; h.Median != 16.5 || h.Min != 16 || h.Max != 17 {
		t.Errorf("handshakes %+v, want 16–17", h)
	}
	if d := got[1].P99.Added; d.Median != 100 {
		t.Errorf("daemonset p99 added %+v, want 100", d)
	}
	tables := Tables(run)
	found := false
	for _, tb := range tables {
		if tb.ID == "mtls" {
			found = len(tb.Rows) == 2
		}
	}
	if !found {
		t.Error("no mTLS table with two rows")
	}
}

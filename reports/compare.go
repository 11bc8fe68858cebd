package reports

import (
	"github.com/meshbench/meshbench/reports/result"

	"maps"
	"math"
	"slices"
)

// How a comparison's baseline was found.
const (
	// MatchLabels: every label but topology, proxy, balancer and mtls is
	// the same.
	MatchLabels = "labels"
	// MatchLoad: protocol, rate and degradation (and the mix, for a
	// mixed load) are the same (other labels differ).
	MatchLoad = "protocol+rate+degradation"
)

// Comparison is a variant's latency added over the baseline of the same
// run.
type Comparison struct {
	Variant *Variant
	// Baseline is nil when the run has no baseline for the variant.
	Baseline *Variant
	Match    string // MatchLabels or MatchLoad
	P50, P99 Delta
}

// Delta is a latency difference computed per repeat: the variant's
// repeat r against the baseline's repeat r, which ran next to it (the
// runner interleaves the cells).
type Delta struct {
	// Added is variant minus baseline, in microseconds, over the pairs.
	Added Spread
	// Ratio is variant divided by baseline over the pairs.
	Ratio Spread
	// Pairs lists the repeat numbers that had a valid result on both sides.
	Pairs []int
}

// ignoredForBaseline are the labels in which a variant and its baseline
// may differ: what the proxy adds.
func ignoredForBaseline(k string) bool {
	switch k {
	case LabelTopology, LabelProxy, LabelBalancer, LabelMTLS:
		return true
	}
	return false
}

// knownLabels are the labels the runner sets on every cell.
func knownLabels() []string {
	return []string{LabelTopology, LabelProxy, LabelBalancer, LabelProtocol, LabelDegradation, LabelMTLS, LabelRate}
}

// BaselineFor returns the baseline variant v is compared with and how it
// was matched: first a baseline with the same labels except topology,
// proxy, balancer and mtls (looking at the run's dimensions and the
// labels the runner always sets), else one with the same protocol, rate,
// degradation and mix. It returns nil for a baseline variant or when there is
// none.
func BaselineFor(run *Run, v *Variant) (*Variant, string) {
	if v.IsBaseline() {
		return nil, ""
	}
	keys := append(knownLabels(), run.Info.Dimensions...)
	slices.Sort(keys)
	keys = slices.Compact(keys)
	for _, try := range []struct {
		keys  []string
		match string
	}{
		{keys, MatchLabels},
		{[]string{LabelProtocol, LabelRate, LabelDegradation, LabelMix}, MatchLoad},
	} {
		for _, b := range run.Variants {
			if b.IsBaseline() && sameLabels(b, v, try.keys, ignoredForBaseline) {
				return b, try.match
			}
		}
	}
	return nil, ""
}

// Compare returns the comparison of every variant that is not a baseline,
// in run order.
func Compare(run *Run) []Comparison {
	var out []Comparison
	for _, v := range run.Variants {
		if v.IsBaseline() {
			continue
		}
		c := Comparison{Variant: v}
		c.Baseline, c.Match = BaselineFor(run, v)
		if c.Baseline != nil {
			c.P50 = AddedLatency(v, c.Baseline, func(r *result.CellResult) float64 { return float64(r.Latency.P50) })
			c.P99 = AddedLatency(v, c.Baseline, func(r *result.CellResult) float64 { return float64(r.Latency.P99) })
		}
		out = append(out, c)
	}
	return out
}

// AddedLatency pairs the repeats of v and base by repeat number and
// returns metric(v) − metric(base) and metric(v) / metric(base) over the
// pairs where both have a valid result and metric has a value (a NaN
// metric, such as a stream the cell did not run, leaves the pair out).
func AddedLatency(v, base *Variant, metric func(*result.CellResult) float64) Delta {
	byRepeat := map[int]*Cell{}
	for _, c := range base.Done() {
		byRepeat[c.Info.Repeat] = c
	}
	var d Delta
	var added, ratio []float64
	for _, c := range v.Done() {
		b := byRepeat[c.Info.Repeat]
		if b == nil {
			continue
		}
		x, y := metric(c.Result), metric(b.Result)
		if math.IsNaN(x) || math.IsNaN(y) {
			continue
		}
		added = append(added, x-y)
		r := math.NaN()
		if y > 0 {
			r = x / y
		}
		ratio = append(ratio, r)
		d.Pairs = append(d.Pairs, c.Info.Repeat)
	}
	d.Added, d.Ratio = SpreadOf(added), SpreadOf(ratio)
	return d
}

// MTLSComparison is what turning mTLS on cost a variant: the variant with
// mtls=on against the variant with the same labels and mtls=off, paired by
// repeat.
type MTLSComparison struct {
	On, Off *Variant
	P50     Delta
	P99     Delta
	// CPUPerRequest compares the topology totals of CPU µs per request.
	CPUPerRequest Delta
	// Handshakes is the TLS handshakes the topology's proxies completed,
	// over the repeats of the mtls=on variant.
	Handshakes Spread
}

// MTLSCost pairs every mtls=on variant with its mtls=off twin of the same
// run, in run order. A variant without a twin is left out.
func MTLSCost(run *Run) []MTLSComparison {
	var out []MTLSComparison
	for _, on := range run.Variants {
		if on.Label(LabelMTLS) != "on" {
			continue
		}
		off := twin(run, on, LabelMTLS, "off")
		if off == nil {
			continue
		}
		c := MTLSComparison{On: on, Off: off,
			P50:           AddedLatency(on, off, func(r *result.CellResult) float64 { return float64(r.Latency.P50) }),
			P99:           AddedLatency(on, off, func(r *result.CellResult) float64 { return float64(r.Latency.P99) }),
			CPUPerRequest: AddedLatency(on, off, func(r *result.CellResult) float64 { return r.Resources.Total.CPUMicrosPerRequest }),
		}
		var hs []float64
		for _, cell := range on.Done() {
			var n int64
			for _, p := range cell.Result.Proxies {
				n += p.Handshakes
			}
			hs = append(hs, float64(n))
		}
		c.Handshakes = SpreadOf(hs)
		out = append(out, c)
	}
	return out
}

// twin returns the variant whose labels equal v's except label k, which
// is value; nil when the run has none.
func twin(run *Run, v *Variant, k, value string) *Variant {
	keys := slices.Collect(maps.Keys(v.Labels))
	for _, w := range run.Variants {
		if w != v && w.Label(k) == value && len(w.Labels) == len(v.Labels) &&
			sameLabels(w, v, keys, func(l string) bool { return l == k }) {
			return w
		}
	}
	return nil
}

// sameLabels reports whether a and b agree on every key that skip does
// not exclude.
func sameLabels(a, b *Variant, keys []string, skip func(string) bool) bool {
	for _, k := range keys {
		if !skip(k) && a.Label(k) != b.Label(k) {
			return false
		}
	}
	return true
}

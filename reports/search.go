package reports

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports/plots"
)

// objectiveText describes a search's objective as loadgen does, e.g.
// "p99 ≤ 10ms, errors ≤ 0.1%".
func objectiveText(o loadgen.ObjectiveJSON) string {
	us := func(x int64) time.Duration { return time.Duration(x) * time.Microsecond }
	return loadgen.Objective{P50: us(o.P50us), P90: us(o.P90us), P99: us(o.P99us), P999: us(o.P999us), Errors: o.Errors}.String()
}

// searchStats is a variant's rate search over its valid repeats.
type searchStats struct {
	variant *Variant
	// objectives are the distinct objectives of the repeats, as text.
	objectives []string
	// maxRate and achieved are the rate found and its probe's achieved
	// rate, per repeat.
	maxRate, achieved Spread
	// capped counts the repeats whose probe at the search's max met the
	// objective; n is the repeats with a search.
	capped, n int
	// limit is why the rate above the one found failed, in the first
	// repeat; for a variant without a valid repeat, why its cells are
	// invalid.
	limit string
	// invalid is set when every repeat with a search is invalid.
	invalid bool
}

// searches returns the rate search of every variant whose cells searched
// for their highest rate, in run order.
func searches(run *Run) []searchStats {
	var out []searchStats
	for _, v := range run.Variants {
		s := searchStats{variant: v}
		var rates, achieved []float64
		for _, c := range v.Done() {
			sr := c.Result.Search
			if sr == nil {
				continue
			}
			if o := objectiveText(sr.Objective); !slices.Contains(s.objectives, o) {
				s.objectives = append(s.objectives, o)
			}
			rates, achieved = append(rates, sr.MaxRate), append(achieved, sr.MaxAchievedRate)
			if sr.Capped {
				s.capped++
			}
			if s.n == 0 {
				s.limit = sr.Limit
			}
			s.n++
		}
		if s.n == 0 {
			// Every repeat that searched is invalid (the generator, not
			// the target, stopped the search), or none searched.
			for _, c := range v.Cells {
				if c.OK() && !c.Valid() && c.Result.Search != nil {
					s.invalid = true
					s.limit = cmp.Or(s.limit, c.Result.Invalid)
					if o := objectiveText(c.Result.Search.Objective); !slices.Contains(s.objectives, o) {
						s.objectives = append(s.objectives, o)
					}
				}
			}
			if !s.invalid {
				continue
			}
		}
		s.maxRate, s.achieved = SpreadOf(rates), SpreadOf(achieved)
		out = append(out, s)
	}
	return out
}

// searchTable shows the highest rate each variant sustained within its
// objective, median over the repeats.
func searchTable(run *Run) Table {
	t := Table{
		ID: "maxrate", Title: "Max sustainable rate at SLO",
		Header: []string{"variant", "proxy", "topology", "objective", "n", "max rate", "achieved rate", "capped", "limit"},
		Notes: []string{
			"Max rate: the highest requested rate whose probe met the objective (and was a valid run), median (min–max) over the repeats (n); achieved rate: that probe's. 0 req/s: no rate met it. ≥: every repeat met the objective at the search's max, so the real maximum is higher.",
			"Limit: why the next rate failed, in the first repeat. The other tables show these variants' figures at the rate each one found, so their latencies are at different loads.",
		},
	}
	for _, s := range searches(run) {
		v := s.variant
		rate, achieved, capped := FormatNumberSpread(s.maxRate, "req/s"), FormatNumberSpread(s.achieved, "req/s"), "no"
		switch {
		case s.invalid:
			rate, achieved, capped = "invalid", "invalid", none
		case s.capped == s.n:
			rate, capped = "≥ "+rate, "yes (≥ max)"
		case s.capped > 0:
			capped = fmt.Sprintf("%d of %d repeats", s.capped, s.n)
		}
		t.Rows = append(t.Rows, []string{
			v.ID, cmp.Or(v.Label(LabelProxy), none), cmp.Or(v.Label(LabelTopology), none),
			cmp.Or(strings.Join(s.objectives, "; "), none), strconv.Itoa(s.n),
			rate, achieved, capped, cmp.Or(s.limit, none),
		})
	}
	return t
}

// searchProbes returns the probes of the variant's valid repeats that
// were themselves valid runs, by achieved rate.
func searchProbes(v *Variant) []loadgen.Probe {
	var out []loadgen.Probe
	for _, c := range v.Done() {
		if c.Result.Search == nil {
			continue
		}
		for _, p := range c.Result.Search.Probes {
			if p.Invalid == "" && p.Requests > 0 {
				out = append(out, p)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b loadgen.Probe) int { return cmpFloat(a.AchievedRate, b.AchievedRate) })
	return out
}

// objectiveLevels returns the latency bounds of the runs' objectives, in
// milliseconds, with their labels ("objective p99 ≤ 10ms").
func objectiveLevels(run *Run) map[string]float64 {
	out := map[string]float64{}
	for _, v := range run.Variants {
		for _, c := range v.Done() {
			if c.Result.Search == nil {
				continue
			}
			o := c.Result.Search.Objective
			for _, b := range []struct {
				name string
				us   int64
			}{{"p50", o.P50us}, {"p90", o.P90us}, {"p99", o.P99us}, {"p99.9", o.P999us}} {
				if b.us > 0 {
					out[fmt.Sprintf("objective %s ≤ %v", b.name, time.Duration(b.us)*time.Microsecond)] = float64(b.us) / 1000
				}
			}
		}
	}
	return out
}

// probePoint is the probes of a variant's repeats at one requested rate:
// their achieved rate, p50 and p99 (µs) over the repeats.
type probePoint struct {
	rate               float64
	achieved, p50, p99 Spread
}

// probePoints groups the variant's valid probes (searchProbes) by
// requested rate, by achieved rate: the repeats' searches probe the same
// rates while they double, and different ones while they bisect.
func probePoints(v *Variant) []probePoint {
	type vals struct{ achieved, p50, p99 []float64 }
	by := map[float64]*vals{}
	var rates []float64
	for _, p := range searchProbes(v) {
		x := by[p.Rate]
		if x == nil {
			x = &vals{}
			by[p.Rate] = x
			rates = append(rates, p.Rate)
		}
		pos := func(us int64) float64 {
			if us > 0 {
				return float64(us)
			}
			return math.NaN()
		}
		x.achieved, x.p50, x.p99 = append(x.achieved, p.AchievedRate), append(x.p50, pos(p.Latency.P50)), append(x.p99, pos(p.Latency.P99))
	}
	var out []probePoint
	for _, r := range rates {
		x := by[r]
		out = append(out, probePoint{rate: r, achieved: SpreadOf(x.achieved), p50: SpreadOf(x.p50), p99: SpreadOf(x.p99)})
	}
	slices.SortStableFunc(out, func(a, b probePoint) int { return cmpFloat(a.achieved.Median, b.achieved.Median) })
	return out
}

// searchChart draws the probes of the rate searches: p50 and p99 against
// the achieved rate, one colour per variant (the repeats' probes at the
// same rate as one point: median with min–max bars), the objective's
// latency bounds as horizontal lines, on a logarithmic latency axis
// (beyond the maximum, queueing makes latency grow by orders of
// magnitude).
func searchChart(run *Run) (*plots.Chart, error) {
	c := plots.NewChart("Latency against achieved rate in the rate searches: p99 solid, p50 dashed, objective dotted")
	var lines []plots.Line
	lo := math.Inf(1)
	style := 0
	for _, v := range run.Variants {
		points := probePoints(v)
		if len(points) == 0 {
			continue
		}
		p50 := plots.Line{Label: v.ID + " p50", Style: style, Dashed: true, Points: true}
		p99 := plots.Line{Label: v.ID + " p99", Style: style, Points: true}
		for _, pt := range points {
			p50.X, p50.Y = append(p50.X, pt.achieved.Median), append(p50.Y, estimate(pt.p50, 1000))
			p99.X, p99.Y = append(p99.X, pt.achieved.Median), append(p99.Y, estimate(pt.p99, 1000))
			for _, s := range []Spread{pt.p50, pt.p99} {
				if s.OK() {
					lo = math.Min(lo, s.Min/1000)
				}
			}
		}
		lines = append(lines, p99, p50)
		c.AddLine(v.ID, style, false, true)
		style++
	}
	if len(lines) == 0 {
		return nil, plots.ErrNoData
	}
	p, err := plots.LinePanel("achieved rate (req/s)", "latency (ms, log scale)", lines)
	if err != nil {
		return nil, err
	}
	levels := objectiveLevels(run)
	for _, label := range slices.Sorted(maps.Keys(levels)) {
		plots.AddLevel(p, levels[label], label)
		lo = math.Min(lo, levels[label])
	}
	plots.LogY(p, lo)
	p.X.Min = 0
	c.Panels = append(c.Panels, p)
	return c, nil
}

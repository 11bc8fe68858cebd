package reports

import (
	"github.com/meshbench/meshbench/reports/result"

	"errors"
	"math"
	"slices"
	"strconv"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports/plots"
)

// streamStats is one stream of a mixed load (a cell's Mix) over the valid
// repeats of a variant.
type streamStats struct {
	name, protocol                        string
	requested, achieved, p50, p99, errors Spread
}

// streamName names the i-th stream of a mix: its Stream, or its position
// when the generator gave it no name.
func streamName(m *loadgen.Result, i int) string {
	if m.Stream != "" {
		return m.Stream
	}
	return "stream " + strconv.Itoa(i+1)
}

// streamOf returns the stream called name of r's mix, or nil.
func streamOf(r *result.CellResult, name string) *loadgen.Result {
	for i := range r.Mix {
		if streamName(&r.Mix[i], i) == name {
			return &r.Mix[i]
		}
	}
	return nil
}

// streamLatency returns a latency of a stream in microseconds, NaN when
// the stream completed no request (a share of 0).
func streamLatency(m *loadgen.Result, pick func(loadgen.Percentiles) int64) float64 {
	if m.Requests == 0 && m.Latency.Count == 0 {
		return math.NaN()
	}
	return float64(pick(m.Latency))
}

func pickP50(p loadgen.Percentiles) int64 { return p.P50 }
func pickP99(p loadgen.Percentiles) int64 { return p.P99 }

// streamMetric is AddedLatency's metric for one stream of a mix: NaN for a
// cell without that stream, so that its repeat is not paired.
func streamMetric(name string, pick func(loadgen.Percentiles) int64) func(*result.CellResult) float64 {
	return func(r *result.CellResult) float64 {
		m := streamOf(r, name)
		if m == nil {
			return math.NaN()
		}
		return streamLatency(m, pick)
	}
}

// variantStreams returns the streams of the variant's valid repeats, in
// the order the generator listed them; none when its load was not a mix.
func variantStreams(v *Variant) []streamStats {
	var out []streamStats
	for _, c := range v.Done() {
		for i := range c.Result.Mix {
			m := &c.Result.Mix[i]
			n := streamName(m, i)
			if !slices.ContainsFunc(out, func(s streamStats) bool { return s.name == n }) {
				out = append(out, streamStats{name: n, protocol: m.Protocol})
			}
		}
	}
	for i := range out {
		s := &out[i]
		var req, ach, p50, p99, errs []float64
		for _, c := range v.Done() {
			m := streamOf(c.Result, s.name)
			if m == nil {
				continue
			}
			req, ach = append(req, m.RequestedRate), append(ach, m.AchievedRate)
			p50, p99 = append(p50, streamLatency(m, pickP50)), append(p99, streamLatency(m, pickP99))
			errs = append(errs, float64(m.Errors.Total))
		}
		s.requested, s.achieved, s.p50, s.p99, s.errors = SpreadOf(req), SpreadOf(ach), SpreadOf(p50), SpreadOf(p99), SpreadOf(errs)
	}
	return out
}

// streamsTable shows each stream of a mixed load on its own: one row per
// variant and stream, with the latency it adds over the same stream of the
// variant's baseline, paired by repeat as the added-latency table does.
func streamsTable(run *Run) Table {
	t := Table{
		ID: "streams", Title: "Streams",
		Header: []string{"variant", "stream", "protocol", "n", "requested rate", "achieved rate", "p50", "p99", "errors", "p50 added", "p99 added"},
		Notes: []string{
			"Each stream of a mixed load, which ran at the same time as the other streams through the same proxies: median (min–max) over the repeats (n) that had the stream. The summary's figures for these variants merge the streams.",
			"Added: per repeat, the stream's p50 (p99) minus that of the stream of the same name in the same repeat of the variant's baseline (the one the added-latency table names); median (min–max) over the pairs. — when the baseline has no such stream.",
		},
	}
	for _, v := range run.Variants {
		streams := variantStreams(v)
		if len(streams) == 0 {
			continue
		}
		base, _ := BaselineFor(run, v)
		var baseStreams []streamStats
		if base != nil {
			baseStreams = variantStreams(base)
		}
		for _, s := range streams {
			p50, p99 := none, none
			switch {
			case v.IsBaseline():
				p50, p99 = "baseline", "baseline"
			case slices.ContainsFunc(baseStreams, func(b streamStats) bool { return b.name == s.name }):
				p50 = FormatDeltaSpread(AddedLatency(v, base, streamMetric(s.name, pickP50)).Added)
				p99 = FormatDeltaSpread(AddedLatency(v, base, streamMetric(s.name, pickP99)).Added)
			}
			proto := s.protocol
			if proto == "" {
				proto = none
			}
			t.Rows = append(t.Rows, []string{
				v.ID, s.name, proto, strconv.Itoa(s.requested.N),
				FormatNumberSpread(s.requested, "req/s"), FormatNumberSpread(s.achieved, "req/s"),
				FormatMicrosSpread(s.p50), FormatMicrosSpread(s.p99), FormatCountSpread(s.errors), p50, p99,
			})
		}
	}
	return t
}

// streamsChart draws the streams of the mixed loads: a category per
// variant, a series per stream, p50 in the top panel and p99 below, medians
// with min–max bars over the repeats.
func streamsChart(run *Run) (*plots.Chart, error) {
	var cats, names []string
	var all [][]streamStats
	for _, v := range run.Variants {
		ss := variantStreams(v)
		if len(ss) == 0 {
			continue
		}
		cats, all = append(cats, v.ID), append(all, ss)
		for _, s := range ss {
			if !slices.Contains(names, s.name) {
				names = append(names, s.name)
			}
		}
	}
	if len(cats) == 0 {
		return nil, plots.ErrNoData
	}
	series := func(get func(streamStats) Spread) []plots.Series {
		out := make([]plots.Series, len(names))
		for j, n := range names {
			out[j].Label = n
			for _, ss := range all {
				var vals []plots.Estimate
				for _, s := range ss {
					if s.name == n {
						vals = []plots.Estimate{estimate(get(s), 1000)}
					}
				}
				out[j].Values = append(out[j].Values, vals)
			}
		}
		return out
	}
	c, err := plots.Categories("Latency per stream of the mixed load: median over repeats, bars from min to max",
		"p50 (ms, log scale)", cats, series(func(s streamStats) Spread { return s.p50 }), true)
	if err != nil {
		return nil, err
	}
	c99, err := plots.Categories("", "p99 (ms, log scale)", cats, series(func(s streamStats) Spread { return s.p99 }), true)
	switch {
	case errors.Is(err, plots.ErrNoData):
		return c, nil
	case err != nil:
		return nil, err
	}
	c.Panels = append(c.Panels, c99.Panels...)
	c.Height = 2 * plots.DefaultHeight * 4 / 5
	return c, nil
}

package reports

import (
	"github.com/meshbench/meshbench/reports/result"

	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"github.com/meshbench/meshbench/reports/plots"
)

// Kinds of figure.
const (
	FigSpectrum    = "spectrum"
	FigPercentiles = "percentiles"
	FigRate        = "rate"
	FigCPU         = "cpu"
	FigRSS         = "rss"
	FigEndpoints   = "endpoints"
	FigTimeseries  = "timeseries"
	FigProxies     = "proxies"
	FigSearch      = "search"
	FigStreams     = "streams"
)

// Figure is one rendered plot of the report.
type Figure struct {
	Name  string // file name without extension: plots/<Name>.png and .svg
	Kind  string // one of the Fig* kinds
	Title string
	PNG   []byte
	SVG   []byte
}

// Figures draws every plot the run has data for, in the order the report
// shows them. A plot without data is left out, never drawn empty.
func Figures(run *Run) ([]Figure, error) {
	var out []Figure
	names := map[string]int{}
	add := func(kind, name string, c *plots.Chart, err error) error {
		if errors.Is(err, plots.ErrNoData) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("plotting %s: %w", name, err)
		}
		png, svg, err := c.Render()
		if err != nil {
			return fmt.Errorf("plotting %s: %w", name, err)
		}
		names[name]++
		if n := names[name]; n > 1 {
			name += "-" + strconv.Itoa(n)
		}
		out = append(out, Figure{Name: name, Kind: kind, Title: c.Title, PNG: png, SVG: svg})
		return nil
	}
	for _, g := range spectrumGroups(run) {
		c, err := spectrumChart(g)
		if err := add(FigSpectrum, g.name, c, err); err != nil {
			return nil, err
		}
	}
	c, err := percentilesChart(run)
	if err := add(FigPercentiles, "percentiles", c, err); err != nil {
		return nil, err
	}
	c, err = rateChart(run)
	if err := add(FigRate, "latency-vs-rate", c, err); err != nil {
		return nil, err
	}
	c, err = searchChart(run)
	if err := add(FigSearch, "latency-vs-achieved-rate", c, err); err != nil {
		return nil, err
	}
	c, err = streamsChart(run)
	if err := add(FigStreams, "streams", c, err); err != nil {
		return nil, err
	}
	c, err = resourceChart(run, FigCPU)
	if err := add(FigCPU, "cpu", c, err); err != nil {
		return nil, err
	}
	c, err = resourceChart(run, FigRSS)
	if err := add(FigRSS, "rss", c, err); err != nil {
		return nil, err
	}
	c, err = endpointsChart(run)
	if err := add(FigEndpoints, "endpoints", c, err); err != nil {
		return nil, err
	}
	cmps := proxyComparisons(run)
	for _, m := range []string{"p50", "p99", "cpu", "rss"} {
		c, err = proxyChart(run, cmps, m)
		if err := add(FigProxies, "proxies-"+m, c, err); err != nil {
			return nil, err
		}
	}
	for _, g := range timeseriesGroups(run) {
		c, err := timeseriesChart(g)
		if err := add(FigTimeseries, g.name, c, err); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// variantGroup is a set of variants drawn together.
type variantGroup struct {
	name, title string
	variants    []*Variant
	repeat      int // timeseries: the repeat shown
}

// groupBy splits the variants accepted by keep by their values of keys,
// in run order.
func groupBy(run *Run, keys []string, keep func(*Variant) bool) []variantGroup {
	var groups []variantGroup
	idx := map[string]int{}
	for _, v := range run.Variants {
		if !keep(v) {
			continue
		}
		var vals, title []string
		for _, k := range keys {
			if x := v.Label(k); x != "" {
				vals = append(vals, x)
				title = append(title, k+"="+x)
			}
		}
		key := strings.Join(title, " ")
		i, ok := idx[key]
		if !ok {
			i = len(groups)
			idx[key] = i
			groups = append(groups, variantGroup{name: slug(vals), title: strings.Join(title, ", ")})
		}
		groups[i].variants = append(groups[i].variants, v)
	}
	return groups
}

// slug makes a file-name part of label values.
func slug(vals []string) string {
	var b strings.Builder
	for _, v := range vals {
		if b.Len() > 0 {
			b.WriteByte('-')
		}
		for _, r := range strings.ToLower(v) {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_':
				b.WriteRune(r)
			default:
				b.WriteByte('-')
			}
		}
	}
	return b.String()
}

func spectrumGroups(run *Run) []variantGroup {
	gs := groupBy(run, []string{LabelProtocol, LabelDegradation, LabelRate, LabelMix}, func(v *Variant) bool { return v.Merged != nil })
	for i := range gs {
		if len(gs) == 1 {
			gs[i].name, gs[i].title = "spectrum", ""
		} else {
			gs[i].name = "spectrum-" + gs[i].name
		}
	}
	return gs
}

func spectrumChart(g variantGroup) (*plots.Chart, error) {
	var curves []plots.Curve
	for _, v := range g.variants {
		cv := plots.Curve{Label: v.ID}
		for _, b := range v.Merged.CumulativeDistributionWithTicks(5) {
			cv.Percentiles = append(cv.Percentiles, b.Quantile)
			cv.Values = append(cv.Values, float64(b.ValueAt)/1000)
		}
		curves = append(curves, cv)
	}
	title := "Latency by percentile (repeats merged)"
	if g.title != "" {
		title += ": " + g.title
	}
	return plots.Spectrum(title, "latency (ms)", curves)
}

// estimate converts a spread to a plot estimate, dividing by div.
func estimate(s Spread, div float64) plots.Estimate {
	if !s.OK() {
		return plots.Estimate{Mid: math.NaN(), Lo: math.NaN(), Hi: math.NaN()}
	}
	return plots.Estimate{Mid: s.Median / div, Lo: s.Min / div, Hi: s.Max / div}
}

func percentilesChart(run *Run) (*plots.Chart, error) {
	var cats []string
	series := []plots.Series{{Label: "p50"}, {Label: "p99"}, {Label: "p99.9"}}
	for _, v := range run.Variants {
		if !v.Stats.P50.OK() {
			continue
		}
		cats = append(cats, v.ID)
		for i, s := range []Spread{v.Stats.P50, v.Stats.P99, v.Stats.P999} {
			series[i].Values = append(series[i].Values, []plots.Estimate{estimate(s, 1000)})
		}
	}
	return plots.Categories("Latency percentiles: median over repeats, bars from min to max", "latency (ms, log scale)", cats, series, true)
}

// rateOf returns the variant's rate: its rate label, else the requested
// rate of its results.
func rateOf(v *Variant) float64 {
	// Labels carry the number; IDs spell it r<rate>: accept both.
	if x, err := strconv.ParseFloat(strings.TrimPrefix(v.Label(LabelRate), "r"), 64); err == nil {
		return x
	}
	for _, c := range v.Done() {
		if c.Result.RequestedRate > 0 {
			return c.Result.RequestedRate
		}
	}
	return math.NaN()
}

func rateChart(run *Run) (*plots.Chart, error) {
	if !slices.Contains(run.Info.Dimensions, LabelRate) {
		return nil, plots.ErrNoData
	}
	var others []string
	for _, d := range run.Info.Dimensions {
		if d != LabelRate {
			others = append(others, d)
		}
	}
	gs := groupBy(run, others, func(v *Variant) bool { return v.Stats.P50.OK() && !math.IsNaN(rateOf(v)) })
	var lines []plots.Line
	c := plots.NewChart("Latency against request rate: p99 solid, p50 dashed")
	for i, g := range gs {
		vs := slices.Clone(g.variants)
		slices.SortStableFunc(vs, func(a, b *Variant) int { return cmpFloat(rateOf(a), rateOf(b)) })
		p50 := plots.Line{Label: g.title + " p50", Style: i, Dashed: true, Points: true}
		p99 := plots.Line{Label: g.title + " p99", Style: i, Points: true}
		for _, v := range vs {
			x := rateOf(v)
			p50.X, p50.Y = append(p50.X, x), append(p50.Y, estimate(v.Stats.P50, 1000))
			p99.X, p99.Y = append(p99.X, x), append(p99.Y, estimate(v.Stats.P99, 1000))
		}
		if len(vs) < 2 {
			continue
		}
		lines = append(lines, p99, p50)
		label := strings.Join(strings.Fields(strings.ReplaceAll(g.title, ",", "")), " ")
		if label == "" {
			label = "all"
		}
		c.AddLine(label, i, false, true)
	}
	p, err := plots.LinePanel("requested rate (req/s)", "latency (ms)", lines)
	if err != nil {
		return nil, err
	}
	c.Panels = append(c.Panels, p)
	return c, nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func resourceChart(run *Run, kind string) (*plots.Chart, error) {
	var cats []string
	total := plots.Series{Label: "topology total", Bar: true}
	per := plots.Series{Label: "each proxy instance"}
	for _, v := range run.Variants {
		if v.Stats.Proxies == 0 {
			continue
		}
		cats = append(cats, fmt.Sprintf("%s (%d)", v.ID, v.Stats.Proxies))
		var ests []plots.Estimate
		switch kind {
		case FigCPU:
			total.Values = append(total.Values, []plots.Estimate{estimate(v.Stats.CPUPerRequest, 1)})
			for _, p := range v.Stats.PerProxy {
				ests = append(ests, estimate(p.CPUPerRequest, 1))
			}
		default:
			total.Values = append(total.Values, []plots.Estimate{estimate(v.Stats.RSSPeak, 1<<20)})
			for _, p := range v.Stats.PerProxy {
				ests = append(ests, estimate(p.RSSPeak, 1<<20))
			}
		}
		per.Values = append(per.Values, ests)
	}
	if kind == FigCPU {
		return plots.Categories("Proxy CPU per request: topology total and each instance (instances in brackets)",
			"CPU µs per request", cats, []plots.Series{total, per}, false)
	}
	return plots.Categories("Proxy peak RSS: topology total and each instance (instances in brackets)",
		"peak RSS (MiB)", cats, []plots.Series{total, per}, false)
}

// endpointCounts sums the responses by endpoint over the variant's
// repeats.
func endpointCounts(v *Variant) map[string]int64 {
	m := map[string]int64{}
	for _, c := range v.Done() {
		for k, n := range c.Result.Endpoints {
			m[k] += n
		}
	}
	return m
}

func endpointsChart(run *Run) (*plots.Chart, error) {
	var cats []string
	var counts []map[string]int64
	names := map[string]bool{}
	for _, v := range run.Variants {
		m := endpointCounts(v)
		if len(m) < 2 {
			continue
		}
		cats = append(cats, v.ID)
		counts = append(counts, m)
		for k := range m {
			names[k] = true
		}
	}
	var parts []plots.Part
	for _, name := range slices.Sorted(maps.Keys(names)) {
		p := plots.Part{Label: name}
		for _, m := range counts {
			var sum int64
			for _, n := range m {
				sum += n
			}
			p.Values = append(p.Values, 100*float64(m[name])/float64(sum))
		}
		parts = append(parts, p)
	}
	return plots.Stacked("Share of responses by endpoint (repeats summed)", "share of responses (%)", cats, parts)
}

// midRunEvents returns the events of c that happened after the measured
// part began; none for a cell without a valid result.
func midRunEvents(c *Cell) []result.Event {
	var out []result.Event
	if c.Valid() {
		for _, e := range c.Result.Events {
			if e.AtMs > 0 {
				out = append(out, e)
			}
		}
	}
	return out
}

func timeseriesGroups(run *Run) []variantGroup {
	var keys []string
	for _, d := range run.Info.Dimensions {
		if d != LabelBalancer {
			keys = append(keys, d)
		}
	}
	hasEvents := func(v *Variant) bool {
		for _, c := range v.Cells {
			if len(midRunEvents(c)) > 0 && len(c.Result.Timeseries) > 0 {
				return true
			}
		}
		return false
	}
	var out []variantGroup
	for _, g := range groupBy(run, keys, hasEvents) {
		repeats := map[int]bool{}
		for _, v := range g.variants {
			for _, c := range v.Cells {
				if len(midRunEvents(c)) > 0 {
					repeats[c.Info.Repeat] = true
				}
			}
		}
		for _, r := range slices.Sorted(maps.Keys(repeats)) {
			ng := g
			ng.repeat = r
			ng.name = "timeseries"
			if g.name != "" {
				ng.name += "-" + g.name
			}
			ng.name += "-r" + strconv.Itoa(r)
			out = append(out, ng)
		}
	}
	return out
}

func timeseriesChart(g variantGroup) (*plots.Chart, error) {
	title := "Per second around mid-run events, repeat " + strconv.Itoa(g.repeat)
	if g.title != "" {
		title += ": " + g.title
	}
	c := plots.NewChart(title)
	var p99s, rates []plots.Line
	marks := map[int64]string{}
	for i, v := range g.variants {
		var cell *Cell
		for _, x := range v.Cells {
			if x.Info.Repeat == g.repeat && x.Valid() {
				cell = x
			}
		}
		if cell == nil || len(cell.Result.Timeseries) == 0 {
			continue
		}
		label := v.Label(LabelBalancer)
		if label == "" {
			label = v.ID
		}
		p99 := plots.Line{Label: label, Style: i}
		rate := plots.Line{Label: label, Style: i}
		for _, s := range cell.Result.Timeseries {
			// A second's values describe [t, t+1): draw them at its middle.
			x := float64(s.T) + 0.5
			p99.X, p99.Y = append(p99.X, x), append(p99.Y, plots.Value(float64(s.P99)/1000))
			rate.X, rate.Y = append(rate.X, x), append(rate.Y, plots.Value(s.Rate))
		}
		p99s, rates = append(p99s, p99), append(rates, rate)
		c.AddLine(label, i, false, false)
		for _, e := range midRunEvents(cell) {
			desc := e.Pod
			if e.Latency != "" {
				desc += " latency " + e.Latency
			}
			if e.Concurrency > 0 {
				desc += fmt.Sprintf(" concurrency %d", e.Concurrency)
			}
			if e.ErrorRate > 0 {
				desc += fmt.Sprintf(" errors %g", e.ErrorRate)
			}
			marks[e.AtMs] = desc
		}
	}
	top, err := plots.LinePanel("", "p99 (ms)", p99s)
	if err != nil {
		return nil, err
	}
	bottom, err := plots.LinePanel("seconds into the measured part", "rate (req/s)", rates)
	if err != nil {
		return nil, err
	}
	for _, p := range []*plot.Plot{top, bottom} {
		// Whole seconds: the window starts at 0 and each point sits in the
		// middle of its second.
		p.X.Min, p.X.Max = 0, math.Ceil(p.X.Max)
	}
	for _, at := range slices.Sorted(maps.Keys(marks)) {
		plots.AddMarker(top, float64(at)/1000, marks[at])
		plots.AddMarker(bottom, float64(at)/1000, "")
	}
	c.Panels = []*plot.Plot{top, bottom}
	c.Height = 6 * vg.Inch
	return c, nil
}

// proxyChart draws one measure of the proxy comparison (cmps, from
// proxyComparisons): a category per
// topology and set of other labels, a series per proxy (added p50 or p99
// against the baseline, or CPU per request or peak RSS of the topology),
// median with min–max over the repeats. It has no data unless the run
// compares two proxies or more.
func proxyChart(run *Run, cmps []Comparison, measure string) (*plots.Chart, error) {
	if len(cmps) == 0 {
		return nil, plots.ErrNoData
	}
	var proxies, cats []string
	vals := map[string]map[string]plots.Estimate{} // category -> proxy -> value
	vs := make([]*Variant, len(cmps))
	for i, c := range cmps {
		vs[i] = c.Variant
	}
	for _, c := range cmps {
		v := c.Variant
		p := v.Label(LabelProxy)
		// A category names the labels that vary among the compared
		// variants, the proxy aside.
		var parts []string
		for _, k := range run.Info.Dimensions {
			if k != LabelProxy && len(dimensionValues(vs, k)) > 1 {
				parts = append(parts, v.Label(k))
			}
		}
		cat := strings.Join(parts, " ")
		if vals[cat] == nil {
			vals[cat] = map[string]plots.Estimate{}
			cats = append(cats, cat)
		}
		if !slices.Contains(proxies, p) {
			proxies = append(proxies, p)
		}
		switch measure {
		case "p50":
			vals[cat][p] = estimate(c.P50.Added, 1000)
		case "p99":
			vals[cat][p] = estimate(c.P99.Added, 1000)
		case "cpu":
			vals[cat][p] = estimate(v.Stats.CPUPerRequest, 1)
		case "rss":
			vals[cat][p] = estimate(v.Stats.RSSPeak, 1<<20)
		}
	}
	series := make([]plots.Series, len(proxies))
	for j, p := range proxies {
		series[j] = plots.Series{Label: p, Bar: true}
		for _, cat := range cats {
			if e, ok := vals[cat][p]; ok {
				series[j].Values = append(series[j].Values, []plots.Estimate{e})
			} else {
				series[j].Values = append(series[j].Values, nil)
			}
		}
	}
	labels := map[string]struct{ title, y string }{
		"p50": {"Added p50 latency vs baseline, by proxy", "added p50 (ms)"},
		"p99": {"Added p99 latency vs baseline, by proxy", "added p99 (ms)"},
		"cpu": {"Proxy CPU per request (topology total), by proxy", "CPU µs per request"},
		"rss": {"Proxy peak RSS (topology total), by proxy", "peak RSS (MiB)"},
	}[measure]
	return plots.Categories(labels.title, labels.y, cats, series, false)
}

// dimensionValues returns the values a dimension takes among variants.
func dimensionValues(vs []*Variant, dim string) []string {
	var out []string
	for _, v := range vs {
		if x := v.Label(dim); !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

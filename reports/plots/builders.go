package plots

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// ErrNoData is returned by a builder that was given nothing to draw.
var ErrNoData = errors.New("no data to plot")

// Curve is one latency distribution: values at ascending percentiles.
type Curve struct {
	Label       string
	Percentiles []float64 // 0–100
	Values      []float64 // at each percentile
}

// Spectrum plots each curve against its percentile on a logarithmic axis
// of 1/(1−p), labelled 0%, 90%, 99%, 99.9%, …, as HdrHistogram's
// percentile-distribution plotter does: the tail gets as much room as the
// body. The 100% point (infinitely far right) is left out.
func Spectrum(title, yLabel string, curves []Curve) (*Chart, error) {
	p := NewPanel("percentile", yLabel)
	c := NewChart(title, p)
	maxX := 10.0
	n := 0
	for i, cv := range curves {
		var xys plotter.XYs
		for k, q := range cv.Percentiles {
			if q >= 100 || q < 0 || k >= len(cv.Values) || math.IsNaN(cv.Values[k]) {
				continue
			}
			x := 1 / (1 - q/100)
			xys = append(xys, plotter.XY{X: x, Y: cv.Values[k]})
			maxX = math.Max(maxX, x)
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("plotting curve %q: %w", cv.Label, err)
		}
		l.LineStyle = lineStyle(i, false)
		p.Add(l)
		c.AddLine(cv.Label, i, false, false)
		n++
	}
	if n == 0 {
		return nil, ErrNoData
	}
	p.X.Scale = plot.LogScale{}
	p.X.Min, p.X.Max = 1, maxX
	p.X.Tick.Marker = log10Ticks(false, func(v float64) string {
		return strconv.FormatFloat(100*(1-1/v), 'f', -1, 64) + "%"
	})
	p.Y.Min = 0
	return c, nil
}

// Series is one measure over the categories of a Categories chart.
type Series struct {
	Label string
	// Values holds the estimates of each category: usually one, several
	// for per-instance values (one point each), none when absent.
	Values [][]Estimate
	// Bar draws the medians as bars from zero (not on a log axis).
	Bar bool
}

// Categories draws, for every category along x, each series' medians as
// points (or bars) with min–max error bars, the series side by side.
func Categories(title, yLabel string, cats []string, series []Series, logY bool) (*Chart, error) {
	if len(cats) == 0 || len(series) == 0 {
		return nil, ErrNoData
	}
	p := NewPanel("", yLabel)
	c := NewChart(title, p)
	const band = 0.8
	slot := band / float64(len(series))
	minPos, n := math.Inf(1), 0
	for j, s := range series {
		eb := &errBars{style: draw.LineStyle{Color: Color(j), Width: vg.Points(1)}}
		br := &bars{halfWidth: slot * 0.4, color: Color(j)}
		var pts plotter.XYs
		for i := 0; i < len(cats) && i < len(s.Values); i++ {
			ests := s.Values[i]
			for k, e := range ests {
				if !e.ok() || (logY && e.Mid <= 0) {
					continue
				}
				x := float64(i) - band/2 + slot*float64(j) + slot*(float64(k)+0.5)/float64(len(ests))
				if s.Bar && !logY {
					br.x, br.base, br.top = append(br.x, x), append(br.base, 0), append(br.top, e.Mid)
				} else {
					pts = append(pts, plotter.XY{X: x, Y: e.Mid})
				}
				if logY && e.hasSpread() && e.Lo <= 0 {
					e.Lo = e.Mid
				}
				eb.add(x, e)
				minPos = math.Min(minPos, e.Mid)
				if e.hasSpread() {
					minPos = math.Min(minPos, e.Lo)
				}
				n++
			}
		}
		if len(br.x) > 0 {
			p.Add(br)
			c.AddBar(s.Label, j)
		}
		if len(pts) > 0 {
			sc, err := plotter.NewScatter(pts)
			if err != nil {
				return nil, fmt.Errorf("plotting series %q: %w", s.Label, err)
			}
			sc.GlyphStyle = glyphStyle(j)
			p.Add(sc)
			c.AddPoint(s.Label, j)
		}
		if len(eb.x) > 0 {
			p.Add(eb)
		}
	}
	if n == 0 {
		return nil, ErrNoData
	}
	nominalX(p, cats)
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = log10Ticks(true, func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) })
		p.Y.Min = minPos / 1.5
		p.Y.Max *= 1.5
	} else {
		// From zero, or below it when a value is negative (a difference).
		p.Y.Min = math.Min(0, p.Y.Min*1.05)
		p.Y.Max = math.Max(0, p.Y.Max*1.05)
	}
	c.Width = max(DefaultWidth, vg.Length(len(cats))*0.9*vg.Inch+2*vg.Inch)
	return c, nil
}

// nominalX labels the integer positions 0..n-1 of p's x axis with names,
// slanted when they would not fit side by side.
func nominalX(p *plot.Plot, names []string) {
	ticks := make([]plot.Tick, len(names))
	long := 0
	for i, n := range names {
		ticks[i] = plot.Tick{Value: float64(i), Label: n}
		long = max(long, len(n))
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.X.Tick.Length = 0
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	if long*len(names) > 80 {
		p.X.Tick.Label.Rotation = math.Pi / 7
		p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = draw.XRight, draw.YCenter
		// A slanted first label reaches left of the axis: widen the axis
		// on that side so the label stays on the canvas (about 5.5 points
		// per character across, of some 600 points of axis, less the y
		// axis's own width).
		if reach := 5.5*float64(len(names[0])) - 50; reach > 0 {
			p.X.Min -= reach * float64(len(names)) / 600
		}
	}
}

// Line is one line of a LinePanel.
type Line struct {
	Label  string
	X      []float64
	Y      []Estimate // error bars where a spread is known
	Style  int        // palette index
	Dashed bool
	Points bool // mark the points too
}

// LinePanel returns a panel with the lines drawn; y starts at zero. Add
// the lines to a chart's legend with Chart.AddLine.
func LinePanel(xLabel, yLabel string, lines []Line) (*plot.Plot, error) {
	p := NewPanel(xLabel, yLabel)
	n := 0
	for _, ln := range lines {
		var xys plotter.XYs
		eb := &errBars{style: draw.LineStyle{Color: Color(ln.Style), Width: vg.Points(1)}}
		for k := 0; k < len(ln.X) && k < len(ln.Y); k++ {
			if !ln.Y[k].ok() || math.IsNaN(ln.X[k]) {
				continue
			}
			xys = append(xys, plotter.XY{X: ln.X[k], Y: ln.Y[k].Mid})
			eb.add(ln.X[k], ln.Y[k])
		}
		if len(xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, fmt.Errorf("plotting line %q: %w", ln.Label, err)
		}
		l.LineStyle = lineStyle(ln.Style, ln.Dashed)
		p.Add(l)
		if ln.Points {
			sc, err := plotter.NewScatter(xys)
			if err != nil {
				return nil, fmt.Errorf("plotting line %q: %w", ln.Label, err)
			}
			sc.GlyphStyle = glyphStyle(ln.Style)
			p.Add(sc)
		}
		if len(eb.x) > 0 {
			p.Add(eb)
		}
		n++
	}
	if n == 0 {
		return nil, ErrNoData
	}
	p.Y.Min = 0
	p.Y.Max *= 1.05
	return p, nil
}

// Part is one layer of a stacked bar chart: its value in every category.
type Part struct {
	Label  string
	Values []float64
}

// Stacked draws one bar per category, the parts stacked bottom-up in
// order, each part in its own colour.
func Stacked(title, yLabel string, cats []string, parts []Part) (*Chart, error) {
	if len(cats) == 0 || len(parts) == 0 {
		return nil, ErrNoData
	}
	p := NewPanel("", yLabel)
	c := NewChart(title, p)
	base := make([]float64, len(cats))
	n := 0
	for j, pt := range parts {
		br := &bars{halfWidth: 0.3, color: Color(j)}
		for i := 0; i < len(cats) && i < len(pt.Values); i++ {
			v := pt.Values[i]
			if math.IsNaN(v) || v <= 0 {
				continue
			}
			br.x, br.base, br.top = append(br.x, float64(i)), append(br.base, base[i]), append(br.top, base[i]+v)
			base[i] += v
			n++
		}
		if len(br.x) > 0 {
			p.Add(br)
			c.AddBar(pt.Label, j)
		}
	}
	if n == 0 {
		return nil, ErrNoData
	}
	nominalX(p, cats)
	p.Y.Min = 0
	p.Y.Max *= 1.05
	c.Width = max(DefaultWidth, vg.Length(len(cats))*0.9*vg.Inch+2*vg.Inch)
	return c, nil
}

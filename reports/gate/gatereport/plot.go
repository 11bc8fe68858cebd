package gatereport

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/meshbench/meshbench/reports/gate"
	"github.com/meshbench/meshbench/reports/plots"
)

// Palette indices of the plot's marks, as in its legend.
const (
	stylePairs     = 0
	styleEstimate  = 1
	styleThreshold = 2
)

// Plot draws the paired values of r as a horizontal strip chart, one
// category per decision row (metric and group, top to bottom in the
// order of r.Rows): every paired repeat as a point, the median with its
// confidence interval as an error bar, and the threshold as a short
// dashed mark across the row. Relative rows share one panel in percent
// change; absolute rows, which cannot share an axis with percentages,
// get one more panel per unit. Rows without a paired value are left out.
// It returns the chart as PNG and as SVG, or an error wrapping
// plots.ErrNoData when no row has a paired value.
func Plot(r *gate.Result) (png, svg []byte, err error) {
	type group struct {
		xLabel string
		scale  float64 // multiplies a paired value (or threshold) to the axis
		rows   []gate.Row
	}
	var groups []*group
	byUnit := map[string]*group{}
	n := 0
	for _, row := range r.Rows {
		if len(row.Pairs) == 0 {
			continue
		}
		key, label, scale := "%", "change of the candidate against the base (%)", 1.0
		if !row.Relative {
			u, s := axisUnit(row.Metric)
			key, label, scale = u, fmt.Sprintf("difference candidate − base (%s)", u), s
		}
		g := byUnit[key]
		if g == nil {
			g = &group{xLabel: label, scale: scale}
			byUnit[key] = g
			if key == "%" {
				groups = slices.Insert(groups, 0, g) // the relative panel first
			} else {
				groups = append(groups, g)
			}
		}
		g.rows = append(g.rows, row)
		n++
	}
	if n == 0 {
		return nil, nil, fmt.Errorf("plotting the gate's paired values: %w", plots.ErrNoData)
	}
	var panels []*plot.Plot
	for _, g := range groups {
		p := plots.NewPanel(g.xLabel, "")
		s := &strip{}
		names := make([]string, len(g.rows))
		for i, row := range g.rows {
			names[i] = rowName(row)
			y := float64(len(g.rows) - 1 - i)
			sr := stripRow{y: y, threshold: worseBound(row, r.MinEffect) * g.scale}
			conv := func(v float64) float64 { return v * g.scale }
			if row.Relative {
				conv = func(v float64) float64 { return (v - 1) * 100 }
			}
			for _, pr := range row.Pairs {
				if finite(pr.Value) {
					sr.points = append(sr.points, conv(pr.Value))
				}
			}
			sr.mid, sr.lo, sr.hi = conv(row.Estimate.Median), conv(row.Estimate.Low), conv(row.Estimate.High)
			s.rows = append(s.rows, sr)
		}
		p.Add(s)
		categoriesY(p, names)
		pad := math.Max((p.X.Max-p.X.Min)*0.05, 1e-9)
		p.X.Min, p.X.Max = p.X.Min-pad, p.X.Max+pad
		panels = append(panels, p)
	}
	title := fmt.Sprintf("meshbench gate: %s (%s vs %s, paired per repeat)", cmpOr(r.Verdict, "unknown"), r.Candidate, r.Base)
	c := plots.NewChart(title, panels...)
	c.AddPoint("paired repeats", stylePairs)
	c.AddLine(fmt.Sprintf("median, %s CI", percent(r.Confidence)), styleEstimate, false, true)
	c.AddLine("threshold", styleThreshold, true, false)
	h := vg.Length(n)*0.45*vg.Inch + vg.Length(len(panels))*0.8*vg.Inch + 0.5*vg.Inch
	c.Height = max(2.5*vg.Inch, h)
	png, svg, err = c.Render()
	if err != nil {
		return nil, nil, fmt.Errorf("plotting the gate's paired values: %w", err)
	}
	return png, svg, nil
}

// axisUnit is the unit an absolute row's differences are plotted in, as
// gate.FormatValue writes them, and the factor from the metric's values.
func axisUnit(metric string) (unit string, scale float64) {
	switch metric {
	case gate.MetricRSS, gate.MetricAnon:
		return "MiB", 1.0 / (1 << 20)
	case gate.MetricErrors:
		return "percentage points", 100
	}
	return gate.Unit(metric), 1
}

// categoriesY labels the integer positions of p's y axis with names, the
// first at the top.
func categoriesY(p *plot.Plot, names []string) {
	ticks := make([]plot.Tick, len(names))
	for i, n := range names {
		ticks[i] = plot.Tick{Value: float64(len(names) - 1 - i), Label: n}
	}
	p.Y.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Tick.Length = 0
	p.Y.Min, p.Y.Max = -0.5, float64(len(names))-0.5
}

// stripRow is one category of a strip: its paired values, the median and
// interval, and the threshold, on the panel's x axis.
type stripRow struct {
	y           float64
	points      []float64
	mid, lo, hi float64
	threshold   float64
}

// strip draws the rows of a strip chart and a line at zero change.
type strip struct{ rows []stripRow }

// Offsets within a category, in y data units.
const (
	pointsY    = 0.18 // the paired points, above the centre
	jitterY    = 0.10 // their spread
	estimateY  = -0.14
	thresholdH = 0.38 // half-height of the threshold mark
)

func (s *strip) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	zero := draw.LineStyle{Color: color.Gray{Y: 0x80}, Width: vg.Points(0.8)}
	if x := trX(0); c.ContainsX(x) {
		c.StrokeLine2(zero, x, c.Min.Y, x, c.Max.Y)
	}
	thr := draw.LineStyle{Color: plots.Color(styleThreshold), Width: vg.Points(1.5), Dashes: []vg.Length{vg.Points(5), vg.Points(3)}}
	est := draw.LineStyle{Color: plots.Color(styleEstimate), Width: vg.Points(1.5)}
	pt := draw.GlyphStyle{Color: plots.Color(stylePairs), Radius: vg.Points(3), Shape: draw.CircleGlyph{}}
	med := draw.GlyphStyle{Color: plots.Color(styleEstimate), Radius: vg.Points(3), Shape: draw.BoxGlyph{}}
	capH := vg.Points(3)
	for _, r := range s.rows {
		if finite(r.threshold) {
			x := trX(r.threshold)
			c.StrokeLines(thr, c.ClipLinesX([]vg.Point{{X: x, Y: trY(r.y - thresholdH)}, {X: x, Y: trY(r.y + thresholdH)}})...)
		}
		for k, v := range r.points {
			// A fixed spread over five levels, so that equal values stay
			// apart and the same result always draws the same chart.
			dy := jitterY * (float64(k%5)/4 - 0.5)
			if pos := (vg.Point{X: trX(v), Y: trY(r.y + pointsY + dy)}); c.Contains(pos) {
				c.DrawGlyph(pt, pos)
			}
		}
		y := trY(r.y + estimateY)
		if finite(r.lo) && finite(r.hi) && r.hi > r.lo {
			x0, x1 := trX(r.lo), trX(r.hi)
			c.StrokeLines(est, c.ClipLinesX([]vg.Point{{X: x0, Y: y}, {X: x1, Y: y}})...)
			for _, x := range []vg.Length{x0, x1} {
				if c.ContainsX(x) {
					c.StrokeLine2(est, x, y-capH, x, y+capH)
				}
			}
		}
		if pos := (vg.Point{X: trX(r.mid), Y: y}); finite(r.mid) && c.Contains(pos) {
			c.DrawGlyph(med, pos)
		}
	}
}

func (s *strip) DataRange() (xmin, xmax, ymin, ymax float64) {
	xmin, xmax = 0, 0 // zero change is always in view
	for _, r := range s.rows {
		for _, v := range append([]float64{r.mid, r.lo, r.hi, r.threshold}, r.points...) {
			if finite(v) {
				xmin, xmax = math.Min(xmin, v), math.Max(xmax, v)
			}
		}
	}
	return xmin, xmax, -0.5, float64(len(s.rows)) - 0.5
}

// errNoData tells whether err is only that there was nothing to plot.
func errNoData(err error) bool { return errors.Is(err, plots.ErrNoData) }

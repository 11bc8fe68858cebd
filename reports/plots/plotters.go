package plots

import (
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Estimate is a median with the minimum and maximum around it, e.g. a
// percentile over the repeats of a variant. A NaN Mid means no value; NaN
// Lo or Hi means no spread is known.
type Estimate struct{ Mid, Lo, Hi float64 }

// Value returns an Estimate without spread.
func Value(v float64) Estimate { return Estimate{Mid: v, Lo: math.NaN(), Hi: math.NaN()} }

func (e Estimate) ok() bool { return !math.IsNaN(e.Mid) && !math.IsInf(e.Mid, 0) }

func (e Estimate) hasSpread() bool {
	return e.ok() && !math.IsNaN(e.Lo) && !math.IsNaN(e.Hi) && e.Hi > e.Lo
}

// errBars draws vertical min–max bars with caps.
type errBars struct {
	x, lo, hi []float64
	style     draw.LineStyle
}

func (e *errBars) add(x float64, est Estimate) {
	if est.hasSpread() {
		e.x, e.lo, e.hi = append(e.x, x), append(e.lo, est.Lo), append(e.hi, est.Hi)
	}
}

func (e *errBars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	capW := vg.Points(3)
	for i := range e.x {
		x, lo, hi := trX(e.x[i]), trY(e.lo[i]), trY(e.hi[i])
		c.StrokeLines(e.style, c.ClipLinesY([]vg.Point{{X: x, Y: lo}, {X: x, Y: hi}})...)
		for _, y := range []vg.Length{lo, hi} {
			if c.ContainsY(y) {
				c.StrokeLine2(e.style, x-capW, y, x+capW, y)
			}
		}
	}
}

func (e *errBars) DataRange() (xmin, xmax, ymin, ymax float64) {
	return rangeOf(e.x), rangeMax(e.x), rangeOf(e.lo), rangeMax(e.hi)
}

// bars draws filled rectangles from base to top, halfWidth either side of
// x (data units).
type bars struct {
	x, base, top []float64
	halfWidth    float64
	color        color.Color
}

func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for i := range b.x {
		x0, x1 := trX(b.x[i]-b.halfWidth), trX(b.x[i]+b.halfWidth)
		y0, y1 := trY(b.base[i]), trY(b.top[i])
		pts := c.ClipPolygonXY([]vg.Point{{X: x0, Y: y0}, {X: x0, Y: y1}, {X: x1, Y: y1}, {X: x1, Y: y0}})
		c.FillPolygon(b.color, pts)
	}
}

func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	return rangeOf(b.x) - b.halfWidth, rangeMax(b.x) + b.halfWidth,
		math.Min(rangeOf(b.base), rangeOf(b.top)), math.Max(rangeMax(b.base), rangeMax(b.top))
}

// marker draws a labelled vertical line across the data area.
type marker struct {
	x     float64
	label string
}

func (m marker) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	x := trX(m.x)
	if !c.ContainsX(x) {
		return
	}
	sty := draw.LineStyle{Color: color.Gray{Y: 0x40}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(2)}}
	c.StrokeLine2(sty, x, c.Min.Y, x, c.Max.Y)
	if m.label != "" {
		ts := textStyle(9)
		ts.XAlign, ts.YAlign = draw.XLeft, draw.YTop
		c.FillText(ts, vg.Point{X: x + vg.Points(3), Y: c.Max.Y - vg.Points(2)}, m.label)
	}
}

func (m marker) DataRange() (xmin, xmax, ymin, ymax float64) {
	return m.x, m.x, math.Inf(1), math.Inf(-1)
}

// AddMarker draws a labelled vertical line at x on p, e.g. the time of an
// event in a time series.
func AddMarker(p *plot.Plot, x float64, label string) { p.Add(marker{x: x, label: label}) }

func rangeOf(xs []float64) float64 {
	m := math.Inf(1)
	for _, x := range xs {
		m = math.Min(m, x)
	}
	return m
}

func rangeMax(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	return m
}

// level draws a labelled horizontal line across the data area.
type level struct {
	y     float64
	label string
}

func (l level) Plot(c draw.Canvas, p *plot.Plot) {
	_, trY := p.Transforms(&c)
	y := trY(l.y)
	if !c.ContainsY(y) {
		return
	}
	sty := draw.LineStyle{Color: color.Gray{Y: 0x40}, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(1), vg.Points(2)}}
	c.StrokeLine2(sty, c.Min.X, y, c.Max.X, y)
	if l.label != "" {
		ts := textStyle(9)
		ts.XAlign, ts.YAlign = draw.XRight, draw.YBottom
		c.FillText(ts, vg.Point{X: c.Max.X - vg.Points(3), Y: y + vg.Points(2)}, l.label)
	}
}

func (l level) DataRange() (xmin, xmax, ymin, ymax float64) {
	return math.Inf(1), math.Inf(-1), l.y, l.y
}

// AddLevel draws a labelled horizontal line at y on p, e.g. the latency
// bound of an objective; p's y axis is widened to show it.
func AddLevel(p *plot.Plot, y float64, label string) { p.Add(level{y: y, label: label}) }

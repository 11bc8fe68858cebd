package plots

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// DPI is the resolution of PNG renderings.
const DPI = 96

// Default chart size.
const (
	DefaultWidth  = 9 * vg.Inch
	DefaultHeight = 4.5 * vg.Inch
)

// Chart is one figure: panels stacked vertically on aligned axes, a title
// above them and a legend to their right.
type Chart struct {
	Title  string
	Panels []*plot.Plot
	// Legend lists the series; it is drawn beside the panels, so it never
	// hides data.
	Legend        plot.Legend
	Width, Height vg.Length
}

// NewChart returns a chart of the default size with an empty legend.
func NewChart(title string, panels ...*plot.Plot) *Chart {
	l := plot.NewLegend()
	l.TextStyle.Font = sans(10)
	l.Top, l.Left = true, true
	l.Padding = vg.Points(4)
	return &Chart{Title: title, Panels: panels, Legend: l, Width: DefaultWidth, Height: DefaultHeight}
}

// Draw draws the chart onto dc.
func (c *Chart) Draw(dc draw.Canvas) {
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	pad := vg.Points(8)
	area := draw.Crop(dc, pad, -pad, pad, -pad)
	if c.Title != "" {
		sty := textStyle(13)
		sty.XAlign, sty.YAlign = draw.XCenter, draw.YTop
		area.FillText(sty, vg.Point{X: area.Center().X, Y: area.Max.Y}, c.Title)
		area.Max.Y -= sty.Height(c.Title) + pad
	}
	if r := c.Legend.Rectangle(area); r.Max.X > r.Min.X {
		w := r.Max.X - r.Min.X
		lc := area
		lc.Min.X = area.Max.X - w
		lc.Max.Y -= pad
		l := c.Legend
		l.Top, l.Left = true, true
		l.Draw(lc)
		area.Max.X -= w + 2*pad
	}
	if len(c.Panels) == 0 {
		return
	}
	rows := make([][]*plot.Plot, len(c.Panels))
	for i, p := range c.Panels {
		rows[i] = []*plot.Plot{p}
	}
	cs := plot.Align(rows, draw.Tiles{Rows: len(rows), Cols: 1, PadY: pad}, area)
	for i, p := range c.Panels {
		p.Draw(cs[i][0])
	}
}

// Render draws the chart as PNG and as SVG.
func (c *Chart) Render() (pngData, svgData []byte, err error) {
	defer func() {
		// gonum/plot reports some impossible layouts (a log axis over
		// non-positive values) by panicking.
		if r := recover(); r != nil {
			err = fmt.Errorf("drawing chart %q: %v", c.Title, r)
		}
	}()
	w, h := c.Width, c.Height
	if w <= 0 || h <= 0 {
		w, h = DefaultWidth, DefaultHeight
	}
	img := vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(DPI))
	c.Draw(draw.New(img))
	var pb bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&pb); err != nil {
		return nil, nil, fmt.Errorf("encoding chart %q as PNG: %w", c.Title, err)
	}
	sc := vgsvg.New(w, h)
	c.Draw(draw.New(sc))
	var sb bytes.Buffer
	if _, err := sc.WriteTo(&sb); err != nil {
		return nil, nil, fmt.Errorf("encoding chart %q as SVG: %w", c.Title, err)
	}
	return pb.Bytes(), sb.Bytes(), nil
}

// AddLine adds a legend entry drawn as a line in style i, with the
// style's point when withPoint is set.
func (c *Chart) AddLine(label string, i int, dashed, withPoint bool) {
	thumbs := []plot.Thumbnailer{lineThumb{lineStyle(i, dashed)}}
	if withPoint {
		thumbs = append(thumbs, glyphThumb{glyphStyle(i)})
	}
	c.Legend.Add(label, thumbs...)
}

// AddPoint adds a legend entry drawn as a point in style i.
func (c *Chart) AddPoint(label string, i int) {
	c.Legend.Add(label, glyphThumb{glyphStyle(i)})
}

// AddBar adds a legend entry drawn as a filled box in colour i.
func (c *Chart) AddBar(label string, i int) {
	c.Legend.Add(label, boxThumb{Color(i)})
}

// Color returns the i-th colour of the palette (Tableau 10), cycling.
func Color(i int) color.Color {
	p := [...]color.RGBA{
		{0x4e, 0x79, 0xa7, 0xff}, {0xf2, 0x8e, 0x2b, 0xff}, {0xe1, 0x57, 0x59, 0xff},
		{0x76, 0xb7, 0xb2, 0xff}, {0x59, 0xa1, 0x4f, 0xff}, {0xed, 0xc9, 0x48, 0xff},
		{0xb0, 0x7a, 0xa1, 0xff}, {0xff, 0x9d, 0xa7, 0xff}, {0x9c, 0x75, 0x5f, 0xff},
		{0xba, 0xb0, 0xac, 0xff},
	}
	if i < 0 {
		i = -i
	}
	return p[i%len(p)]
}

func lineStyle(i int, dashed bool) draw.LineStyle {
	s := draw.LineStyle{Color: Color(i), Width: vg.Points(1.5)}
	if dashed {
		s.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	return s
}

func glyphStyle(i int) draw.GlyphStyle {
	shapes := [...]draw.GlyphDrawer{
		draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{},
		draw.RingGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.CrossGlyph{},
	}
	if i < 0 {
		i = -i
	}
	return draw.GlyphStyle{Color: Color(i), Radius: vg.Points(3), Shape: shapes[(i/10+i)%len(shapes)]}
}

func sans(size vg.Length) font.Font {
	return font.From(font.Font{Typeface: "Liberation", Variant: "Sans"}, size)
}

func textStyle(size vg.Length) text.Style {
	return text.Style{Color: color.Black, Font: sans(size), Handler: plot.DefaultTextHandler}
}

// NewPanel returns an empty plot with the chart fonts, a light grid and
// the given axis labels.
func NewPanel(xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = xLabel, yLabel
	p.X.Label.TextStyle.Font, p.Y.Label.TextStyle.Font = sans(11), sans(11)
	p.X.Tick.Label.Font, p.Y.Tick.Label.Font = sans(9), sans(9)
	p.Title.TextStyle.Font = sans(11)
	p.X.Tick.Marker, p.Y.Tick.Marker = niceTicks(), niceTicks()
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{Y: 0xe4}
	g.Horizontal.Color = color.Gray{Y: 0xe4}
	p.Add(g)
	return p
}

// LogY puts p's y axis on a logarithmic scale, ticks at the powers of ten
// and their doubles and fives, from lo/1.5 to 1.5 times the axis's
// maximum. lo is the smallest value drawn; it must be positive, as every
// value on the axis must (a panel from LinePanel starts at zero: call LogY
// after adding everything).
func LogY(p *plot.Plot, lo float64) {
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = log10Ticks(true, func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) })
	p.Y.Min = lo / 1.5
	p.Y.Max *= 1.5
}

// log10Ticks labels the powers of ten between min and max with label(v)
// (and their doubles and fives too when labelAll125 is set), and marks
// the values in between as minor ticks.
func log10Ticks(labelAll125 bool, label func(v float64) string) plot.Ticker {
	return plot.TickerFunc(func(min, max float64) []plot.Tick {
		var ts []plot.Tick
		if min <= 0 || max <= 0 {
			return ts
		}
		for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
			v := math.Pow(10, e)
			ts = append(ts, plot.Tick{Value: v, Label: label(v)})
			for k := 2.0; k < 10; k++ {
				t := plot.Tick{Value: k * v}
				if labelAll125 && (k == 2 || k == 5) {
					t.Label = label(k * v)
				}
				ts = append(ts, t)
			}
		}
		return ts
	})
}

type lineThumb struct{ s draw.LineStyle }

func (t lineThumb) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(t.s, c.Min.X, y, c.Max.X, y)
}

type glyphThumb struct{ s draw.GlyphStyle }

func (t glyphThumb) Thumbnail(c *draw.Canvas) { c.DrawGlyph(t.s, c.Center()) }

type boxThumb struct{ c color.Color }

func (t boxThumb) Thumbnail(c *draw.Canvas) {
	r := c.Rectangle
	c.FillPolygon(t.c, []vg.Point{r.Min, {X: r.Min.X, Y: r.Max.Y}, r.Max, {X: r.Max.X, Y: r.Min.Y}})
}

// niceTicks labels about five evenly spaced round values (steps of 1, 2,
// 2.5 or 5 times a power of ten) with minor ticks between them.
func niceTicks() plot.Ticker {
	return plot.TickerFunc(func(min, max float64) []plot.Tick {
		if !(max > min) {
			return []plot.Tick{{Value: min, Label: strconv.FormatFloat(min, 'g', 4, 64)}}
		}
		raw := (max - min) / 5
		p := math.Pow(10, math.Floor(math.Log10(raw)))
		step := 10 * p
		for _, m := range []float64{1, 2, 2.5, 5} {
			if m*p >= raw {
				step = m * p
				break
			}
		}
		dec := 0
		for ; dec < 10; dec++ {
			x := step * math.Pow10(dec)
			if math.Abs(x-math.Round(x)) < 1e-6 {
				break
			}
		}
		var ts []plot.Tick
		for k := math.Ceil(min / step); k*step <= max+step*1e-9; k++ {
			r := k * step
			if math.Abs(r) < step*1e-9 {
				r = 0 // not "-0"
			}
			ts = append(ts, plot.Tick{Value: r, Label: strconv.FormatFloat(r, 'f', dec, 64)})
			if m := r + step/2; m < max {
				ts = append(ts, plot.Tick{Value: m})
			}
		}
		return ts
	})
}

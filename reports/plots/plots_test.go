package plots

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"math"
	"strings"
	"testing"
)

func render(t *testing.T, c *Chart) (pngData, svgData []byte) {
	t.Helper()
	p, s, err := c.Render()
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(p))
	if err != nil {
		t.Fatalf("PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != int(c.Width.Dots(DPI)+0.5) {
		t.Errorf("PNG is %d px wide, want %v", b.Dx(), c.Width.Dots(DPI))
	}
	d := xml.NewDecoder(bytes.NewReader(s))
	for {
		_, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG: %v", err)
		}
	}
	return p, s
}

func TestSpectrum(t *testing.T) {
	c, err := Spectrum("t", "ms", []Curve{
		{Label: "a<b", Percentiles: []float64{0, 50, 90, 99, 99.9, 100}, Values: []float64{0.1, 0.3, 0.5, 1, 2, 3}},
		{Label: "empty"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The 100% point would be at infinity: the axis ends at the last
	// finite one, 1/(1-0.999).
	if p := c.Panels[0]; math.Abs(p.X.Max-1000) > 1e-6 || p.X.Min != 1 {
		t.Errorf("x axis %v..%v, want 1..1000", p.X.Min, p.X.Max)
	}
	_, svg := render(t, c)
	for _, label := range []string{">0%<", ">90%<", ">99%<", ">99.9%<", "a&lt;b"} {
		if !bytes.Contains(svg, []byte(label)) {
			t.Errorf("SVG lacks %s", label)
		}
	}
	if _, err := Spectrum("t", "ms", []Curve{{Label: "x"}}); !errors.Is(err, ErrNoData) {
		t.Errorf("empty spectrum: %v, want ErrNoData", err)
	}
}

func TestCategories(t *testing.T) {
	nan := math.NaN()
	c, err := Categories("t", "ms", []string{"a", "b"}, []Series{
		{Label: "p50", Values: [][]Estimate{{{Mid: 1, Lo: 0.9, Hi: 1.2}}, {{Mid: nan}}}},
		{Label: "per", Values: [][]Estimate{{Value(2), Value(3)}, nil}, Bar: true},
	}, true)
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Panels[0]; p.Y.Min <= 0 || p.Y.Min > 0.9 {
		t.Errorf("log axis starts at %v, want a positive value below the smallest low", p.Y.Min)
	}
	render(t, c)
	_, err = Categories("t", "ms", []string{"a"}, []Series{{Label: "x", Values: [][]Estimate{{{Mid: nan}}}}}, false)
	if !errors.Is(err, ErrNoData) {
		t.Errorf("all-NaN categories: %v, want ErrNoData", err)
	}
}

func TestStackedAndPanels(t *testing.T) {
	c, err := Stacked("t", "%", []string{"x", "y"}, []Part{{"e0", []float64{50, 30}}, {"e1", []float64{50, 70}}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.Panels[0]; p.Y.Max < 100 {
		t.Errorf("stacked y max %v, want ≥ 100", p.Y.Max)
	}
	render(t, c)

	top, err := LinePanel("", "ms", []Line{{Label: "a", X: []float64{0, 1, 2}, Y: []Estimate{Value(1), Value(nan()), Value(3)}}})
	if err != nil {
		t.Fatal(err)
	}
	bottom, err := LinePanel("s", "req/s", []Line{{Label: "a", X: []float64{0, 1, 2}, Y: []Estimate{Value(5), Value(5), Value(5)}}})
	if err != nil {
		t.Fatal(err)
	}
	AddMarker(top, 1.5, "event")
	tc := NewChart("two panels", top, bottom)
	tc.AddLine("a", 0, false, false)
	_, svg := render(t, tc)
	if !strings.Contains(string(svg), ">event<") {
		t.Error("marker label not drawn")
	}
	if _, err := LinePanel("", "", []Line{{Label: "none"}}); !errors.Is(err, ErrNoData) {
		t.Errorf("empty panel: %v, want ErrNoData", err)
	}
}

func nan() float64 { return math.NaN() }

func TestLevelAndLogY(t *testing.T) {
	p, err := LinePanel("req/s", "ms", []Line{{Label: "p99", X: []float64{100, 200, 400}, Y: []Estimate{Value(1), Value(2), Value(900)}}})
	if err != nil {
		t.Fatal(err)
	}
	// The level is above the data near it and below the tail: the axis
	// must span both, and a log scale must start above zero.
	AddLevel(p, 10, "objective p99 ≤ 10ms")
	LogY(p, 1)
	if p.Y.Min <= 0 || p.Y.Min >= 1 || p.Y.Max < 900 {
		t.Errorf("log axis %v..%v, want from below 1 (above 0) to at least 900", p.Y.Min, p.Y.Max)
	}
	lo := NewPanel("", "ms")
	AddLevel(lo, 50, "")
	if lo.Y.Min > 50 || lo.Y.Max < 50 {
		t.Errorf("a level alone gives the axis %v..%v, want it to include 50", lo.Y.Min, lo.Y.Max)
	}
	c := NewChart("level", p)
	c.AddLine("p99", 0, false, true)
	_, svg := render(t, c)
	if !strings.Contains(string(svg), ">objective p99 ≤ 10ms<") {
		t.Error("level label not drawn")
	}
}

package reports

import (
	"math"
	"strconv"
)

// none stands for a value that is not there.
const none = "—"

// sig3 formats x with three significant digits and no exponent.
func sig3(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return none
	}
	if x == 0 {
		return "0"
	}
	digits := int(math.Floor(math.Log10(math.Abs(x)))) + 1
	dec := 3 - digits
	if dec >= 0 {
		s := strconv.FormatFloat(x, 'f', dec, 64)
		// Rounding can add a digit (999.7 -> "1000"); keep three.
		if r, _ := strconv.ParseFloat(s, 64); dec > 0 && math.Abs(r) >= math.Pow10(digits) {
			s = strconv.FormatFloat(x, 'f', dec-1, 64)
		}
		return s
	}
	p := math.Pow10(-dec)
	return strconv.FormatFloat(math.Round(x/p)*p, 'f', 0, 64)
}

// durationUnit picks µs under a millisecond, ms otherwise, for a value in
// microseconds: the unit's name and its size in microseconds.
func durationUnit(us float64) (string, float64) {
	if math.Abs(us) < 1000 {
		return "µs", 1
	}
	return "ms", 1000
}

// FormatMicros formats a duration given in microseconds: "412 µs",
// "1.90 ms".
func FormatMicros(us float64) string {
	if math.IsNaN(us) {
		return none
	}
	u, d := durationUnit(us)
	return sig3(us/d) + " " + u
}

// FormatDelta formats a signed duration in microseconds: "+85.0 µs".
func FormatDelta(us float64) string {
	s := FormatMicros(us)
	if us > 0 || (us == 0 && !math.IsNaN(us)) {
		s = "+" + s
	}
	return s
}

// FormatBytes formats a size in binary units: "12.3 MiB".
func FormatBytes(b float64) string {
	if math.IsNaN(b) {
		return none
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for math.Abs(b) >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return sig3(b) + " " + units[i]
}

// FormatRatio formats a ratio: "1.23×".
func FormatRatio(r float64) string {
	if math.IsNaN(r) {
		return none
	}
	return sig3(r) + "×"
}

// spreadText formats a spread as "median (min–max)" where f formats one
// value.
func spreadText(s Spread, f func(float64) string) string {
	if !s.OK() {
		return none
	}
	if s.N == 1 || s.Min == s.Max {
		return f(s.Median)
	}
	return f(s.Median) + " (" + f(s.Min) + "–" + f(s.Max) + ")"
}

// FormatMicrosSpread formats a spread of durations in microseconds with
// the median's unit for the whole: "412 µs (398–430)", "1.90 ms (1.85–2.10)".
func FormatMicrosSpread(s Spread) string {
	if !s.OK() {
		return none
	}
	u, d := durationUnit(s.Median)
	return unitSpread(s, d, " "+u, "")
}

// FormatDeltaSpread is FormatMicrosSpread with signs: "+85.0 µs (+80.0–+91.0)".
func FormatDeltaSpread(s Spread) string {
	if !s.OK() {
		return none
	}
	u, d := durationUnit(s.Median)
	return unitSpread(s, d, " "+u, "+")
}

// unitSpread formats s divided by div as "median<unit> (min–max)": the
// unit (with its leading space, if any) once, after the median. plus is
// put before values that are not negative.
func unitSpread(s Spread, div float64, unit, plus string) string {
	f := func(x float64) string {
		t := sig3(x / div)
		if plus != "" && x >= 0 {
			t = plus + t
		}
		return t
	}
	lo, hi := f(s.Min), f(s.Max)
	if s.N == 1 || lo == hi {
		return f(s.Median) + unit
	}
	return f(s.Median) + unit + " (" + lo + "–" + hi + ")"
}

// FormatBytesSpread formats a spread of sizes: "12.3 MiB (12.1–12.6)".
func FormatBytesSpread(s Spread) string {
	if !s.OK() {
		return none
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	d, i := 1.0, 0
	for math.Abs(s.Median)/d >= 1024 && i < len(units)-1 {
		d *= 1024
		i++
	}
	return unitSpread(s, d, " "+units[i], "")
}

// FormatNumberSpread formats a spread of plain numbers with three
// significant digits, unit appended: "998 req/s (996–999)".
func FormatNumberSpread(s Spread, unit string) string {
	if !s.OK() {
		return none
	}
	if unit != "" {
		unit = " " + unit
	}
	return unitSpread(s, 1, unit, "")
}

// FormatCountSpread formats a spread of counts exactly: "0", "12 (3–20)".
func FormatCountSpread(s Spread) string {
	return spreadText(s, func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) })
}

// FormatRatioSpread formats a spread of ratios: "1.23× (1.20–1.26)".
func FormatRatioSpread(s Spread) string {
	if !s.OK() {
		return none
	}
	return unitSpread(s, 1, "×", "")
}

// FormatPercent formats a fraction as a percentage: "33.3%".
func FormatPercent(f float64) string {
	if math.IsNaN(f) {
		return none
	}
	return sig3(100*f) + "%"
}

// FormatPercentSpread formats a spread of fractions as percentages.
func FormatPercentSpread(s Spread) string {
	if !s.OK() {
		return none
	}
	return unitSpread(Spread{Median: 100 * s.Median, Min: 100 * s.Min, Max: 100 * s.Max, N: s.N}, 1, "%", "")
}

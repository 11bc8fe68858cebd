package gatereport

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/meshbench/meshbench/reports/gate"
	"github.com/meshbench/meshbench/reports/result"
)

// notAvailable stands for a figure that could not be computed (a row
// without a single paired repeat).
const notAvailable = "n/a"

// cells are the rendered columns of one decision row.
type cells struct {
	metric, group, base, candidate, change, threshold, verdict string
}

// headers returns the column titles, the change column naming the
// confidence.
func headers(r *gate.Result) cells {
	return cells{"metric", "group", "base", "candidate",
		fmt.Sprintf("change [%s CI]", percent(r.Confidence)), "threshold", "verdict"}
}

// rowCells renders a row's columns; a row without pairs has no figures.
func rowCells(r *gate.Result, row gate.Row) cells {
	if len(row.Pairs) == 0 {
		return cells{metric: row.Metric, group: row.Group, base: notAvailable, candidate: notAvailable,
			change: notAvailable, threshold: threshold(row, r.MinEffect), verdict: verdictNeeded(row)}
	}
	return cells{
		metric:    row.Metric,
		group:     row.Group,
		base:      value(row.Metric, row.BaseMedian, false),
		candidate: value(row.Metric, row.CandidateMedian, false),
		change:    change(row),
		threshold: threshold(row, r.MinEffect),
		verdict:   verdictNeeded(row),
	}
}

func (c cells) list() []string {
	return []string{c.metric, c.group, c.base, c.candidate, c.change, c.threshold, c.verdict}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// value renders an amount of a metric in its unit, or n/a.
func value(metric string, v float64, signed bool) string {
	if !finite(v) {
		return notAvailable
	}
	return gate.FormatValue(metric, v, signed)
}

// pctChange renders a ratio as a signed percentage change ("+3.2%").
func pctChange(ratio float64) string {
	if !finite(ratio) {
		return notAvailable
	}
	return signedPct((ratio - 1) * 100)
}

func signedPct(p float64) string {
	if math.Abs(p) < 0.05 {
		p = 0 // not "-0.0%"
	}
	return fmt.Sprintf("%+.1f%%", p)
}

// percent renders a fraction as a percentage without needless digits:
// 0.95 is "95%", 0.975 "97.5%".
func percent(f float64) string {
	return strconv.FormatFloat(math.Round(f*1e6)/1e4, 'f', -1, 64) + "%"
}

// change renders a row's estimate: the median change and its interval
// ("+3.2% [+1.0%, +5.1%]", or "+12 µs [+3, +20]" for an absolute row).
func change(row gate.Row) string {
	iv := row.Estimate
	f := func(v float64) string { return value(row.Metric, v, true) }
	if row.Relative {
		f = pctChange
	}
	if !finite(iv.Median) {
		return notAvailable
	}
	if !finite(iv.Low) || !finite(iv.High) {
		return f(iv.Median)
	}
	mid, lo, hi := f(iv.Median), f(iv.Low), f(iv.High)
	if !row.Relative {
		// The unit once: "+12 µs [+3, +20]".
		if _, unit, ok := strings.Cut(mid, " "); ok {
			lo, hi = strings.TrimSuffix(lo, " "+unit), strings.TrimSuffix(hi, " "+unit)
		}
	}
	return fmt.Sprintf("%s [%s, %s]", mid, lo, hi)
}

// threshold renders the bound a row was judged against, in the direction
// in which the metric worsens: a relative threshold below the minimum
// effect is judged at the minimum effect, as gate.Evaluate does.
func threshold(row gate.Row, minEffect float64) string {
	if row.Relative {
		t := math.Max(row.Threshold, minEffect) * 100
		if row.LowerIsWorse {
			return "≥ " + signedPct(-t)
		}
		return "≤ " + signedPct(t)
	}
	if row.LowerIsWorse {
		return "≥ " + value(row.Metric, -row.Threshold, true)
	}
	return "≤ " + value(row.Metric, row.Threshold, true)
}

// worseBound is the threshold as a value on the axis of the row's paired
// values: a percentage change for a relative row, a difference for an
// absolute one.
func worseBound(row gate.Row, minEffect float64) float64 {
	t := row.Threshold
	if row.Relative {
		t = math.Max(t, minEffect) * 100
	}
	if row.LowerIsWorse {
		return -t
	}
	return t
}

// verdict renders a row's verdict, the bad ones in capitals.
func verdict(row gate.Row) string {
	switch row.Verdict {
	case gate.Regression, gate.Inconclusive:
		return strings.ToUpper(row.Verdict)
	}
	return row.Verdict
}

// verdictNeeded is verdict with, for an inconclusive row, the paired
// repeats that would likely settle it.
func verdictNeeded(row gate.Row) string {
	v := verdict(row)
	if row.Verdict != gate.Inconclusive {
		return v
	}
	switch {
	case row.RepeatsNeeded >= gate.MaxRepeatsNeeded:
		return fmt.Sprintf("%s (≥%d repeats)", v, gate.MaxRepeatsNeeded)
	case row.RepeatsNeeded > 0:
		return fmt.Sprintf("%s (~%d repeats)", v, row.RepeatsNeeded)
	}
	return v + " (on the threshold)"
}

// needed says how many paired repeats would likely settle an
// inconclusive row.
func needed(row gate.Row) string {
	switch {
	case row.RepeatsNeeded >= gate.MaxRepeatsNeeded:
		return fmt.Sprintf("%d or more paired repeats would be needed", gate.MaxRepeatsNeeded)
	case row.RepeatsNeeded > 0:
		return fmt.Sprintf("~%d paired repeats would likely settle it", row.RepeatsNeeded)
	}
	return "more repeats are unlikely to settle it"
}

// rowName names a row as its JUnit test case and its chart category.
func rowName(row gate.Row) string { return row.Metric + " " + row.Group }

// shortHash returns the first 8 hex digits of a binary's SHA-256, or "".
func shortHash(b *result.Binary) string {
	if b == nil || b.SHA256 == "" {
		return ""
	}
	return b.SHA256[:min(8, len(b.SHA256))]
}

// build names one build of the result: its short hash when its binary is
// known, else the proxy value.
func build(name string, b *result.Binary) string {
	if h := shortHash(b); h != "" {
		return h
	}
	return name
}

// summary is the final line of the terminal table (without "gate: ").
func summary(r *gate.Result) string {
	var what string
	if r.Identical {
		what = "identical binaries"
		if h := shortHash(r.BaseBinary); h != "" {
			what += " (" + h + ")"
		}
	} else {
		what = fmt.Sprintf("base %s vs candidate %s", build(r.Base, r.BaseBinary), build(r.Candidate, r.CandidateBinary))
	}
	return fmt.Sprintf("%s (exit %d): %s, %d repeats, confidence %s",
		strings.ToUpper(cmpOr(r.Verdict, "unknown")), r.Exit, what, r.Repeats, percent(r.Confidence))
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

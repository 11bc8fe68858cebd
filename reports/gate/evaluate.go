package gate

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/meshbench/meshbench/reports"
	"github.com/meshbench/meshbench/reports/result"
)

// Verdicts, from best to worst.
const (
	Improvement  = "improvement"
	OK           = "ok"
	Inconclusive = "inconclusive"
	Regression   = "regression"
)

// Exit codes of a gate.
const (
	ExitOK         = 0
	ExitRegression = 1
	ExitBadInput   = 2
	// ExitInconclusive is the default; Spec.InconclusiveExit changes it.
	ExitInconclusive = 3
)

// Result is a gate's decision (gate.json).
type Result struct {
	Spec     string `json:"spec"`
	Run      string `json:"run"`
	Scenario string `json:"scenario"`
	Platform string `json:"platform"`
	// Base and Candidate are the compared proxy values; their binaries as
	// run.json recorded them.
	Base            string         `json:"base"`
	Candidate       string         `json:"candidate"`
	BaseBinary      *result.Binary `json:"base_binary,omitempty"`
	CandidateBinary *result.Binary `json:"candidate_binary,omitempty"`
	// Identical is true when both binaries have the same SHA-256.
	Identical  bool    `json:"identical"`
	Repeats    int     `json:"repeats"`
	Confidence float64 `json:"confidence"`
	MinEffect  float64 `json:"min_effect"`
	Group      string  `json:"group"`
	// Variants are the compared variants, by name (their labels without
	// the proxy).
	Variants []string `json:"variants"`
	// Verdict is the worst verdict of Rows (and regression when a
	// candidate cell failed where the base's did not); Exit the exit code
	// it maps to.
	Verdict string `json:"verdict"`
	Exit    int    `json:"exit"`
	// Rows decide: one per metric (pooled) or per metric and variant.
	Rows []Row `json:"rows"`
	// Detail has every metric per variant when Rows are pooled.
	Detail []Row `json:"detail,omitempty"`
	// Failures are candidate cells that failed where the base's
	// succeeded: each is a regression.
	Failures []string `json:"failures,omitempty"`
	// Problems are pairs left out and why (a failed or unsustained cell
	// of either build, no baseline cell).
	Problems []string `json:"problems,omitempty"`
	// Refused are the invalid cells the gate would not judge (their load
	// generator could not keep its schedule), each with its reason. A run
	// with refused cells does not pass: a verdict of ok or improvement
	// becomes inconclusive.
	Refused []string `json:"refused,omitempty"`
}

// Row is the verdict on one metric over one group of variants.
type Row struct {
	Metric string `json:"metric"`
	// Group is a variant's name, or "all" for a pooled row.
	Group string `json:"group"`
	Unit  string `json:"unit"`
	// Relative tells how Estimate and Threshold read: a ratio
	// candidate/base and a fraction, or a difference candidate-base and
	// an amount in Unit.
	Relative     bool    `json:"relative"`
	Threshold    float64 `json:"threshold"`
	LowerIsWorse bool    `json:"lower_is_worse"`
	// Pairs are the per-repeat paired values.
	Pairs []Pair `json:"pairs"`
	// Estimate is the median of the paired ratios (or differences) and
	// its bootstrap interval.
	Estimate Interval `json:"estimate"`
	// BaseMedian and CandidateMedian are the medians of the metric over
	// the repeats of each build (for a pooled row, over every variant).
	BaseMedian      float64 `json:"base_median"`
	CandidateMedian float64 `json:"candidate_median"`
	Verdict         string  `json:"verdict"`
	Reason          string  `json:"reason"`
	// RepeatsNeeded, for an inconclusive row, estimates the paired
	// repeats that would likely settle it (0: the change sits on the
	// threshold, more repeats are unlikely to help).
	RepeatsNeeded int `json:"repeats_needed,omitempty"`
}

// Pair is one repeat of one variant (or, pooled, of every variant).
type Pair struct {
	Repeat    int     `json:"repeat"`
	Variant   string  `json:"variant,omitempty"`
	Base      float64 `json:"base"`
	Candidate float64 `json:"candidate"`
	// Value is Candidate/Base for a relative threshold, Candidate-Base
	// for an absolute one; a pooled pair's is the geometric mean of its
	// variants' ratios (the mean of their differences).
	Value float64 `json:"value"`
}

// comparison is one variant as both builds ran it.
type comparison struct {
	name            string
	base, candidate *reports.Variant
	baseline        *reports.Variant
}

// Evaluate judges a finished run against a spec. It fails when the run
// cannot be judged at all: incomplete, or without a single variant that
// both builds ran.
func Evaluate(run *reports.Run, s *Spec) (*Result, error) {
	if run.Info.Incomplete {
		return nil, fmt.Errorf("run %s is incomplete (%s): a gate judges finished runs only", run.Dir, cmp.Or(run.Info.Reason, "not finished"))
	}
	res := &Result{
		Spec: s.File, Run: run.Dir, Scenario: run.Info.Scenario, Platform: run.Info.Platform,
		Base: s.Base, Candidate: s.Candidate, Repeats: run.Info.Repeats,
		Confidence: s.Confidence, MinEffect: s.MinEffectRatio, Group: s.Group,
	}
	if b, ok := run.Info.Binaries[s.Base]; ok {
		res.BaseBinary = &b
	}
	if b, ok := run.Info.Binaries[s.Candidate]; ok {
		res.CandidateBinary = &b
	}
	res.Identical = res.BaseBinary != nil && res.CandidateBinary != nil && res.BaseBinary.SHA256 == res.CandidateBinary.SHA256
	comps, err := pairVariants(run, s)
	if err != nil {
		return nil, err
	}
	for _, c := range comps {
		res.Variants = append(res.Variants, c.name)
		res.Failures = append(res.Failures, failures(c)...)
		res.Refused = append(res.Refused, refused(c)...)
	}
	slices.Sort(res.Refused)
	res.Refused = slices.Compact(res.Refused)
	for _, m := range s.Metrics {
		per := make([]Row, 0, len(comps))
		for _, c := range comps {
			row := newRow(m, c.name)
			row.Pairs = pairs(c, m, &res.Problems)
			per = append(per, row)
		}
		if s.Group == GroupVariant {
			for i := range per {
				judge(&per[i], s)
			}
			res.Rows = append(res.Rows, per...)
			continue
		}
		pooled := newRow(m, "all")
		pooled.Pairs = pool(per, m.IsRelative())
		for i := range per {
			judge(&per[i], s)
		}
		judge(&pooled, s)
		medians(&pooled, per)
		res.Rows = append(res.Rows, pooled)
		res.Detail = append(res.Detail, per...)
	}
	slices.Sort(res.Problems)
	res.Problems = slices.Compact(res.Problems)
	res.Verdict = OK
	for _, r := range res.Rows {
		res.Verdict = worse(res.Verdict, r.Verdict)
	}
	if len(res.Failures) > 0 {
		res.Verdict = Regression
	}
	if res.Verdict == OK && allImproved(res.Rows) {
		res.Verdict = Improvement
	}
	if len(res.Refused) > 0 && (res.Verdict == OK || res.Verdict == Improvement) {
		res.Verdict = Inconclusive // a run with invalid cells does not pass
	}
	switch res.Verdict {
	case Regression:
		res.Exit = ExitRegression
	case Inconclusive:
		res.Exit = s.ExitInconclusive()
	default:
		res.Exit = ExitOK
	}
	return res, nil
}

func newRow(m MetricSpec, group string) Row {
	return Row{Metric: m.Metric, Group: group, Unit: Unit(m.Metric), Relative: m.IsRelative(),
		Threshold: m.Threshold, LowerIsWorse: LowerIsWorse(m.Metric)}
}

// pairVariants finds every variant of the base build that the spec
// selects and its candidate twin (same labels but the proxy), with the
// baseline variant of the same load.
func pairVariants(run *reports.Run, s *Spec) ([]comparison, error) {
	var out []comparison
	var seen []string
	for _, v := range run.Variants {
		if v.Label(reports.LabelProxy) != s.Base || !selected(v, s.Variants) {
			continue
		}
		seen = append(seen, v.ID)
		var twin *reports.Variant
		for _, w := range run.Variants {
			if w.Label(reports.LabelProxy) == s.Candidate && sameBut(v.Labels, w.Labels, reports.LabelProxy) {
				twin = w
				break
			}
		}
		if twin == nil {
			continue
		}
		base, _ := reports.BaselineFor(run, v)
		out = append(out, comparison{name: variantName(run, v), base: v, candidate: twin, baseline: base})
	}
	if len(out) == 0 {
		proxies := map[string]bool{}
		for _, v := range run.Variants {
			proxies[v.Label(reports.LabelProxy)] = true
		}
		return nil, fmt.Errorf("run %s has no variant that both %s and %s ran%s (its proxies: %s)",
			run.Dir, s.Base, s.Candidate, selectedHint(s, seen), strings.Join(slices.Sorted(maps.Keys(proxies)), ", "))
	}
	return out, nil
}

func selectedHint(s *Spec, seen []string) string {
	if len(s.Variants) == 0 {
		return ""
	}
	return fmt.Sprintf(" among the variants the spec selects (%d of the base's match)", len(seen))
}

// selected reports whether v matches one of the selectors (or there are
// none).
func selected(v *reports.Variant, sel []map[string]string) bool {
	if len(sel) == 0 {
		return true
	}
	for _, s := range sel {
		ok := true
		for k, want := range s {
			if v.Label(k) != want {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func sameBut(a, b map[string]string, skip string) bool {
	for k, v := range a {
		if k != skip && b[k] != v {
			return false
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && k != skip {
			return false
		}
	}
	return true
}

// variantName is the variant's label values without the proxy, in the
// run's dimension order ("sidecar-http1"); a run whose only dimension is
// the proxy has one variant, "all".
func variantName(run *reports.Run, v *reports.Variant) string {
	var parts []string
	for _, d := range run.Info.Dimensions {
		if d != reports.LabelProxy {
			parts = append(parts, v.Label(d))
		}
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, "-")
}

// cellAt returns the variant's repeat r, or nil.
func cellAt(v *reports.Variant, r int) *reports.Cell {
	if v == nil {
		return nil
	}
	for _, c := range v.Cells {
		if c.Info.Repeat == r {
			return c
		}
	}
	return nil
}

// repeats returns the repeat numbers either build of c ran.
func repeats(c comparison) []int {
	var out []int
	for _, v := range []*reports.Variant{c.base, c.candidate} {
		for _, cell := range v.Cells {
			out = append(out, cell.Info.Repeat)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// failures lists the candidate's cells that failed where the base's
// repeat has a result.
func failures(c comparison) []string {
	var out []string
	for _, r := range repeats(c) {
		b, k := cellAt(c.base, r), cellAt(c.candidate, r)
		if b != nil && b.OK() && (k == nil || !k.OK()) && (k == nil || k.Info.Status != result.StatusNA) {
			why := "no result"
			if k != nil && k.Problem != "" {
				why, _, _ = strings.Cut(k.Problem, "\n")
			}
			out = append(out, fmt.Sprintf("%s repeat %d: the candidate's cell failed (%s) where the base's succeeded", c.name, r, why))
		}
	}
	return out
}

// pairs returns the paired values of one metric of one variant, and adds
// to problems why a repeat was left out.
func pairs(c comparison, m MetricSpec, problems *[]string) []Pair {
	var out []Pair
	for _, r := range repeats(c) {
		b, k := cellAt(c.base, r), cellAt(c.candidate, r)
		if b == nil || k == nil || !b.OK() || !k.OK() {
			if b != nil && !b.OK() && b.Info.Status != result.StatusNA {
				*problems = append(*problems, fmt.Sprintf("%s repeat %d left out: the base's cell has no result (%s)", c.name, r, firstLine(b.Problem)))
			}
			continue // a candidate's failure is a regression (failures)
		}
		if why := unusable(b, k); why != "" {
			*problems = append(*problems, fmt.Sprintf("%s repeat %d left out: %s", c.name, r, why))
			continue
		}
		var bl *reports.Cell
		if needsBaseline(m.Metric) {
			bl = cellAt(c.baseline, r)
			if bl == nil || !bl.OK() {
				*problems = append(*problems, fmt.Sprintf("%s repeat %d: no baseline cell for the added latency", c.name, r))
				continue
			}
			if why := unusable(bl); why != "" {
				*problems = append(*problems, fmt.Sprintf("%s repeat %d left out: the baseline's %s", c.name, r, why))
				continue
			}
		}
		if m.Metric == MetricMaxRate && (b.Result.Search == nil || k.Result.Search == nil) {
			*problems = append(*problems, fmt.Sprintf("%s repeat %d: no rate search in the cells: max_rate needs a scenario whose load.rate is {search: ...}", c.name, r))
			continue
		}
		bv, kv := value(m.Metric, b, bl), value(m.Metric, k, bl)
		p := Pair{Repeat: r, Variant: c.name, Base: bv, Candidate: kv}
		if m.IsRelative() {
			// A ratio (and the pooled geometric mean) needs both sides > 0;
			// an added latency ≤ 0 means the baseline cell was the slower.
			if !(bv > 0) || !(kv > 0) {
				*problems = append(*problems, fmt.Sprintf("%s repeat %d: %s of the base is %g and of the candidate %g, no ratio", c.name, r, m.Metric, bv, kv))
				continue
			}
			p.Value = kv / bv
		} else {
			p.Value = kv - bv
		}
		if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
			*problems = append(*problems, fmt.Sprintf("%s repeat %d: %s has no finite value", c.name, r, m.Metric))
			continue
		}
		out = append(out, p)
	}
	return out
}

// refused lists the invalid cells of a comparison (either build, or the
// baseline), with their reasons.
func refused(c comparison) []string {
	var out []string
	for _, v := range []*reports.Variant{c.base, c.candidate, c.baseline} {
		if v == nil {
			continue
		}
		for _, cell := range v.Cells {
			if cell.OK() && cell.Result.Invalid != "" {
				out = append(out, fmt.Sprintf("%s: %s", cell.Info.ID, cell.Result.Invalid))
			}
		}
	}
	return out
}

// unusable says why a pair of cells cannot be compared, or "".
func unusable(cells ...*reports.Cell) string {
	for _, c := range cells {
		if c.Result.Invalid != "" {
			return fmt.Sprintf("cell %s is invalid (refused)", c.Info.ID)
		}
		if r := c.Result; r.RequestedRate > 0 && !r.Sustained {
			return fmt.Sprintf("cell %s did not sustain its rate (%s)", c.Info.ID, cmp.Or(r.Reason, "fell behind"))
		}
	}
	return ""
}

func needsBaseline(metric string) bool {
	return metric == MetricP50 || metric == MetricP99 || metric == MetricP999
}

// value is one cell's figure of a metric; baseline is the baseline cell
// of the same repeat for the added latencies.
func value(metric string, c, baseline *reports.Cell) float64 {
	r := c.Result
	switch metric {
	case MetricP50:
		return float64(r.Latency.P50 - baseline.Result.Latency.P50)
	case MetricP99:
		return float64(r.Latency.P99 - baseline.Result.Latency.P99)
	case MetricP999:
		return float64(r.Latency.P999 - baseline.Result.Latency.P999)
	case MetricCPU:
		return r.Resources.Total.CPUMicrosPerRequest
	case MetricRSS:
		return float64(r.Resources.Total.RSSPeakBytes)
	case MetricAnon:
		return float64(r.Resources.Total.AnonPeakBytes)
	case MetricErrors:
		if r.Requests == 0 {
			return 0
		}
		return float64(r.Errors.Total) / float64(r.Requests)
	case MetricRate:
		return r.AchievedRate
	case MetricMaxRate:
		if r.Search == nil {
			return math.NaN()
		}
		return r.Search.MaxRate
	}
	return math.NaN()
}

// pool combines the variants' pairs repeat by repeat: the geometric mean
// of the ratios (the mean of the differences) of the variants that have
// the repeat.
func pool(rows []Row, relative bool) []Pair {
	byRepeat := map[int][]Pair{}
	for _, row := range rows {
		for _, p := range row.Pairs {
			byRepeat[p.Repeat] = append(byRepeat[p.Repeat], p)
		}
	}
	var out []Pair
	for _, r := range slices.Sorted(maps.Keys(byRepeat)) {
		ps := byRepeat[r]
		var sum, bsum, ksum float64
		for _, p := range ps {
			if relative {
				sum += math.Log(p.Value)
			} else {
				sum += p.Value
			}
			bsum += p.Base
			ksum += p.Candidate
		}
		n := float64(len(ps))
		v := sum / n
		if relative {
			v = math.Exp(v)
		}
		out = append(out, Pair{Repeat: r, Base: bsum / n, Candidate: ksum / n, Value: v})
	}
	return out
}

// medians sets a pooled row's medians over every variant's pairs.
func medians(pooled *Row, per []Row) {
	var b, k []float64
	for _, row := range per {
		for _, p := range row.Pairs {
			b, k = append(b, p.Base), append(k, p.Candidate)
		}
	}
	if len(b) > 0 {
		pooled.BaseMedian, pooled.CandidateMedian = median(b), median(k)
	}
}

// judge sets a row's estimate and verdict.
func judge(row *Row, s *Spec) {
	var vals, b, k []float64
	for _, p := range row.Pairs {
		vals, b, k = append(vals, p.Value), append(b, p.Base), append(k, p.Candidate)
	}
	if len(vals) == 0 {
		// No figure at all: zeros (JSON has no NaN), read with the empty
		// Pairs.
		row.Verdict = Inconclusive
		row.Reason = fmt.Sprintf("no paired repeats, %d needed", s.MinPairs)
		row.RepeatsNeeded = s.MinPairs
		return
	}
	row.BaseMedian, row.CandidateMedian = median(b), median(k)
	if len(vals) < s.MinPairs {
		row.Estimate = BootstrapMedian(vals, s.Confidence, s.Resamples)
		row.Verdict = Inconclusive
		row.Reason = fmt.Sprintf("%d paired repeats, %d needed", len(vals), s.MinPairs)
		row.RepeatsNeeded = s.MinPairs
		return
	}
	iv := BootstrapMedian(vals, s.Confidence, s.Resamples)
	row.Estimate = iv
	// Worse and better bounds, in the direction in which the metric
	// worsens: ratios above 1+t (or below 1-t when lower is worse).
	var worseBound, betterBound float64
	if row.Relative {
		t := math.Max(row.Threshold, s.MinEffectRatio)
		if row.LowerIsWorse {
			worseBound, betterBound = 1-t, 1+s.MinEffectRatio
		} else {
			worseBound, betterBound = 1+t, 1-s.MinEffectRatio
		}
	} else {
		if row.LowerIsWorse {
			worseBound, betterBound = -row.Threshold, row.Threshold
		} else {
			worseBound, betterBound = row.Threshold, -row.Threshold
		}
	}
	// In the direction in which the metric worsens, higher is worse.
	lo, hi, wb, bb := iv.Low, iv.High, worseBound, betterBound
	if row.LowerIsWorse {
		lo, hi, wb, bb = -iv.High, -iv.Low, -worseBound, -betterBound
	}
	switch {
	case lo > wb:
		row.Verdict = Regression
		row.Reason = fmt.Sprintf("the whole interval is worse than the threshold %s", describeBound(row, worseBound))
	case hi < bb:
		row.Verdict = Improvement
		row.Reason = fmt.Sprintf("the whole interval is better than %s", describeBound(row, betterBound))
	case hi <= wb:
		row.Verdict = OK
		row.Reason = fmt.Sprintf("the whole interval is within the threshold %s", describeBound(row, worseBound))
	default:
		row.Verdict = Inconclusive
		row.RepeatsNeeded = RepeatsNeeded(iv, len(vals), worseBound)
		if row.RepeatsNeeded == 0 {
			row.Reason = fmt.Sprintf("the interval straddles the threshold %s and the median sits on it: more repeats are unlikely to settle it", describeBound(row, worseBound))
		} else {
			row.Reason = fmt.Sprintf("the interval straddles the threshold %s: about %d paired repeats would likely settle it", describeBound(row, worseBound), row.RepeatsNeeded)
		}
	}
}

// describeBound renders a bound as the spec wrote it: a ratio as a
// percentage change, a difference in the metric's unit.
func describeBound(row *Row, bound float64) string {
	if row.Relative {
		return fmt.Sprintf("%+.1f%%", (bound-1)*100)
	}
	return FormatValue(row.Metric, bound, true)
}

// FormatValue renders an amount of a metric in its unit; signed adds a
// sign (for differences).
func FormatValue(metric string, v float64, signed bool) string {
	sign := ""
	if signed && v >= 0 {
		sign = "+"
	}
	switch metric {
	case MetricP50, MetricP99, MetricP999:
		return fmt.Sprintf("%s%.0f µs", sign, v)
	case MetricCPU:
		return fmt.Sprintf("%s%.1f µs/req", sign, v)
	case MetricRSS, MetricAnon:
		return fmt.Sprintf("%s%.1f MiB", sign, v/(1<<20))
	case MetricErrors:
		return fmt.Sprintf("%s%.3f%%", sign, v*100)
	default:
		return fmt.Sprintf("%s%.1f req/s", sign, v)
	}
}

// worse returns the worse of two verdicts.
func worse(a, b string) string {
	rank := map[string]int{Improvement: 0, OK: 1, Inconclusive: 2, Regression: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}

func allImproved(rows []Row) bool {
	for _, r := range rows {
		if r.Verdict != Improvement {
			return false
		}
	}
	return len(rows) > 0
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return cmp.Or(l, "no result")
}

package gate

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshbench/meshbench/internal/yamlstrict"
)

// Metrics a spec may judge.
const (
	// MetricP50, MetricP99 and MetricP999 are the latency a variant adds
	// over the baseline cell of the same repeat (no proxy), in µs.
	MetricP50  = "p50"
	MetricP99  = "p99"
	MetricP999 = "p99.9"
	// MetricCPU is the proxies' CPU per request (user + system, summed
	// over every proxy of the path), in µs.
	MetricCPU = "cpu_per_request"
	// MetricRSS is the sum of the proxies' peak resident memory, in bytes.
	MetricRSS = "rss_peak"
	// MetricAnon is the sum of the proxies' peak anonymous resident
	// memory (heap and stacks, without the binary's file-backed pages,
	// whose residency depends on the page cache), in bytes.
	MetricAnon = "anon_rss_peak"
	// MetricErrors is the share of requests that failed (0 to 1).
	MetricErrors = "error_rate"
	// MetricRate is the achieved request rate; lower is worse.
	MetricRate = "achieved_rate"
	// MetricMaxRate is the highest rate that meets the scenario's
	// objective; it needs a scenario whose load searches for it.
	MetricMaxRate = "max_rate"
)

// Metrics returns every metric name, in the order the documentation lists
// them.
func Metrics() []string {
	return []string{MetricP50, MetricP99, MetricP999, MetricCPU, MetricRSS, MetricAnon, MetricErrors, MetricRate, MetricMaxRate}
}

// Defaults of a spec's fields left out.
const (
	DefaultBase             = "reference@base"
	DefaultCandidate        = "reference@candidate"
	DefaultConfidence       = 0.95
	DefaultMinEffect        = 0.01
	DefaultResamples        = 10000
	DefaultMinPairs         = 3
	DefaultInconclusiveExit = 3
)

// Ways to group the variants of a metric.
const (
	// GroupPooled judges each metric once over every compared variant: a
	// repeat's ratio is the geometric mean of its variants' ratios (the
	// mean of their differences, for absolute thresholds).
	GroupPooled = "pooled"
	// GroupVariant judges each metric once per variant.
	GroupVariant = "variant"
)

// Spec is a gate specification (GATE.yaml).
type Spec struct {
	// Scenario is the A/B scenario `meshbench gate --base-proxy ...
	// --candidate-proxy ...` runs: a file (relative to the spec) or a
	// built-in name. A scenario that names no builds runs every
	// reference cell once per build.
	Scenario string `yaml:"scenario"`
	// Quick runs the scenario's quick form; Repeats overrides its
	// repeats (0 keeps them).
	Quick   bool `yaml:"quick"`
	Repeats int  `yaml:"repeats"`
	// Base and Candidate are the proxy values compared (default
	// reference@base and reference@candidate).
	Base      string `yaml:"base"`
	Candidate string `yaml:"candidate"`
	// Variants select the compared variants by their labels: a variant
	// is compared when it matches every key of one entry. Empty compares
	// every variant that both builds ran.
	Variants []map[string]string `yaml:"variants"`
	// Group is pooled (default) or variant.
	Group string `yaml:"group"`
	// Confidence of the bootstrap interval (default 0.95).
	Confidence float64 `yaml:"confidence"`
	// MinEffect is the smallest relative change ever called a regression
	// or an improvement ("1%", the default): a significant change smaller
	// than it passes.
	MinEffect string `yaml:"min_effect"`
	// Resamples is the number of bootstrap resamples (default 10000).
	Resamples int `yaml:"resamples"`
	// MinPairs is the fewest paired repeats a verdict other than
	// inconclusive needs (default 3).
	MinPairs int `yaml:"min_pairs"`
	// InconclusiveExit is the exit code when no metric regressed but one
	// is inconclusive: 3 (default), 0 to pass, or 1 to fail.
	InconclusiveExit *int `yaml:"inconclusive_exit"`
	// Metrics lists what is judged.
	Metrics []MetricSpec `yaml:"metrics"`

	// File is where the spec was read from.
	File string `yaml:"-"`
	// MinEffectRatio is MinEffect as a fraction.
	MinEffectRatio float64 `yaml:"-"`
}

// MetricSpec is one judged metric and its threshold: exactly one of
// Relative ("5%": the candidate may be at most 5% worse) and Absolute (in
// the metric's unit: "100us" for latency and CPU, "4MiB" for memory,
// "0.1%" for the error rate, "50/s" for the rate).
type MetricSpec struct {
	Metric   string `yaml:"metric"`
	Relative string `yaml:"relative"`
	Absolute string `yaml:"absolute"`

	// Threshold is the parsed threshold: a fraction for a relative one,
	// else in the metric's unit (µs, bytes, share, requests/s).
	Threshold float64 `yaml:"-"`
}

// IsRelative reports whether the threshold is relative.
func (m MetricSpec) IsRelative() bool { return m.Relative != "" }

// LowerIsWorse reports whether a smaller value of the metric is worse.
func LowerIsWorse(metric string) bool { return metric == MetricRate || metric == MetricMaxRate }

// Unit is the unit of a metric's values.
func Unit(metric string) string {
	switch metric {
	case MetricP50, MetricP99, MetricP999:
		return "µs"
	case MetricCPU:
		return "µs/req"
	case MetricRSS, MetricAnon:
		return "bytes"
	case MetricErrors:
		return "share"
	default:
		return "req/s"
	}
}

// Load reads and validates a spec file.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the gate spec: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a spec; file names it in errors, each of
// which names the line and the field.
func Parse(file string, data []byte) (*Spec, error) {
	var s Spec
	pos, err := yamlstrict.Decode(file, data, &s)
	if err != nil {
		return nil, err
	}
	s.File = file
	v := &specValidator{file: file, pos: pos}
	v.check(&s)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &s, nil
}

// ScenarioPath resolves Scenario: a path relative to the spec's directory
// when such a file exists, else the name as given (a built-in).
func (s *Spec) ScenarioPath() string {
	if s.Scenario == "" || filepath.IsAbs(s.Scenario) || s.File == "" {
		return s.Scenario
	}
	p := filepath.Join(filepath.Dir(s.File), s.Scenario)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return s.Scenario
}

// ExitInconclusive is the exit code of an inconclusive gate.
func (s *Spec) ExitInconclusive() int {
	if s.InconclusiveExit == nil {
		return DefaultInconclusiveExit
	}
	return *s.InconclusiveExit
}

type specValidator struct {
	file string
	pos  yamlstrict.Positions
	errs yamlstrict.Errors
}

func (v *specValidator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, v.pos.Errorf(v.file, path, format, args...))
}

func (v *specValidator) check(s *Spec) {
	if s.Base == "" {
		s.Base = DefaultBase
	}
	if s.Candidate == "" {
		s.Candidate = DefaultCandidate
	}
	if s.Base == s.Candidate {
		v.fail("candidate", "%q: the same as base", s.Candidate)
	}
	if s.Repeats < 0 {
		v.fail("repeats", "%d: want 0 (the scenario's) or more", s.Repeats)
	}
	if s.Group == "" {
		s.Group = GroupPooled
	}
	if s.Group != GroupPooled && s.Group != GroupVariant {
		v.fail("group", "%q: want %s or %s", s.Group, GroupPooled, GroupVariant)
	}
	if s.Confidence == 0 {
		s.Confidence = DefaultConfidence
	}
	if !(s.Confidence >= 0.5 && s.Confidence < 1) {
		v.fail("confidence", "%v: want at least 0.5 and below 1 (0.95 is a 95%% interval)", s.Confidence)
	}
	s.MinEffectRatio = DefaultMinEffect
	if s.MinEffect != "" {
		f, err := parsePercent(s.MinEffect)
		if err != nil || f < 0 || f >= 1 {
			v.fail("min_effect", "%q: want a percentage from 0%% to below 100%%, such as 1%%", s.MinEffect)
		}
		s.MinEffectRatio = f
	}
	if s.Resamples == 0 {
		s.Resamples = DefaultResamples
	}
	if s.Resamples < 1000 || s.Resamples > 1000000 {
		v.fail("resamples", "%d: want 1000 to 1000000", s.Resamples)
	}
	if s.MinPairs == 0 {
		s.MinPairs = DefaultMinPairs
	}
	if s.MinPairs < 2 {
		v.fail("min_pairs", "%d: want at least 2", s.MinPairs)
	}
	if e := s.InconclusiveExit; e != nil && *e != 0 && *e != 1 && *e != 3 {
		v.fail("inconclusive_exit", "%d: want 3 (inconclusive), 0 (pass) or 1 (fail)", *e)
	}
	for i, sel := range s.Variants {
		if len(sel) == 0 {
			v.fail(fmt.Sprintf("variants[%d]", i), "empty: name at least one label")
		}
		if _, ok := sel["proxy"]; ok {
			v.fail(fmt.Sprintf("variants[%d].proxy", i), "the proxy is what the gate compares (base and candidate): select by the other labels")
		}
	}
	if len(s.Metrics) == 0 {
		v.fail("metrics", "at least one metric is required (known: %s)", strings.Join(Metrics(), ", "))
	}
	seen := map[string]bool{}
	for i := range s.Metrics {
		v.metric(&s.Metrics[i], fmt.Sprintf("metrics[%d]", i), seen)
	}
}

func (v *specValidator) metric(m *MetricSpec, p string, seen map[string]bool) {
	switch {
	case m.Metric == "":
		v.fail(p+".metric", "required (known: %s)", strings.Join(Metrics(), ", "))
		return
	case !slices.Contains(Metrics(), m.Metric):
		v.fail(p+".metric", "%q: unknown metric (known: %s)", m.Metric, strings.Join(Metrics(), ", "))
		return
	case seen[m.Metric]:
		v.fail(p+".metric", "%q: listed twice", m.Metric)
		return
	}
	seen[m.Metric] = true
	switch {
	case m.Relative != "" && m.Absolute != "":
		v.fail(p, "relative and absolute are exclusive: give one threshold")
	case m.Relative != "":
		f, err := parsePercent(m.Relative)
		if err != nil || f < 0 || f >= 10 {
			v.fail(p+".relative", "%q: want a percentage such as 5%%", m.Relative)
		}
		if LowerIsWorse(m.Metric) && f >= 1 {
			v.fail(p+".relative", "%q: %s cannot fall by 100%% or more", m.Relative, m.Metric)
		}
		m.Threshold = f
	case m.Absolute != "":
		f, err := parseAbsolute(m.Metric, m.Absolute)
		if err != nil {
			v.fail(p+".absolute", "%q: %v", m.Absolute, err)
		}
		m.Threshold = f
	default:
		v.fail(p, "a threshold is required: relative (such as 5%%) or absolute (%s)", absoluteHint(m.Metric))
	}
}

// parsePercent parses "5%" as 0.05.
func parsePercent(s string) (float64, error) {
	num, ok := strings.CutSuffix(strings.TrimSpace(s), "%")
	if !ok {
		return 0, fmt.Errorf("no %% sign")
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("not a number")
	}
	return f / 100, nil
}

func absoluteHint(metric string) string {
	switch metric {
	case MetricP50, MetricP99, MetricP999, MetricCPU:
		return "a duration such as 100us"
	case MetricRSS, MetricAnon:
		return "a size such as 4MiB"
	case MetricErrors:
		return "a share of requests such as 0.1%"
	default:
		return "a rate such as 50/s"
	}
}

// parseAbsolute parses an absolute threshold in the metric's unit.
func parseAbsolute(metric, s string) (float64, error) {
	s = strings.TrimSpace(s)
	var f float64
	var err error
	switch metric {
	case MetricP50, MetricP99, MetricP999, MetricCPU:
		var d time.Duration
		d, err = time.ParseDuration(s)
		f = float64(d) / float64(time.Microsecond)
	case MetricRSS, MetricAnon:
		f, err = parseBytes(s)
	case MetricErrors:
		f, err = parsePercent(s)
	default:
		num, ok := strings.CutSuffix(s, "/s")
		if !ok {
			return 0, fmt.Errorf("want %s", absoluteHint(metric))
		}
		f, err = strconv.ParseFloat(num, 64)
	}
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("want %s", absoluteHint(metric))
	}
	if f <= 0 {
		return 0, fmt.Errorf("must be more than 0")
	}
	return f, nil
}

// parseBytes parses a size: a number of bytes, or with B, KiB, MiB, GiB,
// kB, MB or GB.
func parseBytes(s string) (float64, error) {
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return f * mult, nil
}

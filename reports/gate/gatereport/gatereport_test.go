package gatereport

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/meshbench/meshbench/reports/gate"
	"github.com/meshbench/meshbench/reports/plots"
	"github.com/meshbench/meshbench/reports/result"
)

const mib = 1 << 20

// pairs returns paired values, the base always 100 (or base) and the
// candidate base×value (relative) or base+value (absolute).
func pairs(relative bool, base float64, values ...float64) []gate.Pair {
	var out []gate.Pair
	for i, v := range values {
		c := base * v
		if !relative {
			c = base + v
		}
		out = append(out, gate.Pair{Repeat: i, Base: base, Candidate: c, Value: v})
	}
	return out
}

func sample() *gate.Result {
	return &gate.Result{
		Spec: "GATE.yaml", Run: "runs/ab-1", Scenario: "mesh-ab", Platform: "local",
		Base: "reference@base", Candidate: "reference@candidate",
		BaseBinary:      &result.Binary{Path: "/bin/base", SHA256: "1a2b3c4d5e6f77889900aabbccddeeff00112233445566778899aabbccddeeff", Bytes: 10},
		CandidateBinary: &result.Binary{Path: "/bin/cand", SHA256: "99887766554433221100ffeeddccbbaa99887766554433221100ffeeddccbbaa", Bytes: 11},
		Repeats:         5, Confidence: 0.95, MinEffect: 0.01, Group: gate.GroupPooled,
		Variants: []string{"sidecar-http1", "sidecar-http2"},
		Verdict:  gate.Regression, Exit: gate.ExitRegression,
		Rows: []gate.Row{
			{
				Metric: gate.MetricP99, Group: "all", Unit: "µs", Relative: true, Threshold: 0.05,
				Pairs:    pairs(true, 800, 1.08, 1.10, 1.12, 1.09, 1.11),
				Estimate: gate.Interval{Median: 1.10, Low: 1.08, High: 1.12}, BaseMedian: 800, CandidateMedian: 880,
				Verdict: gate.Regression, Reason: "the whole interval is worse than the threshold +5.0%",
			},
			{
				Metric: gate.MetricCPU, Group: "all", Unit: "µs/req", Relative: true, Threshold: 0.05,
				Pairs:    pairs(true, 12.5, 1.00, 1.01, 1.02, 0.99, 1.01),
				Estimate: gate.Interval{Median: 1.01, Low: 0.99, High: 1.02}, BaseMedian: 12.5, CandidateMedian: 12.6,
				Verdict: gate.OK, Reason: "the whole interval is within the threshold +5.0%",
			},
			{
				Metric: gate.MetricRate, Group: "all", Unit: "req/s", Relative: true, Threshold: 0.05, LowerIsWorse: true,
				Pairs:    pairs(true, 1000, 0.92, 0.97, 0.95, 0.99, 0.94),
				Estimate: gate.Interval{Median: 0.95, Low: 0.92, High: 0.99}, BaseMedian: 1000, CandidateMedian: 950,
				Verdict: gate.Inconclusive, RepeatsNeeded: 12,
				Reason: "the interval straddles the threshold -5.0%: about 12 paired repeats would likely settle it",
			},
			{
				Metric: gate.MetricRSS, Group: "all", Unit: "bytes", Threshold: 4 * mib,
				Pairs:    pairs(false, 40*mib, 1*mib, 0.5*mib, 1.5*mib, 1*mib, 1.2*mib),
				Estimate: gate.Interval{Median: 1 * mib, Low: 0.5 * mib, High: 1.5 * mib}, BaseMedian: 40 * mib, CandidateMedian: 41 * mib,
				Verdict: gate.OK, Reason: "the whole interval is within the threshold +4.0 MiB",
			},
		},
		Detail: []gate.Row{{
			Metric: gate.MetricP99, Group: "sidecar-http1", Unit: "µs", Relative: true, Threshold: 0.05,
			Pairs:    pairs(true, 700, 1.07, 1.09, 1.11),
			Estimate: gate.Interval{Median: 1.09, Low: 1.07, High: 1.11}, BaseMedian: 700, CandidateMedian: 763,
			Verdict: gate.Regression, Reason: "the whole interval is worse than the threshold +5.0%",
		}},
		Failures: []string{"sidecar-http2 repeat 3: the candidate's cell failed (exit status 1) where the base's succeeded"},
		Problems: []string{"sidecar-http1 repeat 4 left out: cell c7 did not sustain its rate (fell behind)"},
	}
}

func TestTerminal(t *testing.T) {
	var b bytes.Buffer
	Terminal(&b, sample())
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	find := func(prefix string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Errorf("no line starts with %q:\n%s", prefix, out)
		return ""
	}
	// Each row's figures, in its own line.
	for prefix, wants := range map[string][]string{
		"p99 ":             {"all", "800 µs", "880 µs", "+10.0% [+8.0%, +12.0%]", "≤ +5.0%", "REGRESSION"},
		"cpu_per_request ": {"12.5 µs/req", "12.6 µs/req", "+1.0% [-1.0%, +2.0%]", "≤ +5.0%", "ok"},
		"achieved_rate ":   {"1000.0 req/s", "950.0 req/s", "-5.0% [-8.0%, -1.0%]", "≥ -5.0%", "INCONCLUSIVE"},
		"rss_peak ":        {"40.0 MiB", "41.0 MiB", "+1.0 MiB [+0.5, +1.5]", "≤ +4.0 MiB", "ok"},
	} {
		l := find(prefix)
		for _, w := range wants {
			if !strings.Contains(l, w) {
				t.Errorf("line %q lacks %q", l, w)
			}
		}
	}
	if h := find("metric "); !strings.Contains(h, "change [95% CI]") {
		t.Errorf("header %q lacks the confidence", h)
	}
	for _, w := range []string{"sidecar-http2 repeat 3: the candidate's cell failed", "sidecar-http1 repeat 4 left out", "p99 all: the whole interval is worse",
		"achieved_rate all: the interval straddles the threshold -5.0%: about 12 paired repeats"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "sidecar-http1  ") {
		t.Errorf("terminal shows the per-variant detail:\n%s", out)
	}
	last := lines[len(lines)-1]
	if want := "gate: REGRESSION (exit 1): base 1a2b3c4d vs candidate 99887766, 5 repeats, confidence 95%"; last != want {
		t.Errorf("last line\n%q, want\n%q", last, want)
	}
	// The table (not the free-text reasons) fits in 100 columns.
	for _, l := range lines[:5] {
		if n := utf8.RuneCountInString(l); n > 100 {
			t.Errorf("table line is %d columns wide: %q", n, l)
		}
	}

	// A reason that does not say how many repeats gets the estimate.
	r := sample()
	r.Rows[2].Reason = "the interval straddles the threshold"
	b.Reset()
	Terminal(&b, r)
	if !strings.Contains(b.String(), "achieved_rate all: the interval straddles the threshold; ~12 paired repeats would likely settle it\n") {
		t.Errorf("inconclusive note lacks the repeats needed:\n%s", b.String())
	}

	r = sample()
	r.Identical, r.Verdict, r.Exit, r.Failures = true, gate.OK, 0, nil
	b.Reset()
	Terminal(&b, r)
	if !strings.HasSuffix(b.String(), "gate: OK (exit 0): identical binaries (1a2b3c4d), 5 repeats, confidence 95%\n") {
		t.Errorf("identical binaries: last line wrong:\n%s", b.String())
	}
}

func TestMarkdown(t *testing.T) {
	var b bytes.Buffer
	if err := Markdown(&b, sample(), "gate-ratios.png"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, w := range []string{
		"### meshbench gate: ❌ regression\n",
		"`reference@candidate` (`99887766`)", "`reference@base` (`1a2b3c4d`)", "scenario `mesh-ab`", "platform `local`",
		"5 repeats", "95% confidence", "minimum effect 1%", "pooled over 2 variants (sidecar-http1, sidecar-http2)",
		"| metric | group | base | candidate | change [95% CI] | threshold | verdict |\n| --- | --- | --- | --- | --- | --- | --- |\n",
		"| p99 | all | 800 µs | 880 µs | +10.0% [+8.0%, +12.0%] | ≤ +5.0% | **REGRESSION** |\n",
		"| cpu_per_request | all | 12.5 µs/req | 12.6 µs/req | +1.0% [-1.0%, +2.0%] | ≤ +5.0% | ok |\n",
		"| achieved_rate | all | 1000.0 req/s | 950.0 req/s | -5.0% [-8.0%, -1.0%] | ≥ -5.0% | **INCONCLUSIVE (~12 repeats)** |\n",
		"| rss_peak | all | 40.0 MiB | 41.0 MiB | +1.0 MiB [+0.5, +1.5] | ≤ +4.0 MiB | ok |\n",
		"- sidecar-http2 repeat 3: the candidate's cell failed",
		"- sidecar-http1 repeat 4 left out",
		"\n![paired ratios](gate-ratios.png)\n",
		"**How to read this.**", "bootstrap confidence interval",
	} {
		if !strings.Contains(md, w) {
			t.Errorf("gate.md lacks %q:\n%s", w, md)
		}
	}
	open, close := strings.Index(md, "<details>"), strings.Index(md, "</details>")
	detail := strings.Index(md, "| p99 | sidecar-http1 | 700 µs | 763 µs |")
	if open < 0 || close < 0 || !(open < detail && detail < close) {
		t.Errorf("the per-variant row is not inside <details> (%d < %d < %d):\n%s", open, detail, close, md)
	}
	// The summary needs a blank line after it for GitHub to render the
	// table inside.
	if !strings.Contains(md, "</summary>\n\n| metric") {
		t.Errorf("no blank line between <summary> and the detail table:\n%s", md)
	}

	r := sample()
	r.Detail, r.Failures, r.Problems, r.Verdict = nil, nil, nil, gate.Improvement
	b.Reset()
	if err := Markdown(&b, r, ""); err != nil {
		t.Fatal(err)
	}
	md = b.String()
	if !strings.HasPrefix(md, "### meshbench gate: 🚀 improvement\n") {
		t.Errorf("improvement heading wrong:\n%s", md)
	}
	for _, no := range []string{"<details>", "![", "Candidate failures", "Left out"} {
		if strings.Contains(md, no) {
			t.Errorf("gate.md without detail, plot, failures or problems has %q:\n%s", no, md)
		}
	}

	if err := Markdown(failWriter{}, sample(), ""); err == nil || !strings.Contains(err.Error(), "markdown") {
		t.Errorf("a failing writer gave %v", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

type junitReport struct {
	Suites []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Skipped  int    `xml:"skipped,attr"`
		Output   string `xml:"system-out"`
		Cases    []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Failure   *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func parseJUnit(t *testing.T, r *gate.Result) junitReport {
	t.Helper()
	var b bytes.Buffer
	if err := JUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var v junitReport
	if err := xml.Unmarshal(b.Bytes(), &v); err != nil {
		t.Fatalf("JUnit does not parse: %v\n%s", err, b.String())
	}
	if len(v.Suites) != 1 {
		t.Fatalf("%d test suites, want 1:\n%s", len(v.Suites), b.String())
	}
	return v
}

func TestJUnit(t *testing.T) {
	v := parseJUnit(t, sample())
	s := v.Suites[0]
	var fails, skips int
	for _, c := range s.Cases {
		if c.Failure != nil {
			fails++
		}
		if c.Skipped != nil {
			skips++
		}
		if c.Classname != "gate" {
			t.Errorf("case %q has class %q", c.Name, c.Classname)
		}
	}
	// 4 rows and 1 failed cell; the regression row and the failed cell
	// fail, the inconclusive row is skipped.
	if s.Name != "meshbench-gate" || s.Tests != 5 || len(s.Cases) != 5 || s.Failures != 2 || fails != 2 || s.Skipped != 1 || skips != 1 {
		t.Errorf("suite %q: %d tests (%d cases), %d failures (%d), %d skipped (%d); want 5, 2, 1",
			s.Name, s.Tests, len(s.Cases), s.Failures, fails, s.Skipped, skips)
	}
	c := s.Cases[0]
	if c.Name != "p99 all" || c.Failure == nil || !strings.Contains(c.Failure.Message, "worse than the threshold") ||
		!strings.Contains(c.Failure.Text, "+10.0% [+8.0%, +12.0%]") {
		t.Errorf("regression case: %+v", c)
	}
	if c := s.Cases[2]; c.Name != "achieved_rate all" || c.Skipped == nil || !strings.Contains(c.Skipped.Message, "12 paired repeats") {
		t.Errorf("inconclusive case: %+v", c)
	}
	if c := s.Cases[4]; c.Failure == nil || !strings.Contains(c.Name, "sidecar-http2 repeat 3") {
		t.Errorf("failed-cell case: %+v", c)
	}
	if !strings.Contains(s.Output, "repeat 4 left out") {
		t.Errorf("suite output lacks the problems: %q", s.Output)
	}

	// A gate that fails on inconclusive verdicts fails the row.
	r := sample()
	r.Rows = r.Rows[1:] // no regression
	r.Failures, r.Verdict, r.Exit = nil, gate.Inconclusive, 1
	s = parseJUnit(t, r).Suites[0]
	if s.Tests != 3 || s.Failures != 1 || s.Skipped != 0 {
		t.Errorf("inconclusive with exit 1: %d tests, %d failures, %d skipped; want 3, 1, 0", s.Tests, s.Failures, s.Skipped)
	}
	r.Exit = 3
	s = parseJUnit(t, r).Suites[0]
	if s.Failures != 0 || s.Skipped != 1 {
		t.Errorf("inconclusive with exit 3: %d failures, %d skipped; want 0, 1", s.Failures, s.Skipped)
	}
}

func TestPlot(t *testing.T) {
	png, svg, err := Plot(sample())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 1000 {
		t.Errorf("not a PNG: %d bytes starting %q", len(png), png[:min(8, len(png))])
	}
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG: %v", err)
			}
			break
		}
	}
	// Every decision row is a category, the absolute one on its own axis.
	for _, w := range []string{">p99 all<", ">cpu_per_request all<", ">achieved_rate all<", ">rss_peak all<", "(MiB)", "(%)", ">threshold<"} {
		if !bytes.Contains(svg, []byte(w)) {
			t.Errorf("SVG lacks %s", w)
		}
	}
	if bytes.Contains(svg, []byte("sidecar-http1")) {
		t.Error("the plot shows a per-variant detail row")
	}

	r := sample()
	for i := range r.Rows {
		r.Rows[i].Pairs = nil
	}
	if _, _, err := Plot(r); !errors.Is(err, plots.ErrNoData) {
		t.Errorf("rows without pairs: %v, want ErrNoData", err)
	}
}

func TestWriteDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gate")
	r := sample()
	paths, err := WriteDir(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		if filepath.Dir(p) != dir {
			t.Errorf("%s written outside %s", p, dir)
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v, %d bytes", p, err, fi.Size())
		}
		names = append(names, filepath.Base(p))
	}
	slices.Sort(names)
	if want := []string{"gate-ratios.png", "gate-ratios.svg", "gate.json", "gate.junit.xml", "gate.md"}; !slices.Equal(names, want) {
		t.Errorf("wrote %v, want %v", names, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 5 {
		t.Errorf("%d entries in %s (temporary files left?)", len(entries), dir)
	}
	md, _ := os.ReadFile(filepath.Join(dir, "gate.md"))
	if !bytes.Contains(md, []byte("![paired ratios](gate-ratios.png)")) {
		t.Errorf("gate.md does not show the plot:\n%s", md)
	}
	png, _ := os.ReadFile(filepath.Join(dir, "gate-ratios.png"))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Error("gate-ratios.png is not a PNG")
	}

	data, err := os.ReadFile(filepath.Join(dir, "gate.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("{\n  \"")) {
		t.Errorf("gate.json is not indented:\n%.80s", data)
	}
	var back gate.Result
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Verdict != r.Verdict || back.Exit != r.Exit || back.Repeats != r.Repeats || back.Scenario != r.Scenario ||
		back.CandidateBinary == nil || back.CandidateBinary.SHA256 != r.CandidateBinary.SHA256 ||
		len(back.Rows) != len(r.Rows) || len(back.Detail) != 1 || !slices.Equal(back.Failures, r.Failures) {
		t.Errorf("gate.json decodes to %+v, want %+v", back, *r)
	}
	for i := range r.Rows {
		g, w := back.Rows[i], r.Rows[i]
		if g.Metric != w.Metric || g.Verdict != w.Verdict || g.Estimate != w.Estimate || g.RepeatsNeeded != w.RepeatsNeeded ||
			!slices.Equal(g.Pairs, w.Pairs) {
			t.Errorf("row %d decodes to %+v, want %+v", i, g, w)
		}
	}
}

// A row without a single pair has zero figures (the gate's figures are
// always finite): it reads n/a, and the images are left out when nothing
// can be plotted.
func TestWriteDirNoPairs(t *testing.T) {
	r := sample()
	r.Rows = r.Rows[:1]
	row := &r.Rows[0]
	row.Pairs, row.Estimate = nil, gate.Interval{}
	row.BaseMedian, row.CandidateMedian = 0, 0
	row.Verdict, row.Reason, row.RepeatsNeeded = gate.Inconclusive, "no paired repeats, 3 needed", 3
	r.Detail = nil
	dir := t.TempDir()
	paths, err := WriteDir(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 3 {
		t.Errorf("wrote %v, want gate.json, gate.md and gate.junit.xml", paths)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "gate.json"))
	var back gate.Result
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Rows[0].Verdict != gate.Inconclusive || back.Rows[0].RepeatsNeeded != 3 {
		t.Errorf("row decodes to %+v", back.Rows[0])
	}
	md, _ := os.ReadFile(filepath.Join(dir, "gate.md"))
	if bytes.Contains(md, []byte("![")) || !bytes.Contains(md, []byte("| p99 | all | n/a | n/a | n/a | ≤ +5.0% | **INCONCLUSIVE (~3 repeats)** |")) {
		t.Errorf("gate.md of a row without pairs:\n%s", md)
	}
}

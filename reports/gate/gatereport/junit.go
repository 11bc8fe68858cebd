package gatereport

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/meshbench/meshbench/reports/gate"
)

// Name and class of the JUnit report.
const (
	junitSuite     = "meshbench-gate"
	junitClassname = "gate"
)

// JUnit writes r as a JUnit XML report: one test suite, meshbench-gate,
// with a test case per decision row ("<metric> <group>"): a regression is
// a failure, an inconclusive row is skipped (a failure when the gate
// fails on an inconclusive verdict: exit 1), and every failed cell of the
// candidate is one more failed test case. The pairs left out are the
// suite's system-out.
func JUnit(w io.Writer, r *gate.Result) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr,omitempty"`
		Text    string `xml:",chardata"`
	}
	type skipped struct {
		Message string `xml:"message,attr"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Failure   *failure `xml:"failure,omitempty"`
		Skipped   *skipped `xml:"skipped,omitempty"`
		Output    string   `xml:"system-out,omitempty"`
	}
	type testsuite struct {
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Skipped  int        `xml:"skipped,attr"`
		Cases    []testcase `xml:"testcase"`
		Output   string     `xml:"system-out,omitempty"`
	}
	type testsuites struct {
		XMLName xml.Name    `xml:"testsuites"`
		Name    string      `xml:"name,attr"`
		Suites  []testsuite `xml:"testsuite"`
	}
	s := testsuite{Name: junitSuite, Output: strings.Join(r.Problems, "\n")}
	inconclusiveFails := r.Verdict == gate.Inconclusive && r.Exit == gate.ExitRegression
	for _, row := range r.Rows {
		tc := testcase{Name: rowName(row), Classname: junitClassname, Output: figures(r, row)}
		switch row.Verdict {
		case gate.Regression:
			tc.Failure = &failure{Message: row.Reason, Type: gate.Regression, Text: tc.Output}
			tc.Output = ""
		case gate.Inconclusive:
			if inconclusiveFails {
				tc.Failure = &failure{Message: row.Reason, Type: gate.Inconclusive, Text: tc.Output}
			} else {
				tc.Skipped = &skipped{Message: row.Reason + " (" + tc.Output + ")"}
			}
			tc.Output = ""
		}
		s.Cases = append(s.Cases, tc)
	}
	for _, f := range r.Failures {
		name, _, _ := strings.Cut(f, ":")
		s.Cases = append(s.Cases, testcase{
			Name: "candidate cell " + name, Classname: junitClassname,
			Failure: &failure{Message: f, Type: "failed cell", Text: f},
		})
	}
	for _, tc := range s.Cases {
		s.Tests++
		switch {
		case tc.Failure != nil:
			s.Failures++
		case tc.Skipped != nil:
			s.Skipped++
		}
	}
	out := testsuites{Name: fmt.Sprintf("meshbench gate: %s vs %s", r.Candidate, r.Base), Suites: []testsuite{s}}
	b, err := xml.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the gate's JUnit report: %w", err)
	}
	b = append([]byte(xml.Header), append(b, '\n')...)
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("writing the gate's JUnit report: %w", err)
	}
	return nil
}

// figures is a row's figures on one line.
func figures(r *gate.Result, row gate.Row) string {
	c := rowCells(r, row)
	return fmt.Sprintf("base %s, candidate %s, change %s (%s CI), threshold %s, %d paired repeats",
		c.base, c.candidate, c.change, percent(r.Confidence), c.threshold, len(row.Pairs))
}

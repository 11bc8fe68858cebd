package gatereport

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/meshbench/meshbench/internal/junit"
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
	s := junit.Suite{Name: junitSuite, Output: strings.Join(append(slices.Clone(r.Refused), r.Problems...), "\n")}
	inconclusiveFails := r.Verdict == gate.Inconclusive && r.Exit == gate.ExitRegression
	for _, row := range r.Rows {
		tc := junit.Case{Name: rowName(row), Classname: junitClassname, Output: figures(r, row)}
		switch row.Verdict {
		case gate.Regression:
			tc.Failure = &junit.Failure{Message: row.Reason, Type: gate.Regression, Text: tc.Output}
			tc.Output = ""
		case gate.Inconclusive:
			if inconclusiveFails {
				tc.Failure = &junit.Failure{Message: row.Reason, Type: gate.Inconclusive, Text: tc.Output}
			} else {
				tc.Skipped = &junit.Skipped{Message: row.Reason + " (" + tc.Output + ")"}
			}
			tc.Output = ""
		}
		s.Cases = append(s.Cases, tc)
	}
	for _, f := range r.Failures {
		name, _, _ := strings.Cut(f, ":")
		s.Cases = append(s.Cases, junit.Case{
			Name: "candidate cell " + name, Classname: junitClassname,
			Failure: &junit.Failure{Message: f, Type: "failed cell", Text: f},
		})
	}
	b, err := junit.Suites{Name: fmt.Sprintf("meshbench gate: %s vs %s", r.Candidate, r.Base), Suites: []junit.Suite{s}}.Marshal()
	if err != nil {
		return fmt.Errorf("encoding the gate's JUnit report: %w", err)
	}
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

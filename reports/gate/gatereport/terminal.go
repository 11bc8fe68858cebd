package gatereport

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/meshbench/meshbench/reports/gate"
)

// Terminal writes the verdict table of r for a terminal: one line per
// decision row (metric, group, the medians of both builds, the change
// with its confidence interval, the threshold and the verdict), the
// reasons of the rows that did not pass, the candidate's failed cells and
// the pairs left out, then a final line with the verdict and the exit
// code. Write errors are the writer's to report (a terminal has no use
// for them).
func Terminal(w io.Writer, r *gate.Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(headers(r).list(), "\t"))
	for _, row := range r.Rows {
		c := rowCells(r, row)
		c.verdict = verdict(row) // the repeats needed follow, below: 100 columns
		fmt.Fprintln(tw, strings.Join(c.list(), "\t"))
	}
	tw.Flush()
	for _, row := range r.Rows {
		switch row.Verdict {
		case gate.Regression:
			fmt.Fprintf(w, "  %s: %s\n", rowName(row), row.Reason)
		case gate.Inconclusive:
			note := row.Reason
			if !strings.Contains(note, "repeats") { // gate's reasons say how many
				note = strings.TrimPrefix(note+"; ", "; ") + needed(row)
			}
			fmt.Fprintf(w, "  %s: %s\n", rowName(row), note)
		}
	}
	if len(r.Failures) > 0 {
		fmt.Fprintf(w, "\ncandidate failures (each is a regression):\n")
		for _, f := range r.Failures {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
	if len(r.Refused) > 0 {
		fmt.Fprintf(w, "\nrefused (invalid cells: the load generator could not keep its schedule; the run cannot pass):\n")
		for _, c := range r.Refused {
			fmt.Fprintf(w, "  %s\n", c)
		}
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(w, "\nleft out:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	fmt.Fprintf(w, "\ngate: %s\n", summary(r))
}

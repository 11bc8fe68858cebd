// Package reports owns the results of scenario runs: the schema of
// run.json and result.json, loading a results directory, statistics over
// repeats, comparisons with the baseline cell of the same run, plots made
// with gonum/plot, the HTML and Markdown reports, and exports to fortio's
// JSON and the Service Mesh Performance (SMP) format.
//
// Load reads a run directory (FindRun also accepts a scenario's directory
// and picks its newest run) into a Run: every cell with its result and
// decoded HdrHistogram, and the cells grouped into Variants with their
// Stats over repeats (median, min, max) and their merged histogram.
// Compare pairs every variant with the baseline of the same run, repeat by
// repeat. Write turns a Run into report.html, report.md, plots/ and
// export/; Figures, Tables, WriteMarkdown, WriteHTML, Fortio and SMP are
// the pieces it is made of.
//
// The rules the reports follow: percentiles are never averaged (repeats
// are summarised by their median and spread; distributions are merged
// histograms), the spread over repeats is always shown, and comparisons
// are made only between cells of one run.
package reports

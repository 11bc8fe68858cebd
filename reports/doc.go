// Package reports owns the results of scenario runs: the schema of
// run.json and result.json, loading a results directory, statistics over
// repeats, comparisons with the baseline cell of the same run, plots made
// with gonum/plot, the HTML and Markdown reports, and exports to fortio's
// JSON and the Service Mesh Performance (SMP) format.
package reports

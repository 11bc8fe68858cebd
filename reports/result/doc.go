// Package result is the schema of what a run writes: run.json (Run, with
// its cells) and each cell's result.json (CellResult), and the layout of a
// results directory. Everything that writes results imports it; the report
// renderer (package reports) only reads them.
package result

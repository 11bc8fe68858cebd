package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/meshbench/meshbench/reports"
)

const reportUsage = "meshbench report DIR [--out DIR]"

// runReport writes the report of a run: report.html, report.md, plots and
// exports. DIR is a run directory (it holds run.json) or a scenario's
// directory, whose newest run is taken. The last line on stdout is the
// path of report.html.
func runReport(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("report", reportUsage, stderr)
	out := fs.String("out", "", "where to write the report (default DIR/report)")
	// The run directory may come before or after the flags.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "meshbench report: want one run directory, got %d arguments\n", len(pos))
		fs.Usage()
		return 2
	}
	dir, newest, err := reports.FindRun(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "meshbench report: %v\n", err)
		if errors.Is(err, reports.ErrNotRun) {
			fmt.Fprintln(stderr, "meshbench report: give a run directory (it holds run.json, written by meshbench run) or a scenario's directory of runs")
		}
		return 1
	}
	if newest {
		fmt.Fprintf(stderr, "meshbench report: %s is not a run; using its newest run %s\n", pos[0], dir)
	}
	run, err := reports.Load(dir)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench report: %v\n", err)
		return 1
	}
	if *out == "" {
		*out = filepath.Join(dir, "report")
	}
	o, err := reports.Write(run, *out)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench report: %v\n", err)
		return 1
	}
	if n := len(run.Missing()); n > 0 {
		fmt.Fprintf(stderr, "meshbench report: %d of %d cells have no result; the report lists them\n", n, len(run.Cells))
	}
	if run.Info.Incomplete {
		fmt.Fprintf(stderr, "meshbench report: the run is incomplete: %s\n", run.Info.Reason)
	}
	fmt.Fprintf(stdout, "markdown: %s\n", o.Markdown)
	fmt.Fprintf(stdout, "plots:    %d files in %s\n", len(o.Plots), filepath.Join(o.Dir, reports.PlotsDir))
	fmt.Fprintf(stdout, "exports:  %d files in %s\n", len(o.Exports), filepath.Join(o.Dir, reports.ExportDir))
	fmt.Fprintln(stdout, o.HTML)
	return 0
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"github.com/meshbench/meshbench/reports"
	"github.com/meshbench/meshbench/reports/gate"
	"github.com/meshbench/meshbench/reports/gate/gatereport"
	"github.com/meshbench/meshbench/scenarios"
)

const gateUsage = `meshbench gate --baseline GATE.yaml RUN_DIR [--out DIR]
       meshbench gate --baseline GATE.yaml --base-proxy PATH --candidate-proxy PATH [--out DIR] [run flags]`

// runGate is `meshbench gate`: the regression gate. It judges a finished
// A/B run, or first runs the spec's scenario with the two builds, and
// writes gate.md, gate.json, the plot of the paired ratios and JUnit XML.
// The last line on stdout is the directory of the gate's files. Exit
// codes: 0 ok (or improvement), 1 regression, 2 bad input, 3
// inconclusive (the spec's inconclusive_exit, or --inconclusive-exit),
// 130 interrupted.
func runGate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("gate", gateUsage, stderr)
	specPath := fs.String("baseline", "", "the gate spec `GATE.yaml`: metrics, thresholds, variants, confidence (docs/gate.md)")
	gateOut := fs.String("report", "", "write gate.md, gate.json, the plot and JUnit XML to `DIR` (default RUN_DIR/gate)")
	basePath := fs.String("base-proxy", "", "run the spec's scenario first, with this meshproxy `PATH` as the base build")
	candPath := fs.String("candidate-proxy", "", "... and this meshproxy `PATH` as the candidate build")
	inconclusive := fs.Int("inconclusive-exit", -1, "exit `CODE` of an inconclusive verdict: 3, 0 (pass) or 1 (fail) (default: the spec's, else 3)")
	var rf runFlags
	rf.register(fs)
	positional, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "meshbench gate: "+format+"\n", a...)
		return gate.ExitBadInput
	}
	if *specPath == "" {
		fs.Usage()
		return bad("--baseline GATE.yaml is required")
	}
	switch *inconclusive {
	case -1, 0, 1, 3:
	default:
		return bad("--inconclusive-exit %d: want 3, 0 or 1", *inconclusive)
	}
	spec, err := gate.Load(*specPath)
	if err != nil {
		return bad("%v", err)
	}
	if *inconclusive >= 0 {
		spec.InconclusiveExit = inconclusive
	}
	running := *basePath != "" || *candPath != ""
	var runDir string
	switch {
	case running && (*basePath == "" || *candPath == ""):
		return bad("--base-proxy and --candidate-proxy go together")
	case running && len(positional) > 0:
		return bad("give RUN_DIR or --base-proxy/--candidate-proxy, not both")
	case running:
		dir, code := gateRun(ctx, spec, *basePath, *candPath, &rf, stderr)
		if dir == "" || code == 2 || code == 130 {
			return code
		}
		runDir = dir
	case flagSet(fs, "out"):
		return bad("--out is the results root of a run the gate makes (with --base-proxy and --candidate-proxy); the gate's own files go to --report DIR")
	case len(positional) != 1:
		fs.Usage()
		return bad("want one RUN_DIR (a finished A/B run), or --base-proxy and --candidate-proxy to run one")
	default:
		dir, newest, err := reports.FindRun(positional[0])
		if err != nil {
			return bad("%v", err)
		}
		if newest {
			fmt.Fprintf(stderr, "meshbench gate: %s is not a run; using its newest run %s\n", positional[0], dir)
		}
		runDir = dir
	}
	run, err := reports.Load(runDir)
	if err != nil {
		return bad("%v", err)
	}
	res, err := gate.Evaluate(run, spec)
	if err != nil {
		return bad("%v", err)
	}
	if *gateOut == "" {
		*gateOut = filepath.Join(runDir, "gate")
	}
	files, err := gatereport.WriteDir(*gateOut, res)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench gate: %v\n", err)
		return gate.ExitBadInput
	}
	gatereport.Terminal(stderr, res)
	for _, f := range files {
		if filepath.Base(f) == "gate.md" {
			fmt.Fprintf(stderr, "meshbench gate: %s\n", f)
		}
	}
	fmt.Fprintln(stdout, *gateOut)
	return res.Exit
}

// gateRun runs the spec's scenario with the two builds and returns the
// run's directory and the exit code of the run ("" and 2 when it could
// not start; a run with failed cells is still judged).
func gateRun(ctx context.Context, spec *gate.Spec, basePath, candPath string, rf *runFlags, stderr io.Writer) (string, int) {
	if spec.Scenario == "" {
		fmt.Fprintf(stderr, "meshbench gate: %s: scenario: required to run the gate (or judge a finished run: meshbench gate --baseline %s RUN_DIR)\n", spec.File, spec.File)
		return "", 2
	}
	if !rf.check("meshbench gate", stderr) || !rf.checkPlatform("meshbench gate", stderr) {
		return "", 2
	}
	baseBuild, ok1 := scenarios.ReferenceBuild(spec.Base)
	candBuild, ok2 := scenarios.ReferenceBuild(spec.Candidate)
	if !ok1 || !ok2 || baseBuild == "" || candBuild == "" {
		fmt.Fprintf(stderr, "meshbench gate: %s: base and candidate must be builds of the reference proxy (reference@NAME) to run them from --base-proxy and --candidate-proxy\n", spec.File)
		return "", 2
	}
	var builds buildFlag
	for _, b := range []struct{ flag, build, path string }{{"base", baseBuild, basePath}, {"candidate", candBuild, candPath}} {
		if err := builds.Set(b.build + "=" + b.path); err != nil {
			fmt.Fprintf(stderr, "meshbench gate: --%s-proxy: %v\n", b.flag, err)
			return "", 2
		}
	}
	sc, err := scenarios.Open(spec.ScenarioPath())
	if err != nil {
		fmt.Fprintf(stderr, "meshbench gate: %s: scenario: %v\n", spec.File, err)
		return "", 2
	}
	sc, binaries, err := applyBuilds(sc, &builds)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench gate: %v\n", err)
		return "", 2
	}
	if rf.repeat == 0 {
		rf.repeat = spec.Repeats
	}
	rf.quick = rf.quick || spec.Quick
	dir, _, code := rf.execute(ctx, "meshbench gate", sc, &builds, binaries, stderr)
	if code == 130 || errors.Is(ctx.Err(), context.Canceled) {
		fmt.Fprintln(stderr, "meshbench gate: interrupted: no verdict")
		return "", 130
	}
	return dir, code
}

// flagSet reports whether the command line set the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

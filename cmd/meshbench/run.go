package main

import (
	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/scenarios/platform"

	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/local"
	"github.com/meshbench/meshbench/scenarios/runner"
)

const runUsage = "meshbench run SCENARIO [--platform local|kind|kube] [--out DIR] [--repeat N] [--quick] [--dry-run] [--network 127.77] [--meshproxy PATH] [--proxy-binary NAME=PATH ...]"

// runFlags are the flags of `meshbench run` that `meshbench gate` shares
// when it runs its scenario.
type runFlags struct {
	platformName, out, meshproxy, network string
	engine                                string
	kf                                    kubeFlags
	repeat                                int
	quick, verbose                        bool
	sample                                time.Duration
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.platformName, "platform", "local", "where to run: local (processes on loopback addresses), kind (a kind cluster it creates) or kube (the cluster of --kubeconfig)")
	f.kf.register(fs)
	fs.StringVar(&f.out, "out", filepath.Join("out", "runs"), "results root `DIR`: the run goes to DIR/<scenario>/<timestamp>")
	fs.IntVar(&f.repeat, "repeat", 0, "repeat every variant `N` times (0: the scenario's repeats)")
	fs.BoolVar(&f.quick, "quick", false, "apply the scenario's quick overrides: a short load and fewer repeats")
	fs.StringVar(&f.network, "network", local.DefaultNetworkBase, "network `BASE` (two octets) of the local platform: node n gets BASE.(n+1).0/24")
	fs.StringVar(&f.meshproxy, "meshproxy", "", "meshproxy binary `PATH` (default: next to meshbench, else on PATH)")
	fs.DurationVar(&f.sample, "sample-interval", local.DefaultSampleInterval, "how often proxies' CPU and memory are read during the measured part")
	fs.BoolVar(&f.verbose, "verbose", false, "log what the platform does (debug level) on stderr")
	fs.StringVar(&f.engine, "engine", loadgen.EngineMeshbench, "load engine of every cell: meshbench, or fortio (fortio's runners; a cell fortio cannot run is n/a)")
}

// check validates the flags that need no scenario and no platform; verb
// prefixes errors.
func (f *runFlags) check(verb string, stderr io.Writer) bool {
	if f.repeat < 0 {
		fmt.Fprintf(stderr, "%s: --repeat %d: want 0 or more\n", verb, f.repeat)
		return false
	}
	if f.engine != loadgen.EngineMeshbench && f.engine != loadgen.EngineFortio {
		fmt.Fprintf(stderr, "%s: --engine %q: want meshbench or fortio\n", verb, f.engine)
		return false
	}
	if err := (local.Loopback{Base: f.network}).Check(); err != nil {
		fmt.Fprintf(stderr, "%s: --network: %v\n", verb, err)
		return false
	}
	return true
}

// checkPlatform validates --platform and what it needs, before a run (a
// dry run needs no cluster).
func (f *runFlags) checkPlatform(verb string, stderr io.Writer) bool {
	switch f.platformName {
	case "local", "kind":
	case "kube":
		if f.kf.image == "" {
			fmt.Fprintf(stderr, "%s: --platform kube needs --image: a meshbench image the cluster's nodes can pull (docs/kind.md)\n", verb)
			return false
		}
	default:
		fmt.Fprintf(stderr, "%s: --platform %q: want local, kind or kube\n", verb, f.platformName)
		return false
	}
	return true
}

// runRun is `meshbench run`: every cell of a scenario on a platform. The
// last line on stdout is the run's directory. Exit codes: 0 when every
// cell is done, 1 when a cell failed or the run could not be recorded, 2
// for bad flags or a bad scenario, 130 when interrupted.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", runUsage, stderr)
	var f runFlags
	f.register(fs)
	dryRun := fs.Bool("dry-run", false, "print the cells and what each deploys, then exit")
	var builds buildFlag
	fs.Var(&builds, "proxy-binary", "a build of the reference proxy as `NAME=PATH` (repeatable): the cells of proxy reference@NAME run it; a scenario that names no builds runs every reference cell once per build, side by side (an A/B run)")
	positional, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(positional) != 1 {
		fmt.Fprintln(stderr, "meshbench run: want exactly one SCENARIO (a file or a built-in name such as quick)")
		fs.Usage()
		return 2
	}
	if !f.check("meshbench run", stderr) {
		return 2
	}
	sc, err := scenarios.Open(positional[0])
	if err != nil {
		fmt.Fprintf(stderr, "meshbench run: %v\n", err)
		return 2
	}
	sc, binaries, err := applyBuilds(sc, &builds)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench run: %v\n", err)
		return 2
	}
	if *dryRun {
		// The local platform's addresses; a cluster's are known only
		// once its pods run: its plans are shown with references.
		var resolve scenarios.PlanResolver
		if f.platformName == "local" {
			resolve = local.Loopback{Base: f.network}.Resolver
		}
		if err := sc.Describe(stdout, scenarios.CellOptions{Quick: f.quick, Repeats: f.repeat}, resolve); err != nil {
			fmt.Fprintf(stderr, "meshbench run: %v\n", err)
			return 2
		}
		return 0
	}
	if !f.checkPlatform("meshbench run", stderr) {
		return 2
	}
	dir, _, code := f.execute(ctx, "meshbench run", sc, &builds, binaries, stderr)
	if dir != "" {
		fmt.Fprintln(stdout, dir)
	}
	return code
}

// execute runs a scenario with the flags' platform and returns the run's
// directory ("" when none was made), its RunInfo and the exit code of
// `meshbench run`.
func (f *runFlags) execute(ctx context.Context, verb string, sc *scenarios.Scenario, builds *buildFlag, binaries map[string]string, stderr io.Writer) (string, *result.Run, int) {
	self, proxyBin, err := locateBinaries(f.meshproxy)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", verb, err)
		return "", nil, 2
	}
	binaries[scenarios.ProxyReference] = proxyBin
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var p platform.Platform = local.New(local.Options{Meshbench: self, Meshproxy: proxyBin, Builds: builds.paths, Log: log, SampleInterval: f.sample, NetworkBase: f.network})
	if f.platformName != "local" {
		kp, cleanup, err := kubePlatform(ctx, f.platformName, f.kf, sc, self, proxyBin, builds, f.sample, log, stderr)
		defer cleanup()
		if err != nil {
			fmt.Fprintf(stderr, "%s: --platform %s: %v\n", verb, f.platformName, err)
			return "", nil, 1
		}
		p = kp
	}
	start := time.Now()
	o := runner.Options{Out: f.out, Repeats: f.repeat, Quick: f.quick, Platform: p, Progress: stderr, Log: log, Engine: f.engine}
	o.Binaries = usedBinaries(sc, binaries, o)
	dir, info, err := runner.Run(ctx, sc, o)
	return dir, info, summarize(stderr, info, err, time.Since(start))
}

// summarize prints how the run ended and returns the exit code.
func summarize(w io.Writer, info *result.Run, err error, took time.Duration) int {
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(w, "meshbench run: interrupted; the finished cells are kept and run.json is marked incomplete")
		return 130
	}
	if err != nil {
		fmt.Fprintf(w, "meshbench run: %v\n", err)
		return 1
	}
	var failed []string
	na := 0
	for _, c := range info.Cells {
		switch c.Status {
		case result.StatusDone:
		case result.StatusNA:
			na++
		default:
			failed = append(failed, c.ID)
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "meshbench run: %d of %d cells failed (%s); see their logs/ and run.json\n", len(failed), len(info.Cells), strings.Join(failed, ", "))
		return 1
	}
	if na > 0 {
		fmt.Fprintf(w, "meshbench run: %d cells done, %d not applicable (n/a: the proxy or the load engine lacks what the cell needs; see run.json) in %s\n", len(info.Cells)-na, na, took.Round(time.Second))
		return 0
	}
	fmt.Fprintf(w, "meshbench run: %d cells done in %s\n", len(info.Cells), took.Round(time.Second))
	return 0
}

// locateBinaries returns the paths of meshbench (this program) and meshproxy:
// flagPath if given, else the meshproxy next to this program, else the
// one on PATH.
func locateBinaries(flagPath string) (self, meshproxy string, err error) {
	self, err = os.Executable()
	if err != nil {
		return "", "", fmt.Errorf("locating the meshbench binary: %w", err)
	}
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", "", fmt.Errorf("--meshproxy: %w", err)
		}
		abs, err := filepath.Abs(flagPath)
		if err != nil {
			return "", "", fmt.Errorf("--meshproxy: %w", err)
		}
		return self, abs, nil
	}
	next := filepath.Join(filepath.Dir(self), "meshproxy")
	if st, err := os.Stat(next); err == nil && !st.IsDir() {
		return self, next, nil
	}
	if p, err := exec.LookPath("meshproxy"); err == nil {
		abs, err := filepath.Abs(p)
		if err == nil {
			return self, abs, nil
		}
	}
	return "", "", fmt.Errorf("meshproxy not found next to %s nor on PATH: build it (make build) or pass --meshproxy", self)
}

// parseInterspersed parses flags that may come before or after positional
// arguments, and returns the positional ones. When ok is false the verb
// returns code: 0 after --help, 2 after a usage error.
func parseInterspersed(fs *flag.FlagSet, args []string) (positional []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, 0, true
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// usedBinaries keeps the binaries of the proxy values some cell of the run
// uses.
func usedBinaries(sc *scenarios.Scenario, binaries map[string]string, o runner.Options) map[string]string {
	cells, err := sc.Cells(scenarios.CellOptions{Quick: o.Quick, Repeats: o.Repeats})
	if err != nil {
		return binaries
	}
	out := map[string]string{}
	for _, c := range cells {
		impl := c.Labels[scenarios.DimProxy]
		if impl == "" && c.Labels[scenarios.DimTopology] != scenarios.Baseline {
			impl = scenarios.ProxyReference
		}
		if path, ok := binaries[impl]; ok {
			out[impl] = path
		}
	}
	return out
}

package main

import (
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

const runUsage = "meshbench run SCENARIO [--platform local|kind|kube] [--out DIR] [--repeat N] [--quick] [--dry-run] [--network 127.77] [--meshproxy PATH]"

// runRun is `meshbench run`: every cell of a scenario on a platform. The
// last line on stdout is the run's directory. Exit codes: 0 when every
// cell is done, 1 when a cell failed or the run could not be recorded, 2
// for bad flags or a bad scenario, 130 when interrupted.
func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("run", runUsage, stderr)
	platformName := fs.String("platform", "local", "where to run: local (processes on loopback addresses), kind (a kind cluster it creates) or kube (the cluster of --kubeconfig)")
	var kf kubeFlags
	kf.register(fs)
	out := fs.String("out", filepath.Join("out", "runs"), "results root `DIR`: the run goes to DIR/<scenario>/<timestamp>")
	repeat := fs.Int("repeat", 0, "repeat every variant `N` times (0: the scenario's repeats)")
	quick := fs.Bool("quick", false, "apply the scenario's quick overrides: a short load and fewer repeats")
	dryRun := fs.Bool("dry-run", false, "print the cells and what each deploys, then exit")
	network := fs.String("network", local.DefaultNetworkBase, "network `BASE` (two octets) of the local platform: node n gets BASE.(n+1).0/24")
	meshproxy := fs.String("meshproxy", "", "meshproxy binary `PATH` (default: next to meshbench, else on PATH)")
	sample := fs.Duration("sample-interval", local.DefaultSampleInterval, "how often proxies' CPU and memory are read during the measured part")
	verbose := fs.Bool("verbose", false, "log what the platform does (debug level) on stderr")
	positional, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	if len(positional) != 1 {
		fmt.Fprintln(stderr, "meshbench run: want exactly one SCENARIO (a file or a built-in name such as quick)")
		fs.Usage()
		return 2
	}
	if *repeat < 0 {
		fmt.Fprintf(stderr, "meshbench run: --repeat %d: want 0 or more\n", *repeat)
		return 2
	}
	sc, err := scenarios.Open(positional[0])
	if err != nil {
		fmt.Fprintf(stderr, "meshbench run: %v\n", err)
		return 2
	}
	netw := local.Loopback{Base: *network}
	if err := netw.Check(); err != nil {
		fmt.Fprintf(stderr, "meshbench run: --network: %v\n", err)
		return 2
	}
	if *dryRun {
		// The local platform's addresses; a cluster's are known only
		// once its pods run: its plans are shown with references.
		var resolve scenarios.PlanResolver
		if *platformName == "local" {
			resolve = netw.Resolver
		}
		if err := sc.Describe(stdout, scenarios.CellOptions{Quick: *quick, Repeats: *repeat}, resolve); err != nil {
			fmt.Fprintf(stderr, "meshbench run: %v\n", err)
			return 2
		}
		return 0
	}
	switch *platformName {
	case "local", "kind":
	case "kube":
		if kf.image == "" {
			fmt.Fprintln(stderr, "meshbench run: --platform kube needs --image: a meshbench image the cluster's nodes can pull (docs/kind.md)")
			return 2
		}
	default:
		fmt.Fprintf(stderr, "meshbench run: --platform %q: want local, kind or kube\n", *platformName)
		return 2
	}
	self, proxyBin, err := binaries(*meshproxy)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench run: %v\n", err)
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	var p platform.Platform = local.New(local.Options{Meshbench: self, Meshproxy: proxyBin, Log: log, SampleInterval: *sample, NetworkBase: *network})
	if *platformName != "local" {
		kp, cleanup, err := kubePlatform(ctx, *platformName, kf, sc, self, proxyBin, *sample, log, stderr)
		defer cleanup()
		if err != nil {
			fmt.Fprintf(stderr, "meshbench run: --platform %s: %v\n", *platformName, err)
			return 1
		}
		p = kp
	}
	start := time.Now()
	dir, info, err := runner.Run(ctx, sc, runner.Options{
		Out: *out, Repeats: *repeat, Quick: *quick, Platform: p, Progress: stderr, Log: log,
	})
	code = summarize(stderr, info, err, time.Since(start))
	if dir != "" {
		fmt.Fprintln(stdout, dir)
	}
	return code
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
		fmt.Fprintf(w, "meshbench run: %d cells done, %d not applicable (n/a: the proxy lacks what the cell needs; see run.json) in %s\n", len(info.Cells)-na, na, took.Round(time.Second))
		return 0
	}
	fmt.Fprintf(w, "meshbench run: %d cells done in %s\n", len(info.Cells), took.Round(time.Second))
	return 0
}

// binaries returns the paths of meshbench (this program) and meshproxy:
// flagPath if given, else the meshproxy next to this program, else the
// one on PATH.
func binaries(flagPath string) (self, meshproxy string, err error) {
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

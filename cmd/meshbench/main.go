// Command meshbench is the benchmark and conformance harness for
// service-mesh proxies.
//
//	meshbench VERB [flags]
//
// Verbs are added as the harness grows; `meshbench help` lists the ones
// this build has.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"sort"
	"syscall"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/suite"
)

// verb is one subcommand.
type verb struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func verbs() map[string]verb {
	return map[string]verb{
		"kind":      {"create, delete or load images into a kind cluster for the kind platform", runKind},
		"discovery": {"serve Kubernetes Service endpoints to the reference proxies (the discovery server meshproxy asks instead of the API server)", runDiscovery},
		"conform":   {"run the conformance checks against the reference proxy and the peers: matrix, conformance.json, report, JUnit", runConform},
		"certs":     {"write a CA, an issuer and per-service SPIFFE certificates for mTLS (reuses the CA in --out)", runCerts},
		"backend":   {"run an HTTP/1.1+h2c and gRPC test backend with a latency and failure personality", runBackend},
		"gate":      {"decide whether a candidate build regressed against a base build, from an A/B run (paired, bootstrap intervals): gate.md, gate.json, JUnit", runGate},
		"load":      {"generate open- or closed-loop load and measure it (HdrHistogram, coordinated-omission free)", runLoad},
		"peers":     {"list the peer proxies (nginx, HAProxy, Caddy, Envoy): installed, versions, capabilities", runPeers},
		"report":    {"turn a run's results into report.html, report.md, plots and fortio/SMP exports", runReport},
		"run":       {"run a scenario's cells on a platform and record the results (run.json, result.json per cell)", runRun},
		"version":   {"print the meshbench version and build facts", runVersion},
	}
}

func main() {
	if os.Getenv(conformance.ChildEnv) != "" {
		// A conformance check re-executed this program for work that
		// must run in a process of its own.
		os.Exit(suite.Child())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	vs := verbs()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout, vs)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	v, ok := vs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "meshbench: unknown verb %q\n\n", args[0])
		usage(stderr, vs)
		return 2
	}
	return v.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, vs map[string]verb) {
	fmt.Fprintln(w, "usage: meshbench VERB [flags]")
	fmt.Fprintln(w, "\nverbs:")
	names := make([]string, 0, len(vs))
	for n := range vs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, vs[n].summary)
	}
	fmt.Fprintln(w, "\nThe reference proxy is its own command: meshproxy --config FILE [--validate].")
}

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: meshbench version")
		return 2
	}
	version, commit := "(devel)", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	fmt.Fprintf(stdout, "meshbench %s commit %s %s %s/%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return 0
}

// newFlagSet returns a flag set for verb whose usage starts with usage.
func newFlagSet(verb, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("meshbench "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: "+usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, which must hold flags only. When ok is false the
// verb returns code: 0 after --help, 2 after a usage error.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return 2, false
	}
	return 0, true
}

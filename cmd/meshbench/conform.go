package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/output"
	"github.com/meshbench/meshbench/conformance/suite"
	"github.com/meshbench/meshbench/peers"
)

const conformUsage = `meshbench conform [--proxy reference|nginx|haproxy|caddy|envoy|all] [--profile P] [--run REGEX] [--out DIR] [--list]

Runs the conformance checks (docs/conformance.md) against each proxy, started
on loopback through its peers adapter (the reference proxy: meshproxy) with
real backends. Prints a live progress line, then the checks x proxies matrix;
writes conformance.json, report.md, report.html and junit-<proxy>.xml to DIR.
Exit status: 0 when no check failed, 1 when a check failed that the proxy
claims to support (n/a and skipped checks are not failures), 2 for bad input,
130 when interrupted (what finished is still written).`

// runConform is the conform verb.
func runConform(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("conform", conformUsage, stderr)
	proxyFlag := fs.String("proxy", "all", "proxies: reference, a peer (nginx, haproxy, caddy, envoy), a comma-separated list, or all")
	profile := fs.String("profile", "", "run only this profile's checks ("+strings.Join(conformance.Profiles(), ", ")+")")
	runRE := fs.String("run", "", "run only the checks whose ID matches this regular expression")
	outDir := fs.String("out", "", "directory for the results (default out/conform/<time>)")
	list := fs.Bool("list", false, "list the selected checks and exit")
	meshproxy := fs.String("meshproxy", "", "meshproxy binary `PATH` (default: next to meshbench, else on PATH)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	all := suite.Checks()
	if err := conformance.Validate(all); err != nil {
		fmt.Fprintf(stderr, "meshbench conform: %v\n", err)
		return 1
	}
	if *profile != "" && !slices.Contains(conformance.Profiles(), *profile) {
		fmt.Fprintf(stderr, "meshbench conform: --profile %q: no such profile; profiles: %s\n", *profile, strings.Join(conformance.Profiles(), ", "))
		return 2
	}
	var re *regexp.Regexp
	if *runRE != "" {
		var err error
		if re, err = regexp.Compile(*runRE); err != nil {
			fmt.Fprintf(stderr, "meshbench conform: --run: %v\n", err)
			return 2
		}
	}
	checks := conformance.Select(all, *profile, re)
	if len(checks) == 0 {
		fmt.Fprintf(stderr, "meshbench conform: no check matches --profile %q --run %q (meshbench conform --list lists them)\n", *profile, *runRE)
		return 2
	}
	if *list {
		for _, c := range checks {
			fmt.Fprintf(stdout, "%-40s %s\n", c.ID, c.Title)
		}
		return 0
	}
	names, err := conformProxies(*proxyFlag)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench conform: --proxy: %v\n", err)
		return 2
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "meshbench conform: %v\n", err)
		return 1
	}
	var targets []*conformance.Target
	var notInstalled []string
	for _, n := range names {
		if n == conformance.NameReference {
			_, mp, err := locateBinaries(*meshproxy)
			if err != nil {
				fmt.Fprintf(stderr, "meshbench conform: %v\n", err)
				return 2
			}
			t, err := conformance.Reference(mp)
			if err != nil {
				fmt.Fprintf(stderr, "meshbench conform: %v\n", err)
				return 1
			}
			targets = append(targets, t)
			continue
		}
		a, _ := peers.Lookup(n)
		t, err := conformance.Peer(ctx, a)
		if err != nil {
			if *proxyFlag != "all" {
				fmt.Fprintf(stderr, "meshbench conform: %v\n", err)
				return 2
			}
			notInstalled = append(notInstalled, err.Error())
			continue
		}
		targets = append(targets, t)
	}
	dir := *outDir
	if dir == "" {
		dir = filepath.Join("out", "conform", time.Now().UTC().Format("20060102-150405"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "meshbench conform: --out: %v\n", err)
		return 2
	}
	logFile, err := os.Create(filepath.Join(dir, "conform.log"))
	if err != nil {
		fmt.Fprintf(stderr, "meshbench conform: %v\n", err)
		return 1
	}
	defer logFile.Close()
	for _, m := range notInstalled {
		fmt.Fprintf(stderr, "meshbench conform: skipping a peer: %s\n", m)
	}
	tools := conformance.FindTools(ctx, self)
	if tools.Prometheus == "" {
		fmt.Fprintln(stderr, "meshbench conform: prometheus not found: the observability checks will be skipped (apt-get install prometheus)")
	}
	if tools.H2Spec == "" {
		fmt.Fprintln(stderr, "meshbench conform: h2spec not found: the h2 checks will be skipped (put h2spec on PATH, or run from a meshbench checkout with go)")
	}
	work := filepath.Join(dir, "work")
	prog := newProgress(stderr)
	rep, err := conformance.Run(ctx, conformance.Options{
		Checks:   checks,
		Targets:  targets,
		Dir:      work,
		Tools:    tools,
		Log:      slog.New(slog.NewTextHandler(logFile, nil)),
		Progress: prog.update,
	})
	prog.end()
	interrupted := errors.Is(err, context.Canceled)
	if err != nil && !interrupted {
		fmt.Fprintf(stderr, "meshbench conform: %v\n", err)
		return 1
	}
	if rep == nil {
		return 1
	}
	if err := output.Matrix(stdout, rep); err != nil {
		fmt.Fprintf(stderr, "meshbench conform: %v\n", err)
		return 1
	}
	if _, err := output.WriteDir(dir, rep); err != nil {
		fmt.Fprintf(stderr, "meshbench conform: %v\n", err)
		return 1
	}
	if !rep.Failed() && !interrupted {
		os.RemoveAll(work)
	}
	fmt.Fprintf(stdout, "\nconformance: %s (report.md, report.html, junit-*.xml; log conform.log)\n", dir)
	switch {
	case interrupted:
		fmt.Fprintln(stderr, "meshbench conform: interrupted; the results so far are written")
		return 130
	case rep.Failed():
		return 1
	}
	return 0
}

// conformProxies parses --proxy.
func conformProxies(v string) ([]string, error) {
	known := append([]string{conformance.NameReference}, peers.Names()...)
	if v == "all" {
		return known, nil
	}
	var out []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown proxy %q: want %s or all", n, strings.Join(known, ", "))
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// progress is the live progress line: rewritten in place on a terminal,
// one line per finished check otherwise (CI logs).
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	width int
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(pr conformance.Progress) {
	elapsed := time.Since(p.start).Round(time.Second)
	if pr.Result == nil {
		if p.tty {
			line := fmt.Sprintf("[%d/%d %v] %s %s ...", pr.Done+1, pr.Total, elapsed, pr.Target, pr.Check)
			fmt.Fprintf(p.w, "\r%-*s", p.width, line)
			p.width = max(p.width, len(line))
		}
		return
	}
	if !p.tty {
		fmt.Fprintf(p.w, "[%d/%d %v] %s %s: %s %.1fs\n", pr.Done, pr.Total, elapsed, pr.Target, pr.Check, output.Cell(pr.Result.Status), pr.Result.DurationMs/1e3)
		return
	}
	if pr.Result.Status == conformance.StatusFail {
		fmt.Fprintf(p.w, "\r%-*s\rFAIL %s on %s\n", p.width, "", pr.Check, pr.Target)
	}
}

func (p *progress) end() {
	if p.tty && p.width > 0 {
		fmt.Fprintf(p.w, "\r%-*s\r", p.width, "")
	}
}

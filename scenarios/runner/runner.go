package runner

import (
	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/loadgen/fortioengine"
	"github.com/meshbench/meshbench/scenarios/platform"

	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/meshbench/meshbench/internal/atomicfile"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
)

// ReasonInterrupted is RunInfo.Reason, and the error of the cell that was
// running, when the run's context was canceled.
const ReasonInterrupted = "interrupted"

// TeardownTimeout bounds a cell's Teardown.
const TeardownTimeout = time.Minute

// Options configure a run.
type Options struct {
	// Out is the results root: the run goes to Out/<scenario>/<timestamp>.
	Out string
	// Repeats overrides the scenario's repeats; 0 keeps them.
	Repeats int
	// Quick applies the scenario's quick overrides (shorter load, fewer
	// repeats).
	Quick bool
	// Platform realizes the cells' plans.
	Platform platform.Platform
	// Progress receives one line when a cell starts and one when it ends;
	// nil discards them.
	Progress io.Writer
	// Log receives details; nil discards them.
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Binaries are the reference proxy's binaries by proxy value
	// ("reference", "reference@base"); run.json records each one's path,
	// size and SHA-256.
	Binaries map[string]string
	// Engine is the load engine of every cell: loadgen.EngineMeshbench
	// (the default) or loadgen.EngineFortio; a cell fortio cannot run is
	// n/a.
	Engine string
}

// source is what the runner needs of a scenario.
type source interface {
	Dimensions() []string
	Cells(scenarios.CellOptions) ([]result.Cell, error)
	Plan(result.Cell, scenarios.PlanOptions) (*scenarios.Plan, error)
}

// Run runs every cell of sc on o.Platform and returns the run's directory
// and its final RunInfo (also in run.json). Cells that fail are marked
// failed in RunInfo and do not make Run fail; err is non-nil when the run
// could not be recorded, or when ctx was canceled (it then wraps
// ctx.Err(), and RunInfo is incomplete with Reason "interrupted").
func Run(ctx context.Context, sc *scenarios.Scenario, o Options) (runDir string, info *result.Run, err error) {
	if sc == nil {
		return "", nil, errors.New("running: no scenario")
	}
	return run(ctx, sc.Name, sc.Description, sc, o)
}

// runner is one run in progress.
type runner struct {
	o       Options
	src     source
	dir     string
	info    *result.Run
	log     *slog.Logger
	started time.Time
	spent   time.Duration // total time of the cells finished so far
	ran     int           // cells finished so far
}

func run(ctx context.Context, name, description string, src source, o Options) (string, *result.Run, error) {
	if o.Platform == nil {
		return "", nil, errors.New("running: no platform")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	r := &runner{o: o, src: src, log: o.Log}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	cells, err := src.Cells(scenarios.CellOptions{Quick: o.Quick, Repeats: o.Repeats})
	if err != nil {
		return "", nil, fmt.Errorf("running %s: %w", name, err)
	}
	if len(cells) == 0 {
		return "", nil, fmt.Errorf("running %s: the scenario has no cells", name)
	}
	repeats := 0
	for i := range cells {
		cells[i].Status, cells[i].Error = result.StatusPending, ""
		repeats = max(repeats, cells[i].Repeat)
	}
	binaries, err := hashBinaries(o.Binaries)
	if err != nil {
		return "", nil, fmt.Errorf("running %s: %w", name, err)
	}
	r.started = o.Now()
	dir, err := makeRunDir(filepath.Join(o.Out, name), r.started)
	if err != nil {
		return "", nil, fmt.Errorf("running %s: %w", name, err)
	}
	r.dir = dir
	r.info = &result.Run{
		Scenario:    name,
		Description: description,
		Platform:    o.Platform.Name(),
		Started:     r.started,
		Incomplete:  true,
		Repeats:     repeats,
		Quick:       o.Quick,
		Dimensions:  src.Dimensions(),
		Cells:       cells,
		Env:         Environment(ctx),
		Binaries:    binaries,
	}
	if err := r.save(); err != nil {
		return dir, r.info, err
	}
	r.log.Info("run started", "scenario", name, "dir", dir, "cells", len(cells))
	for i := range r.info.Cells {
		if ctx.Err() != nil {
			break
		}
		r.cell(ctx, i)
		if err := r.save(); err != nil {
			return dir, r.info, err
		}
	}
	if err := ctx.Err(); err != nil {
		r.info.Reason = ReasonInterrupted
		if err := r.save(); err != nil {
			return dir, r.info, err
		}
		r.log.Info("run interrupted", "dir", dir)
		return dir, r.info, fmt.Errorf("running %s: %s: %w", name, ReasonInterrupted, err)
	}
	r.info.Incomplete = false
	r.info.Finished = o.Now()
	if err := r.save(); err != nil {
		return dir, r.info, err
	}
	r.log.Info("run finished", "dir", dir)
	return dir, r.info, nil
}

// makeRunDir creates parent/<timestamp>, or parent/<timestamp>-2 and so on
// when a run of the same second exists.
func makeRunDir(parent string, t time.Time) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("creating the results directory: %w", err)
	}
	base := filepath.Join(parent, t.Format("20060102-150405"))
	dir := base
	for n := 2; ; n++ {
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			return dir, nil
		}
		if !errors.Is(err, os.ErrExist) || n > 100 {
			return "", fmt.Errorf("creating the results directory: %w", err)
		}
		dir = base + "-" + strconv.Itoa(n)
	}
}

// save writes run.json with the platform's current facts.
func (r *runner) save() error {
	r.info.Cluster = r.o.Platform.Facts()
	if err := writeJSON(filepath.Join(r.dir, result.RunFile), r.info); err != nil {
		return fmt.Errorf("recording the run: %w", err)
	}
	return nil
}

// cell runs cell i and records its outcome in r.info.
func (r *runner) cell(ctx context.Context, i int) {
	c := &r.info.Cells[i]
	c.Status = result.StatusRunning
	if err := r.save(); err != nil {
		r.log.Warn("recording the run", "err", err)
	}
	r.progress(i, "running")
	start := r.o.Now()
	res, err := r.runCell(ctx, *c)
	r.spent += r.o.Now().Sub(start)
	r.ran++
	var na *peers.NotApplicable
	switch {
	case err == nil:
		c.Status = result.StatusDone
		r.progress(i, cellSummary(res))
	case errors.As(err, &na):
		// Not run and not substituted: the proxy lacks what the cell needs.
		c.Status, c.Error = result.StatusNA, na.Error()
		r.progress(i, "n/a — "+na.Error())
	case ctx.Err() != nil:
		c.Status, c.Error = result.StatusFailed, ReasonInterrupted
		r.log.Info("cell interrupted", "cell", c.ID, "err", err)
		r.progress(i, ReasonInterrupted+" (torn down; the cells left stay pending)")
	default:
		c.Status, c.Error = result.StatusFailed, err.Error()
		r.log.Error("cell failed", "cell", c.ID, "err", err)
		first, _, _ := strings.Cut(err.Error(), "\n")
		r.progress(i, "FAILED: "+first)
	}
}

// runCell plans, deploys, loads, measures and tears down one cell, and
// writes its result.json. Teardown runs on every path, panics included.
func (r *runner) runCell(ctx context.Context, c result.Cell) (res *result.CellResult, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("cell panicked", "cell", c.ID, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	dir := filepath.Join(r.dir, c.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the cell directory: %w", err)
	}
	plan, err := r.src.Plan(c, scenarios.PlanOptions{Quick: r.o.Quick, Engine: r.o.Engine})
	if err != nil {
		return nil, fmt.Errorf("planning: %w", err)
	}
	if err := engineCanRun(plan.Load); err != nil {
		return nil, err
	}
	p := r.o.Platform
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), TeardownTimeout)
		defer cancel()
		if terr := p.Teardown(tctx); terr != nil {
			r.log.Warn("teardown", "cell", c.ID, "err", terr)
			if err == nil {
				err = fmt.Errorf("tearing down: %w", terr)
			}
		}
	}()
	if err := p.Deploy(ctx, plan, dir); err != nil {
		return nil, err
	}
	res, err = p.Run(ctx)
	if err != nil {
		return nil, err
	}
	if res == nil {
		return nil, errors.New("running: the platform returned no result")
	}
	usage, metrics, err := p.Resources(ctx)
	if err != nil {
		return nil, fmt.Errorf("measuring resources: %w", err)
	}
	res.Cell = c
	res.Cell.Status = result.StatusDone
	var initial []result.Event
	for _, ev := range plan.Initial {
		initial = append(initial, ev.Record(0))
	}
	res.Events = append(initial, res.Events...)
	res.Resources = usage
	res.Proxies = metrics
	if res.Proxies == nil {
		res.Proxies = []result.ProxyMetrics{}
	}
	if err := writeJSON(filepath.Join(dir, result.ResultFile), res); err != nil {
		return nil, fmt.Errorf("recording the result: %w", err)
	}
	return res, nil
}

// progress writes one line about cell i: its position, its ID, what
// happened, the run's elapsed time and, once a cell has finished, the
// estimated time left.
func (r *runner) progress(i int, what string) {
	n := len(r.info.Cells)
	elapsed := r.o.Now().Sub(r.started)
	line := fmt.Sprintf("[%d/%d] %s  %s  elapsed %s", i+1, n, r.info.Cells[i].ID, what, clock(elapsed))
	if r.ran > 0 && r.info.Cells[i].Error != ReasonInterrupted {
		left := n - r.ran
		eta := r.spent / time.Duration(r.ran) * time.Duration(left)
		line += "  ETA " + clock(eta)
	}
	fmt.Fprintln(r.o.Progress, line)
}

// clock formats d as m:ss, or h:mm:ss from an hour.
func clock(d time.Duration) string {
	s := int(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// writeJSON writes v as indented JSON to path through a temporary file in
// the same directory and a rename, so a reader sees the old file or the
// new one, never part of one.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", filepath.Base(path), err)
	}
	return atomicfile.Write(path, append(b, '\n'))
}

// hashBinaries identifies each binary by its size and SHA-256.
func hashBinaries(paths map[string]string) (map[string]result.Binary, error) {
	if len(paths) == 0 {
		return nil, nil
	}
	out := make(map[string]result.Binary, len(paths))
	for name, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("hashing the %s binary: %w", name, err)
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("hashing the %s binary %s: %w", name, path, err)
		}
		out[name] = result.Binary{Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Bytes: n}
	}
	return out, nil
}

// cellSummary is a finished cell's progress line: its rate and p99, the
// rate a search found, and why the cell is invalid.
func cellSummary(res *result.CellResult) string {
	line := fmt.Sprintf("achieved %.1f rps  p99 %.2f ms", res.AchievedRate, float64(res.Latency.P99)/1000)
	if sr := res.Search; sr != nil {
		line = fmt.Sprintf("max %.1f rps within the objective (%d probes)  p99 %.2f ms", sr.MaxRate, len(sr.Probes), float64(res.Latency.P99)/1000)
	}
	if res.Invalid != "" {
		line += "  INVALID: " + res.Invalid
	}
	return line
}

// engineCanRun refuses, as n/a, a cell whose load its engine cannot run:
// fortio runs one stream at one rate, one request at a time per HTTP
// connection (fortioengine.Check has its rules), never substituted by
// another engine.
func engineCanRun(l scenarios.LoadPlan) error {
	if l.Engine != loadgen.EngineFortio {
		return nil
	}
	spec := loadgen.Spec{Protocol: l.Protocol, Streams: l.Streams, Connections: max(l.Connections, 1), Duration: max(l.Duration, time.Second),
		NewConnectionPerRequest: l.NewConnectionPerRequest, Search: l.Search, Rate: l.Rate, Target: "http://target/"}
	if spec.Protocol == loadgen.GRPC {
		spec.Target = "target:9090"
	}
	for _, st := range l.Mix {
		spec.Mix = append(spec.Mix, loadgen.Stream{Name: st.Name})
	}
	if err := fortioengine.Check(spec); err != nil {
		return &peers.NotApplicable{Peer: "the fortio engine", Reason: strings.TrimPrefix(err.Error(), "fortio engine: ")}
	}
	return nil
}

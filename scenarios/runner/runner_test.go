package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
)

// fakeSource has three variants, interleaved over its repeats.
type fakeSource struct {
	planErr map[string]error // by cell ID
	opts    []scenarios.PlanOptions
}

func (s *fakeSource) Dimensions() []string { return []string{"topology"} }

func (s *fakeSource) Cells(o scenarios.CellOptions) ([]result.Cell, error) {
	n := 2
	if o.Repeats > 0 {
		n = o.Repeats
	}
	var cells []result.Cell
	for r := 1; r <= n; r++ {
		for _, v := range []string{"a", "b", "c"} {
			cells = append(cells, result.Cell{ID: fmt.Sprintf("%s-r%d", v, r), Variant: v,
				Labels: map[string]string{"topology": v}, Repeat: r, Status: result.StatusPending})
		}
	}
	return cells, nil
}

func (s *fakeSource) Plan(c result.Cell, o scenarios.PlanOptions) (*scenarios.Plan, error) {
	s.opts = append(s.opts, o)
	if err := s.planErr[c.ID]; err != nil {
		return nil, err
	}
	return &scenarios.Plan{Scenario: "fake", Cell: c}, nil
}

// fakePlatform records every call and fails where told to.
type fakePlatform struct {
	mu       sync.Mutex
	calls    []string // "deploy a-r1", "run a-r1", ...
	deployed *scenarios.Plan
	dir      string

	deployErr map[string]error
	runPanic  map[string]bool
	// blockRun makes Run of that cell wait for its context.
	blockRun map[string]bool
	// running is closed when a blocked Run starts waiting.
	running chan struct{}
	// onDeploy is called at every Deploy, with the plan's directory.
	onDeploy func(c result.Cell, dir string)
}

func (f *fakePlatform) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakePlatform) Name() string { return "fake" }

func (f *fakePlatform) Facts() map[string]any { return map[string]any{"nodes": 2} }

func (f *fakePlatform) Deploy(ctx context.Context, p *scenarios.Plan, dir string) error {
	f.record("deploy " + p.Cell.ID)
	if f.deployed != nil {
		return errors.New("already deployed")
	}
	f.deployed, f.dir = p, dir
	if f.onDeploy != nil {
		f.onDeploy(p.Cell, dir)
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "logs", "x.log"), []byte("log\n"), 0o644); err != nil {
		return err
	}
	return f.deployErr[p.Cell.ID]
}

func (f *fakePlatform) Run(ctx context.Context) (*result.CellResult, error) {
	id := f.deployed.Cell.ID
	f.record("run " + id)
	if f.runPanic[id] {
		panic("boom in " + id)
	}
	if f.blockRun[id] {
		close(f.running)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err := os.WriteFile(filepath.Join(f.dir, result.HdrLogFile), []byte("#hlog\n"), 0o644); err != nil {
		return nil, err
	}
	return &result.CellResult{Result: loadgen.Result{Requests: 1000, AchievedRate: 399.84,
		Latency: loadgen.Percentiles{P99: 2410}, Labels: f.deployed.Cell.Labels}}, nil
}

func (f *fakePlatform) Resources(ctx context.Context) (result.Resources, []result.ProxyMetrics, error) {
	f.record("resources " + f.deployed.Cell.ID)
	return result.Resources{SampleIntervalMs: 200, Proxies: []result.ProxyUsage{{Name: "px", Usage: result.Usage{CPUSeconds: 1}}},
		Total: result.Usage{CPUSeconds: 1}}, []result.ProxyMetrics{{Name: "px", Retries: 3}}, nil
}

func (f *fakePlatform) Teardown(ctx context.Context) error {
	id := "-"
	if f.deployed != nil {
		id = f.deployed.Cell.ID
	}
	if ctx.Err() != nil {
		return errors.New("teardown got a dead context")
	}
	f.record("teardown " + id)
	f.deployed = nil
	return nil
}

// fakeClock returns a Now that advances 10 s per call from a fixed start.
func fakeClock() func() time.Time {
	t := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(10 * time.Second)
		return t
	}
}

func readRun(t *testing.T, dir string) *result.Run {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, result.RunFile))
	if err != nil {
		t.Fatal(err)
	}
	var ri result.Run
	if err := json.Unmarshal(b, &ri); err != nil {
		t.Fatalf("run.json: %v", err)
	}
	return &ri
}

func statuses(ri *result.Run) string {
	var s []string
	for _, c := range ri.Cells {
		s = append(s, c.ID+":"+c.Status)
	}
	return strings.Join(s, " ")
}

func TestRunOrderFilesAndStatuses(t *testing.T) {
	out := t.TempDir()
	src := &fakeSource{}
	f := &fakePlatform{}
	// run.json is on disk and current before every cell is deployed.
	var seen []string
	f.onDeploy = func(c result.Cell, dir string) {
		seen = append(seen, statuses(readRun(t, filepath.Dir(dir))))
	}
	var progress bytes.Buffer
	dir, info, err := run(context.Background(), "fake", "a fake", src,
		Options{Out: out, Platform: f, Progress: &progress, Now: fakeClock(), Quick: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(out, "fake", "20260102-030415"); dir != want {
		t.Errorf("run dir %s, want %s", dir, want)
	}
	var want []string
	for _, id := range []string{"a-r1", "b-r1", "c-r1", "a-r2", "b-r2", "c-r2"} {
		want = append(want, "deploy "+id, "run "+id, "resources "+id, "teardown "+id)
	}
	if got := strings.Join(f.calls, ", "); got != strings.Join(want, ", ") {
		t.Errorf("calls:\n%s\nwant:\n%s", got, strings.Join(want, ", "))
	}
	for _, o := range src.opts {
		if !o.Quick {
			t.Errorf("plan options %+v: want the run's quick", o)
		}
	}
	if seen[0] != "a-r1:running b-r1:pending c-r1:pending a-r2:pending b-r2:pending c-r2:pending" ||
		seen[3] != "a-r1:done b-r1:done c-r1:done a-r2:running b-r2:pending c-r2:pending" {
		t.Errorf("run.json as each cell started:\n%s", strings.Join(seen, "\n"))
	}

	ri := readRun(t, dir)
	if ri.Incomplete || ri.Reason != "" || ri.Finished.IsZero() || !ri.Finished.After(ri.Started) {
		t.Errorf("run.json: incomplete %v reason %q started %v finished %v: want a complete run", ri.Incomplete, ri.Reason, ri.Started, ri.Finished)
	}
	if ri.Scenario != "fake" || ri.Description != "a fake" || ri.Platform != "fake" || ri.Repeats != 2 || !ri.Quick ||
		len(ri.Dimensions) != 1 || ri.Cluster["nodes"] != float64(2) {
		t.Errorf("run.json header: %+v", ri)
	}
	for _, k := range []string{"cpu_model", "cores", "go_version", "goos", "goarch", "kernel", "hostname", "version"} {
		if ri.Env[k] == nil || ri.Env[k] == "" {
			t.Errorf("env has no %s: %v", k, ri.Env)
		}
	}
	if statuses(ri) != "a-r1:done b-r1:done c-r1:done a-r2:done b-r2:done c-r2:done" {
		t.Errorf("statuses %s", statuses(ri))
	}
	if info.Incomplete || len(info.Cells) != 6 {
		t.Errorf("returned info %+v", info)
	}
	for _, c := range ri.Cells {
		b, err := os.ReadFile(filepath.Join(dir, c.ID, result.ResultFile))
		if err != nil {
			t.Fatal(err)
		}
		var res result.CellResult
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		if res.Cell.ID != c.ID || res.Cell.Status != result.StatusDone || res.Requests != 1000 ||
			res.Resources.Total.CPUSeconds != 1 || len(res.Proxies) != 1 || res.Proxies[0].Retries != 3 {
			t.Errorf("%s result: %+v", c.ID, res)
		}
		for _, f := range []string{result.HdrLogFile, "logs/x.log"} {
			if _, err := os.Stat(filepath.Join(dir, c.ID, f)); err != nil {
				t.Errorf("%s: %v", c.ID, err)
			}
		}
	}
	// Atomic writes leave no temporary file behind.
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if strings.HasPrefix(d.Name(), ".") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})

	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) != 12 {
		t.Fatalf("%d progress lines, want 12:\n%s", len(lines), progress.String())
	}
	// Every cell takes 10 s on the fake clock (one tick between its start
	// and its end); after the third of six, three are left: ETA 0:30.
	if want := "[3/6] c-r1  achieved 399.8 rps  p99 2.41 ms  elapsed "; !strings.HasPrefix(lines[5], want) || !strings.HasSuffix(lines[5], "ETA 0:30") {
		t.Errorf("progress line %q: want %q... ETA 0:30", lines[5], want)
	}
	if !strings.HasPrefix(lines[0], "[1/6] a-r1  running  elapsed ") {
		t.Errorf("first progress line %q", lines[0])
	}
}

func TestFailingCellsDoNotStopTheRun(t *testing.T) {
	src := &fakeSource{planErr: map[string]error{"c-r1": errors.New("no such topology")}}
	f := &fakePlatform{
		deployErr: map[string]error{"a-r1": errors.New("127.77.1.10:8080 is already in use")},
		runPanic:  map[string]bool{"b-r1": true},
	}
	var progress bytes.Buffer
	dir, _, err := run(context.Background(), "fake", "", src, Options{Out: t.TempDir(), Platform: f, Repeats: 1, Progress: &progress, Now: fakeClock()})
	if err != nil {
		t.Fatal(err)
	}
	ri := readRun(t, dir)
	if statuses(ri) != "a-r1:failed b-r1:failed c-r1:failed" || ri.Incomplete {
		t.Fatalf("statuses %s incomplete %v: want all failed, run complete", statuses(ri), ri.Incomplete)
	}
	for i, want := range []string{"is already in use", "panic: boom in b-r1", "planning: no such topology"} {
		if !strings.Contains(ri.Cells[i].Error, want) {
			t.Errorf("cell %s error %q: want %q", ri.Cells[i].ID, ri.Cells[i].Error, want)
		}
		if _, err := os.Stat(filepath.Join(dir, ri.Cells[i].ID, result.ResultFile)); err == nil {
			t.Errorf("%s: a failed cell has a result.json", ri.Cells[i].ID)
		}
	}
	// Teardown after the failed deploy and after the panic; nothing was
	// deployed for the cell that could not be planned.
	want := "deploy a-r1, teardown a-r1, deploy b-r1, run b-r1, teardown b-r1"
	if got := strings.Join(f.calls, ", "); got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
	if !strings.Contains(progress.String(), "[2/3] b-r1  FAILED: panic: boom in b-r1") {
		t.Errorf("progress:\n%s", progress.String())
	}
}

func TestInterruption(t *testing.T) {
	f := &fakePlatform{blockRun: map[string]bool{"b-r1": true}, running: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-f.running
		cancel()
	}()
	dir, info, err := run(ctx, "fake", "", &fakeSource{}, Options{Out: t.TempDir(), Platform: f, Now: fakeClock()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	ri := readRun(t, dir)
	if !ri.Incomplete || ri.Reason != ReasonInterrupted || !ri.Finished.IsZero() || !info.Incomplete {
		t.Errorf("run.json incomplete %v reason %q finished %v", ri.Incomplete, ri.Reason, ri.Finished)
	}
	if got := statuses(ri); got != "a-r1:done b-r1:failed c-r1:pending a-r2:pending b-r2:pending c-r2:pending" {
		t.Errorf("statuses %s", got)
	}
	if ri.Cells[1].Error != ReasonInterrupted {
		t.Errorf("interrupted cell error %q", ri.Cells[1].Error)
	}
	if _, err := os.Stat(filepath.Join(dir, "a-r1", result.ResultFile)); err != nil {
		t.Errorf("the finished cell's result: %v", err)
	}
	// The interrupted cell was torn down (with a live context), and no
	// cell started after it.
	want := "deploy a-r1, run a-r1, resources a-r1, teardown a-r1, deploy b-r1, run b-r1, teardown b-r1"
	if got := strings.Join(f.calls, ", "); got != want {
		t.Errorf("calls %s, want %s", got, want)
	}
}

func TestRunDirOfTheSameSecond(t *testing.T) {
	out := t.TempDir()
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	var dirs []string
	for range 2 {
		dir, _, err := run(context.Background(), "fake", "", &fakeSource{}, Options{Out: out, Repeats: 1, Platform: &fakePlatform{}, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, dir)
	}
	if dirs[0] != filepath.Join(out, "fake", "20260102-030405") || dirs[1] != dirs[0]+"-2" {
		t.Errorf("run dirs %v", dirs)
	}
}

func TestClock(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "0:00", 45 * time.Second: "0:45", 200 * time.Second: "3:20", 3723 * time.Second: "1:02:03"} {
		if got := clock(d); got != want {
			t.Errorf("clock(%v) = %q, want %q", d, got, want)
		}
	}
}

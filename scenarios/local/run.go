package local

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/platform"
	"github.com/meshbench/meshbench/scenarios/proxymetrics"
)

// loadResultFile is where the load generator writes its result in the
// cell directory.
const loadResultFile = "result-load.json"

// interruptGrace bounds how long an interrupted load generator may take to
// write its partial result before it is killed.
const interruptGrace = 10 * time.Second

// measurement is what one Run observed of the proxies.
type measurement struct {
	requests int64
	proxies  []*proxyWatch
}

// proxyWatch follows one proxy through the measured part.
type proxyWatch struct {
	name, kind, node, admin string // admin is empty for a peer: nothing to scrape
	pid                     int
	group                   bool // sample every process of pid's process group

	idle      procSample // before the load started
	samples   []procSample
	sampleErr error
	start     proxymetrics.Families
	end       proxymetrics.Families
	scrapeErr error
}

// procSample is one reading of /proc/<pid>/stat and status.
type procSample struct {
	cpu  float64 // user + system seconds since the process started
	rss  int64   // resident bytes
	anon int64   // anonymous resident bytes (RssAnon), 0 when unknown
}

// usage summarises the samples; CPU is the increase from the first sample
// to the last.
func (w *proxyWatch) usage(requests int64) result.Usage {
	if len(w.samples) == 0 {
		return result.Usage{}
	}
	rss := make([]int64, len(w.samples))
	var anon int64
	for i, s := range w.samples {
		rss[i] = s.rss
		anon = max(anon, s.anon)
	}
	u := platform.Usage(w.samples[len(w.samples)-1].cpu-w.samples[0].cpu, rss, requests)
	u.AnonPeakBytes = anon
	u.IdleRSSBytes = w.idle.rss
	return u
}

// Run runs the plan's load as a `meshbench load` child and applies the
// plan's events. During the measured part it samples each proxy's CPU and
// memory every SampleInterval and scrapes each proxy's /metrics at its
// start and its end. When ctx ends, the load generator gets SIGINT, and
// Run returns ctx.Err() once it has exited.
func (p *Platform) Run(ctx context.Context) (*result.CellResult, error) {
	plan := p.plan
	if plan == nil {
		return nil, errors.New("running: nothing deployed")
	}
	p.last = nil
	for _, ev := range plan.Events {
		if p.backends[ev.Pod] == nil {
			return nil, fmt.Errorf("running: event at %v: pod %q has no backend", ev.At, ev.Pod)
		}
	}
	gens := platform.GeneratorLoads(plan.Load)
	start := time.Now()
	if len(gens) > 1 {
		start = start.Add(generatorLead) // every generator running before the common start
	}
	m := &measurement{}
	for _, px := range plan.Proxies {
		w := &proxyWatch{name: px.Name, kind: px.Kind, node: px.Node,
			admin: p.configs[px.Name].Admin, pid: p.proxies[px.Name].pid()}
		if inst := p.instances[px.Name]; inst != nil {
			// A peer: its metrics are not the reference proxy's series;
			// nginx's workers are its master's children, in its group.
			w.admin, w.group = "", inst.MultiProcess
		}
		m.proxies = append(m.proxies, w)
	}
	// What each proxy holds before any load: one reading, kept apart
	// from the measured part's.
	p.sample(m.proxies)()
	for _, w := range m.proxies {
		if n := len(w.samples); n > 0 {
			w.idle = w.samples[n-1]
		}
		w.samples, w.sampleErr = nil, nil
	}
	var loads []*process
	for _, g := range gens {
		out := filepath.Join(p.dir, platform.GeneratorFile(loadResultFile, g))
		_ = os.Remove(out)
		args, err := platform.LoadArgs(g.Load, plan.Cell, p.addrs, out, filepath.Join(p.dir, platform.GeneratorFile(result.HdrLogFile, g)))
		if err != nil {
			return nil, fmt.Errorf("running: %w", err)
		}
		args = platform.GeneratorArgs(args, g, start)
		name := strings.TrimSuffix(platform.GeneratorFile("load.", g), ".")
		load, err := p.start(name, filepath.Join(p.dir, "logs", name+".log"), "", nil, p.opts.Meshbench, args...)
		if err != nil {
			p.interruptAll(ctx, loads)
			return nil, fmt.Errorf("running: %w", err)
		}
		p.log.Debug("load started", "pid", load.pid(), "args", args)
		loads = append(loads, load)
	}
	measured := start.Add(plan.Load.Warmup)
	anyDone, allDone := groupDone(loads)

	// Warm-up: not measured.
	select {
	case <-anyDone:
		return nil, fmt.Errorf("running: load generator ended before the measured part: %w", exitErrors(loads))
	case <-ctx.Done():
		return nil, p.interruptAll(ctx, loads)
	case <-time.After(time.Until(measured)):
	}

	// The measured part.
	measured = time.Now()
	for _, w := range m.proxies {
		if w.admin != "" {
			w.start, w.scrapeErr = proxymetrics.Scrape(ctx, p.client, w.admin)
		}
	}
	stopSampling := p.sample(m.proxies)
	evCtx, stopEvents := context.WithCancel(ctx)
	events := platform.ApplyEvents(evCtx, plan.Events, measured, p.applyEvent)

	var interrupted bool
	select {
	case <-allDone:
	case <-ctx.Done():
		interrupted = true
	}
	stopSampling()
	stopEvents()
	records, evErr := events()
	if interrupted {
		return nil, p.interruptAll(ctx, loads)
	}
	endCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	for _, w := range m.proxies {
		if w.scrapeErr != nil || w.admin == "" {
			continue
		}
		w.end, w.scrapeErr = proxymetrics.Scrape(endCtx, p.client, w.admin)
	}
	cancel()

	if err := exitErrors(loads); err != nil {
		return nil, fmt.Errorf("running: %w", err)
	}
	res, err := platform.MergeGenerators(p.dir, loadResultFile, gens)
	if err != nil {
		return nil, fmt.Errorf("running: %w", err)
	}
	if err := p.checkAlive(); err != nil {
		return nil, fmt.Errorf("running: %w", err)
	}
	if evErr != nil {
		return nil, fmt.Errorf("running: %w", evErr)
	}
	m.requests = res.Requests
	p.last = m
	var notes []string
	for _, px := range plan.Proxies {
		if inst := p.instances[px.Name]; inst != nil {
			notes = peers.AddNotes(notes, inst.Notes...)
		}
	}
	return &result.CellResult{Result: *res, Events: records, Notes: notes}, nil
}

// interruptAll stops interrupted load generators with SIGINT (each writes
// what it measured, marked incomplete), waits for them, and returns the
// context's error.
func (p *Platform) interruptAll(ctx context.Context, loads []*process) error {
	for _, load := range loads {
		load.signal(syscall.SIGINT)
	}
	deadline := time.After(interruptGrace)
	for _, load := range loads {
		select {
		case <-load.done:
		case <-deadline:
			load.signal(syscall.SIGKILL)
			<-load.done
		}
	}
	return ctx.Err()
}

// generatorLead is how far in the future the common start of several load
// generators is: time for each process to start and connect.
const generatorLead = time.Second

// groupDone returns a channel closed when the first of procs exits and
// one closed when all have.
func groupDone(procs []*process) (anyDone, allDone <-chan struct{}) {
	first, all := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for _, proc := range procs {
		wg.Go(func() {
			<-proc.done
			once.Do(func() { close(first) })
		})
	}
	go func() { wg.Wait(); close(all) }()
	return first, all
}

// exitErrors joins the errors of the load generators that failed.
func exitErrors(procs []*process) error {
	var errs []error
	for _, proc := range procs {
		if proc.exited() && proc.err != nil {
			errs = append(errs, proc.exitError())
		}
	}
	return errors.Join(errs...)
}

// checkAlive fails when a backend or a proxy exited during the run.
func (p *Platform) checkAlive() error {
	var errs []error
	for _, proc := range p.backends {
		if proc.exited() {
			errs = append(errs, proc.exitError())
		}
	}
	for _, proc := range p.proxies {
		if proc.exited() {
			errs = append(errs, proc.exitError())
		}
	}
	return errors.Join(errs...)
}

// sample reads each proxy's CPU time and RSS now and every SampleInterval
// until the returned function is called, which takes a last sample and
// returns when sampling has stopped.
func (p *Platform) sample(ws []*proxyWatch) (stop func()) {
	fs, fsErr := procfs.NewFS(procfs.DefaultMountPoint)
	grouped := slices.ContainsFunc(ws, func(w *proxyWatch) bool { return w.group })
	want := map[int]bool{}
	for _, w := range ws {
		want[w.pid] = w.group
	}
	read := func() {
		var groups map[int]procSample
		var groupErr error
		if grouped && fsErr == nil {
			groups, groupErr = groupStats(fs, want)
		}
		for _, w := range ws {
			if fsErr != nil {
				w.sampleErr = fsErr
				continue
			}
			if w.group {
				st, ok := groups[w.pid]
				switch {
				case groupErr != nil:
					w.sampleErr = cmp.Or(w.sampleErr, groupErr)
				case !ok:
					w.sampleErr = cmp.Or(w.sampleErr, fmt.Errorf("process group %d: no process", w.pid))
				default:
					w.samples = append(w.samples, st)
				}
				continue
			}
			st, err := procStat(fs, w.pid)
			if err != nil {
				if w.sampleErr == nil {
					w.sampleErr = err
				}
				continue
			}
			w.samples = append(w.samples, st)
		}
	}
	read()
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(p.opts.SampleInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				read()
			case <-quit:
				read()
				return
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// groupStats sums CPU time and RSS of every process by process group, in
// one pass over /proc, and the anonymous RSS of the groups in want.
func groupStats(fs procfs.FS, want map[int]bool) (map[int]procSample, error) {
	procs, err := fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	out := map[int]procSample{}
	for _, proc := range procs {
		st, err := proc.Stat()
		if err != nil {
			continue // it exited meanwhile
		}
		s := out[st.PGRP]
		s.rss += int64(st.ResidentMemory())
		if want[st.PGRP] {
			s.cpu += cpuSeconds(fs, proc, st)
			s.anon += anonRSS(proc)
		} else {
			s.cpu += st.CPUTime()
		}
		out[st.PGRP] = s
	}
	return out, nil
}

func procStat(fs procfs.FS, pid int) (procSample, error) {
	proc, err := fs.Proc(pid)
	if err != nil {
		return procSample{}, err
	}
	st, err := proc.Stat()
	if err != nil {
		return procSample{}, err
	}
	return procSample{cpu: cpuSeconds(fs, proc, st), rss: int64(st.ResidentMemory()), anon: anonRSS(proc)}, nil
}

// cpuSeconds is the CPU time of every thread of the process, from the
// scheduler's nanosecond accounting (/proc/<pid>/task/*/schedstat), or
// from /proc/<pid>/stat when that cannot be read. stat counts in clock
// ticks (10 ms): over a cell of a few seconds its rounding alone moves
// the CPU per request by a few percent, more than a regression gate can
// afford.
func cpuSeconds(fs procfs.FS, proc procfs.Proc, st procfs.ProcStat) float64 {
	threads, err := fs.AllThreads(proc.PID)
	if err != nil || len(threads) == 0 {
		return st.CPUTime()
	}
	var ns uint64
	for _, t := range threads {
		ss, err := t.Schedstat()
		if err != nil {
			continue // the thread exited meanwhile
		}
		ns += ss.RunningNanoseconds
	}
	if ns == 0 {
		return st.CPUTime()
	}
	return float64(ns) / 1e9
}

// anonRSS is the process's anonymous resident memory (heap, stacks), or 0
// when /proc/<pid>/status cannot be read. Unlike the RSS it leaves out
// the binary's file-backed pages, whose count depends on the page cache:
// two copies of one binary differ in RSS by a few percent.
func anonRSS(proc procfs.Proc) int64 {
	st, err := proc.NewStatus()
	if err != nil {
		return 0
	}
	return int64(st.RssAnon)
}

// applyEvent sets a backend's personality through its admin endpoint.
func (p *Platform) applyEvent(ctx context.Context, ev scenarios.Event) error {
	var pod *scenarios.Pod
	for i := range p.plan.Pods {
		if p.plan.Pods[i].Name == ev.Pod {
			pod = &p.plan.Pods[i]
		}
	}
	if pod == nil {
		return fmt.Errorf("event at %v: no pod %q", ev.At, ev.Pod)
	}
	body, err := json.Marshal(ev.Backend)
	if err != nil {
		return fmt.Errorf("event at %v on %s: %w", ev.At, ev.Pod, err)
	}
	url := "http://" + platform.HostPort(p.addrs.Pod(pod.Name), scenarios.PortHTTP) + "/_backend/config"
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("event at %v on %s: %w", ev.At, ev.Pod, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("event at %v on %s: %w", ev.At, ev.Pod, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("event at %v on %s: %s: %s", ev.At, ev.Pod, resp.Status, strings.TrimSpace(string(msg)))
	}
	p.log.Debug("event applied", "pod", ev.Pod, "at", ev.At)
	return nil
}

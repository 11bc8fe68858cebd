package loadgen

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbench/meshbench/internal/pace"
)

// Run generates the load spec describes and returns what it measured. When
// ctx is cancelled (Ctrl-C) the run stops, requests in flight are abandoned
// and not recorded, and the result of what was measured until then is
// returned marked Incomplete, with a nil error. A spec with a Mix runs its
// streams at once and merges them; a spec with a Search runs probes until
// it found the highest rate that meets the objective.
func Run(ctx context.Context, spec Spec) (*Result, error) {
	if spec.Search != nil {
		return search(ctx, spec, faults{})
	}
	return runOnce(ctx, spec, faults{})
}

// faults make the generator deliberately wrong, so that tests can show
// their accuracy checks fail against a generator that is wrong. The zero
// value is the real generator.
type faults struct {
	// late sends every request this much after its intended time, as a
	// generator whose timers fire late does.
	late time.Duration
	// fromSend measures response time from the actual send instead of the
	// intended send time: coordinated omission.
	fromSend bool
}

// runOnce runs one load: a single stream or a mix.
func runOnce(ctx context.Context, spec Spec, f faults) (*Result, error) {
	if len(spec.Mix) > 0 {
		return runMix(ctx, spec, f)
	}
	return run(ctx, spec, f)
}

func run(ctx context.Context, spec Spec, f faults) (*Result, error) {
	e, err := prepare(ctx, spec, f)
	if err != nil {
		return nil, err
	}
	defer e.close()
	if err := startInTime(spec.Start); err != nil {
		return nil, err
	}
	e.begin(cmp.Or(spec.Start, time.Now()))
	progressDone := make(chan struct{})
	go progress([]*engine{e}, spec.Progress, progressDone)
	e.wait()
	close(progressDone)
	return e.result(ctx.Err() != nil)
}

// lateStart is how late after a common start a generator may begin: its
// first sends are then that late, within the send-lag bound.
const lateStart = 100 * time.Millisecond

// startInTime fails when a common start time has passed: a schedule that
// began without this generator would make it send its missed requests in
// a burst.
func startInTime(start time.Time) error {
	if late := time.Since(start); !start.IsZero() && late > lateStart {
		return fmt.Errorf("the common start %s passed %v ago: this generator was not ready in time", start.Format(time.RFC3339Nano), late.Round(time.Millisecond))
	}
	return nil
}

// prepare validates the spec and makes its clients; the engine sends
// nothing before begin.
func prepare(ctx context.Context, spec Spec, f faults) (*engine, error) {
	if err := spec.normalize(); err != nil {
		return nil, fmt.Errorf("load spec: %w", err)
	}
	clients, closeAll, err := newClients(ctx, &spec)
	if err != nil {
		return nil, err
	}
	w := len(clients)
	runCtx, stop := context.WithCancel(ctx)
	return &engine{
		spec: &spec, workers: w, clients: clients, closeClients: closeAll, stop: stop,
		recs: make([]*recorder, w), secs: &seconds{}, runCtx: runCtx, ctx: ctx, faults: f,
	}, nil
}

// begin starts the workers on a schedule that begins at start (its
// warm-up first), waiting for start if it is in the future.
func (e *engine) begin(start time.Time) {
	spec := e.spec
	e.start, e.measureStart = start, start.Add(spec.Warmup)
	if spec.Duration > 0 {
		e.end = e.measureStart.Add(spec.Duration)
	}
	if spec.Requests > 0 {
		e.tickets.Store(spec.Requests)
	}
	seed := spec.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	for i := range e.workers {
		e.recs[i] = newRecorder()
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.worker(i, e.clients[i], rand.New(rand.NewPCG(seed, uint64(i))))
		}()
	}
}

// wait returns when every worker has stopped.
func (e *engine) wait() { e.wg.Wait() }

// close stops the engine and closes its connections.
func (e *engine) close() {
	e.stop()
	e.closeClients()
}

type engine struct {
	spec                     *Spec
	start, measureStart, end time.Time
	workers                  int
	clients                  []client
	closeClients, stop       func()
	wg                       sync.WaitGroup
	recs                     []*recorder
	secs                     *seconds
	ctx, runCtx              context.Context
	tickets                  atomic.Int64
	lastDone                 atomic.Int64 // unix nanos of the last measured completion
	faults                   faults
}

func (e *engine) worker(i int, cl client, rng *rand.Rand) {
	rec := e.recs[i]
	open := e.spec.Rate > 0
	var interval time.Duration
	next := e.start
	if open {
		interval = time.Duration(float64(e.workers) / e.spec.Rate * float64(time.Second))
		next = e.start.Add(interval * time.Duration(i) / time.Duration(e.workers)) // stagger workers
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	waited := false // the previous request ended after this one's intended time
	for e.runCtx.Err() == nil {
		intended := next
		if !open {
			intended = time.Now()
		}
		if !e.end.IsZero() && !intended.Before(e.end) {
			return
		}
		measured := !intended.Before(e.measureStart)
		if measured && e.spec.Requests > 0 && e.tickets.Add(-1) < 0 {
			return
		}
		if open && !e.waitUntil(intended.Add(e.faults.late), timer) {
			return
		}
		if !e.end.IsZero() && !time.Now().Before(e.end) {
			return // too late to start anything in the measured window
		}
		sent := time.Now()
		if !open || e.faults.fromSend {
			intended = sent
		}
		o := cl.do(e.runCtx)
		done := time.Now()
		if e.runCtx.Err() != nil {
			return // interrupted: the request's fate is unknown
		}
		if measured {
			rec.record(intended, sent, done, o, open && waited)
			e.secs.add(int(done.Sub(e.measureStart)/time.Second), done.Sub(intended), o.errClass != "")
			for {
				last := e.lastDone.Load()
				if done.UnixNano() <= last || e.lastDone.CompareAndSwap(last, done.UnixNano()) {
					break
				}
			}
		}
		if open {
			gap := interval
			if e.spec.Arrival == Poisson {
				gap = time.Duration(rng.ExpFloat64() * float64(interval))
			}
			next = intended.Add(gap)
			waited = done.After(next)
		}
	}
}

// waitUntil waits for a send time; it returns false if the run was
// stopped.
func (e *engine) waitUntil(t time.Time, timer *time.Timer) bool {
	return pace.Until(e.runCtx, t, e.spec.SpinWindow, timer) == nil
}

// progress calls report with each measured second of the engines, merged,
// once it is over, until done is closed. The engines share one schedule.
func progress(es []*engine, report func(Second), done <-chan struct{}) {
	if report == nil {
		return
	}
	for k := 1; ; k++ {
		t := time.NewTimer(time.Until(es[0].measureStart.Add(time.Duration(k) * time.Second)))
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C:
		}
		secs := make([]*seconds, len(es))
		for i, e := range es {
			secs[i] = e.secs
		}
		report(mergedSecond(secs, k-1))
	}
}

func (e *engine) result(interrupted bool) (*Result, error) {
	s := e.spec
	r := &Result{
		Labels: s.Labels, Target: s.Target, Protocol: s.Protocol, RequestedRate: s.Rate,
		Connections: s.Connections, Streams: s.Streams, Incomplete: interrupted, Sustained: true,
		Errors: Errors{ByClass: map[string]int64{}}, Endpoints: map[string]int64{},
		Resources: map[string]any{}, Timeseries: []Second{}, Env: environment(), StatusCodes: map[string]int64{},
		latency: newHistogram(), service: newHistogram(), lag: newLagHistogram(), Start: e.measureStart,
		Engine: EngineMeshbench, NewConnectionPerRequest: s.NewConnectionPerRequest,
	}
	if len(s.Targets) > 0 {
		r.Targets = append([]string(nil), s.Targets...)
	}
	if s.Rate > 0 {
		r.Arrival = s.Arrival
	}
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	var lagSum, serviceSum time.Duration
	var lagN int64
	for _, rec := range e.recs {
		r.latency.Merge(rec.latency)
		r.service.Merge(rec.service)
		r.lag.Merge(rec.lag)
		r.ConnectionWaits += rec.connWaits
		for k, v := range rec.errors {
			r.Errors.ByClass[k] += v
			r.Errors.Total += v
		}
		for k, v := range rec.endpoints {
			r.Endpoints[k] += v
		}
		for k, v := range rec.statuses {
			r.StatusCodes[k] += v
		}
		lagSum += rec.lagSum
		lagN += rec.lagN
		serviceSum += rec.serviceSum
	}
	r.Requests = r.latency.TotalCount()
	end := time.Now()
	last := time.Unix(0, e.lastDone.Load())
	switch {
	case interrupted && e.lastDone.Load() > 0:
		end = last
	case !e.end.IsZero() && (s.Requests == 0 || r.Requests < s.Requests):
		end = e.end // the window, even if its last requests completed after it
	case e.lastDone.Load() > 0:
		end = last
	}
	if d := end.Sub(e.measureStart); d > 0 {
		r.DurationS = d.Seconds()
		r.AchievedRate = float64(r.Requests) / r.DurationS
	}
	for i := 0; i < int(r.DurationS); i++ {
		sec, _ := e.secs.get(i)
		r.Timeseries = append(r.Timeseries, sec)
	}
	e.secs.mu.Lock()
	r.seconds = e.secs.acc
	e.secs.mu.Unlock()
	r.Latency = percentilesOf(r.latency)
	r.ServiceTime = percentilesOf(r.service)
	if s.Rate > 0 {
		r.SendLag = percentilesOf(r.lag)
	}
	var err error
	if r.Histogram, err = EncodeHistogram(r.latency); err != nil {
		return nil, err
	}
	if r.ServiceHistogram, err = EncodeHistogram(r.service); err != nil {
		return nil, err
	}
	if s.Rate > 0 && r.Requests > 0 && float64(r.Requests) < 0.99*s.Rate*r.DurationS-1 {
		r.Sustained = false
		meanService := serviceSum / time.Duration(lagN)
		meanLag := lagSum / time.Duration(lagN)
		capacity := float64(e.workers) / meanService.Seconds()
		if capacity < s.Rate {
			r.Reason = fmt.Sprintf("too few connections: %d requests in flight at most, at a mean service time of %v, carry about %.0f req/s, below the %.0f requested; raise --connections (or --streams)",
				e.workers, meanService.Round(time.Microsecond), capacity, s.Rate)
		} else {
			r.Reason = fmt.Sprintf("client saturated: requests left %v after their intended time on average although connections were free; give the load generator more CPU or lower the rate",
				meanLag.Round(time.Microsecond))
		}
	}
	r.Invalid = validity(r, s)
	return r, nil
}

// validity says why an open-loop run did not keep its schedule, or "": it
// fell short of its rate, its own sends were late (p99 send lag above
// MaxSendLag), or more than MaxConnectionWaits of its requests waited for
// a busy connection.
func validity(r *Result, s *Spec) string {
	if s.Rate <= 0 || r.Requests == 0 {
		return ""
	}
	var why []string
	if !r.Sustained {
		why = append(why, "rate not sustained: "+r.Reason)
	}
	if lag := time.Duration(r.SendLag.P99) * time.Microsecond; s.MaxSendLag > 0 && lag > s.MaxSendLag {
		why = append(why, fmt.Sprintf("late sends: p99 send lag %v above the %v bound although connections were free: the generator's CPU or timers could not keep the schedule",
			lag, s.MaxSendLag))
	}
	if f := float64(r.ConnectionWaits) / float64(r.Requests); f > s.MaxConnectionWaits {
		why = append(why, fmt.Sprintf("too few connections: %.1f%% of requests waited for a busy connection (bound %.1f%%); raise the connections",
			100*f, 100*s.MaxConnectionWaits))
	}
	return strings.Join(why, "; ")
}

// environment describes the machine the load ran on.
func environment() map[string]any {
	env := map[string]any{
		"go_version": runtime.Version(), "cores": runtime.NumCPU(), "gomaxprocs": runtime.GOMAXPROCS(0),
		"os": runtime.GOOS, "arch": runtime.GOARCH, "time": time.Now().UTC().Format(time.RFC3339),
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				env["cpu_model"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if h, err := os.Hostname(); err == nil {
		env["hostname"] = h
	}
	return env
}

package fortioengine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"fortio.org/fortio/periodic"

	"github.com/meshbench/meshbench/loadgen"
)

// Engine is the name a result measured by this package carries in
// Result.Engine.
const Engine = "fortio"

// ErrUnsupported is wrapped by every error about something fortio cannot
// do: a Spec field it cannot honour, or a target it cannot call. A
// scenario runner reports such a cell n/a with the error's text.
var ErrUnsupported = errors.New("not supported by fortio")

// Run runs the load spec describes with fortio's runners and returns what
// they measured, in loadgen's result schema (Engine "fortio"). A spec
// field fortio cannot honour is an error naming it (wrapping
// ErrUnsupported), before any load is sent.
//
// The run waits for spec.Start if set, then runs the warm-up as a fortio
// run of its own at the same load, unrecorded, then the measured run.
// When ctx is cancelled fortio's runner is aborted: its threads stop after
// their calls in flight, which are not recorded (fortio's HTTP/1.1 client
// cannot be interrupted, so that can take up to spec.Timeout), and the
// result of what was measured is returned marked Incomplete, with a nil
// error.
func Run(ctx context.Context, spec loadgen.Spec) (*loadgen.Result, error) {
	r, _, err := run(ctx, spec)
	return r, err
}

// load is one protocol's way to run fortio.
type load interface {
	// warm prepares the connections before the first run.
	warm() error
	// run runs fortio once with ro (rate, duration, count) and returns
	// fortio's own results of each runner.
	run(ctx context.Context, ro periodic.RunnerOptions) ([]periodic.RunnerResults, error)
	loggers() []*logger
	close()
}

// run is Run, also returning fortio's own results of the measured run.
func run(ctx context.Context, spec loadgen.Spec) (*loadgen.Result, []periodic.RunnerResults, error) {
	if err := checkSpec(&spec); err != nil {
		return nil, nil, err
	}
	if err := spec.Normalize(); err != nil {
		return nil, nil, fmt.Errorf("fortio engine: load spec: %w", err)
	}
	if err := checkNormalized(&spec); err != nil {
		return nil, nil, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	w := newWindow(runCtx)
	var ld load
	if spec.Protocol == loadgen.GRPC {
		ld = newGRPCLoad(&spec, w)
	} else {
		h, err := newHTTPLoad(runCtx, &spec, w)
		if err != nil {
			return nil, nil, err
		}
		ld = h
	}
	defer ld.close()
	if err := ld.warm(); err != nil {
		return nil, nil, err
	}
	if !spec.Start.IsZero() {
		t := time.NewTimer(time.Until(spec.Start))
		select {
		case <-t.C:
		case <-runCtx.Done():
			t.Stop()
		}
	}
	if spec.Warmup > 0 && runCtx.Err() == nil {
		if _, err := ld.run(runCtx, runnerOptions(&spec, spec.Warmup, 0)); err != nil {
			return nil, nil, err // the warm-up is a run like the measured one
		}
	}
	var results []periodic.RunnerResults
	if runCtx.Err() == nil {
		w.measuring = true
		done := make(chan struct{})
		var progress sync.WaitGroup
		if spec.Progress != nil {
			progress.Go(func() { w.progress(spec.Progress, done) })
		}
		var err error
		results, err = ld.run(runCtx, runnerOptions(&spec, spec.Duration, spec.Requests))
		close(done)
		progress.Wait()
		if err != nil {
			return nil, nil, err
		}
	}
	r, err := result(&spec, w, ld.loggers(), results, ctx.Err() != nil)
	if err != nil {
		return nil, nil, err
	}
	if spec.Protocol == loadgen.GRPC && unimplemented(r.StatusCodes, r.Requests) {
		return nil, nil, fmt.Errorf("fortio engine: protocol grpc: every %s call was refused as unimplemented: the target does not serve the health service fortio's gRPC runner calls (meshbench's backends serve grpc.testing.TestService only): %w",
			grpcCall, ErrUnsupported)
	}
	return r, results, nil
}

// runnerOptions are fortio's runner options for one run of the spec.
func runnerOptions(s *loadgen.Spec, d time.Duration, requests int64) periodic.RunnerOptions {
	ro := periodic.RunnerOptions{
		QPS: -1, // fortio's max qps
		// As loadgen staggers its workers over the first interval.
		Uniform:     s.Rate > 0,
		Duration:    d,
		Exactly:     requests,
		Out:         io.Discard,
		Percentiles: []float64{50, 90, 99, 99.9},
		Resolution:  0.0001, // fortio's own histogram, in tests: 100 µs buckets
	}
	if s.Rate > 0 {
		ro.QPS = s.Rate
	}
	return ro
}

// result assembles the loadgen result of the measured run.
func result(s *loadgen.Spec, w *window, logs []*logger, fortio []periodic.RunnerResults, interrupted bool) (*loadgen.Result, error) {
	r := &loadgen.Result{
		Labels: maps.Clone(s.Labels), Target: s.Target, Protocol: s.Protocol, RequestedRate: s.Rate,
		Connections: s.Connections, Streams: s.Streams, Engine: Engine, Sustained: true, Incomplete: interrupted,
		NewConnectionPerRequest: s.NewConnectionPerRequest, Start: w.start,
		Errors: loadgen.Errors{ByClass: map[string]int64{}}, Endpoints: map[string]int64{}, StatusCodes: map[string]int64{},
		Env: loadgen.Environment(),
	}
	if len(s.Targets) > 0 {
		r.Targets = append([]string(nil), s.Targets...)
	}
	if s.Protocol == loadgen.HTTP1 {
		r.Streams = 1
	}
	if s.Rate > 0 {
		r.Arrival = loadgen.Uniform
	}
	latency := loadgen.NewHistogram()
	var threads int
	var lastDone time.Time
	for _, l := range logs {
		for _, th := range l.threads {
			latency.Merge(th.hist)
			for k, v := range th.errors {
				r.Errors.ByClass[k] += v
				r.Errors.Total += v
			}
			for k, v := range th.endpoints {
				r.Endpoints[k] += v
			}
			for k, v := range th.statuses {
				r.StatusCodes[k] += v
			}
			if th.lastDone.After(lastDone) {
				lastDone = th.lastDone
			}
		}
	}
	for _, f := range fortio {
		threads += f.NumThreads
		r.Env["fortio_version"], r.Env["fortio_run_type"] = f.Version, f.RunType
	}
	if threads > 0 { // fortio lowers the thread count of short runs
		r.Connections = threads / r.Streams
	}
	// The measured window is the requested duration, as in loadgen, even
	// though fortio's staggered threads and its last responses end a
	// little after it; for a request count, or when interrupted, it ends
	// at the last recorded completion.
	switch {
	case w.start.IsZero():
	case s.Duration > 0 && !interrupted:
		r.DurationS = s.Duration.Seconds()
	case lastDone.After(w.start):
		r.DurationS = lastDone.Sub(w.start).Seconds()
	}
	service := loadgen.NewHistogram()
	service.Merge(latency) // fortio measures from the actual send
	if err := r.Assemble(loadgen.Measured{Latency: latency, Service: service, Seconds: w.secs}); err != nil {
		return nil, fmt.Errorf("fortio engine: %w", err)
	}
	if s.Rate > 0 && r.Requests > 0 && r.AchievedRate < 0.99*s.Rate {
		r.Sustained = false
		r.Reason = reason(r, threads, s.Rate)
		r.Invalid = r.Reason
	}
	return r, nil
}

// reason explains why fortio fell short of the requested rate.
func reason(r *loadgen.Result, threads int, rate float64) string {
	mean := time.Duration(r.Latency.Mean * float64(time.Microsecond))
	capacity := float64(threads) / mean.Seconds()
	if capacity < rate {
		return fmt.Sprintf("too few connections: fortio's %d threads each wait for their previous response; at a mean response time of %v they carry about %.0f req/s, below the %.0f requested; raise --connections",
			threads, mean.Round(time.Microsecond), capacity, rate)
	}
	return fmt.Sprintf("fortio fell behind its schedule (%.1f of %.0f req/s) although its threads could carry about %.0f req/s: the client is saturated, or a stall left threads behind when the duration ended (fortio then stops them); give the load generator more CPU or lower the rate",
		r.AchievedRate, rate, capacity)
}

// runAborting gives ro a fresh fortio aborter and runs f, which runs a
// fortio runner with ro; it aborts the runner when ctx is done. Passing
// our own aborter also keeps fortio from installing its process-wide
// SIGINT handler (which it resets, for everyone, when its last run ends).
func runAborting(ctx context.Context, ro *periodic.RunnerOptions, f func()) {
	ro.Stop = periodic.NewAborter()
	stop := ro.Stop
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stop.Abort(false)
		case <-done:
		}
	}()
	defer close(done)
	f()
}

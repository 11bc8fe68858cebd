package fortioengine

import (
	"context"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"google.golang.org/grpc/codes"

	"fortio.org/fortio/periodic"

	"github.com/meshbench/meshbench/loadgen"
)

// Histogram bounds, in microseconds, as loadgen's.
const (
	histMin = 1
	histMax = 60_000_000
)

func clampUs(d time.Duration) int64 {
	return min(max(d.Microseconds(), histMin), histMax)
}

// window is the measured part of a run, shared by every fortio runner of
// the run and every thread of them.
type window struct {
	ctx context.Context // the run's: once done, nothing more is recorded
	// measuring is false during the warm-up. It is set while no runner
	// runs, before the measured runners start their threads.
	measuring bool

	startOnce sync.Once
	started   chan struct{} // closed when the first measured request starts
	start     time.Time     // its start

	mu   sync.Mutex
	secs []loadgen.SecondHistogram
}

func newWindow(ctx context.Context) *window {
	return &window{ctx: ctx, started: make(chan struct{})}
}

// begin marks the start of the measured window at the first measured
// request fortio starts.
func (w *window) begin(t time.Time) {
	w.startOnce.Do(func() {
		w.start = t
		close(w.started)
	})
}

// add records one completed request into the second it completed in.
func (w *window) add(done time.Time, rt time.Duration, failed bool) {
	i := int(done.Sub(w.start) / time.Second)
	if i < 0 {
		i = 0
	}
	w.mu.Lock()
	for len(w.secs) <= i {
		w.secs = append(w.secs, loadgen.SecondHistogram{Hist: loadgen.NewSecondHistogram()})
	}
	w.secs[i].Hist.RecordValue(clampUs(rt))
	if failed {
		w.secs[i].Errors++
	}
	w.mu.Unlock()
}

// second returns second i of the series so far.
func (w *window) second(i int) loadgen.Second {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i >= len(w.secs) {
		return loadgen.Second{T: i}
	}
	h := w.secs[i].Hist
	return loadgen.Second{T: i, Rate: float64(h.TotalCount()), P50: h.ValueAtQuantile(50), P99: h.ValueAtQuantile(99), Errors: w.secs[i].Errors}
}

// progress calls f with each second of the window once it is over, until
// done is closed.
func (w *window) progress(f func(loadgen.Second), done <-chan struct{}) {
	select {
	case <-w.started:
	case <-done:
		return
	}
	for k := 1; ; k++ {
		t := time.NewTimer(time.Until(w.start.Add(time.Duration(k) * time.Second)))
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C:
		}
		f(w.second(k - 1))
	}
}

// outcome is what became of one request.
type outcome struct {
	status  string // HTTP status or gRPC code of the response; "" without one
	class   string // error class; "" on success
	backend string // X-Backend of the response, if any
	// transport marks an error without a response (a socket error), which
	// is a timeout when the call lasted the whole timeout.
	transport bool
}

// thread is what one fortio thread measured. Only its thread touches it
// while a runner runs.
type thread struct {
	hist      *hdrhistogram.Histogram
	errors    map[string]int64
	endpoints map[string]int64
	statuses  map[string]int64
	lastDone  time.Time
	// last is the outcome of the thread's last call, set by an HTTP
	// runnable and read by Report right after it.
	last outcome
	// cancel ends the deadline context of a gRPC call.
	cancel context.CancelFunc
}

func newThread() *thread {
	return &thread{hist: loadgen.NewHistogram(), errors: map[string]int64{}, endpoints: map[string]int64{}, statuses: map[string]int64{}}
}

// logger is the periodic.AccessLogger of one fortio runner: fortio calls
// Start just before and Report just after every call, on the call's
// thread, with the call's start and its duration as fortio measured it.
type logger struct {
	w       *window
	threads []*thread
	timeout time.Duration
	// grpc: the outcome is read from fortio's gRPC runner's details, and
	// every call gets a context with the timeout. Otherwise it is the
	// HTTP runnable's thread.last.
	grpc bool
}

var _ periodic.AccessLogger = (*logger)(nil)

func newLogger(w *window, threads int, timeout time.Duration, grpc bool) *logger {
	l := &logger{w: w, timeout: timeout, grpc: grpc}
	for range threads {
		l.threads = append(l.threads, newThread())
	}
	return l
}

// Start implements periodic.AccessLogger.
func (l *logger) Start(ctx context.Context, id periodic.ThreadID, _ int64, start time.Time) context.Context {
	if l.w.measuring {
		l.w.begin(start)
	}
	if !l.grpc {
		return ctx // the HTTP runnables use the run's context themselves
	}
	// fortio's gRPC runner has no timeout of its own; this context also
	// cancels the call when the run is interrupted.
	c, cancel := context.WithTimeout(l.w.ctx, l.timeout)
	l.threads[id].cancel = cancel
	return c
}

// Report implements periodic.AccessLogger.
func (l *logger) Report(_ context.Context, id periodic.ThreadID, _ int64, start time.Time, latency float64, ok bool, details string) {
	th := l.threads[id]
	if th.cancel != nil {
		th.cancel()
		th.cancel = nil
	}
	if !l.w.measuring || l.w.ctx.Err() != nil {
		return // warm-up, or interrupted: the call's fate is unknown
	}
	rt := time.Duration(latency * float64(time.Second))
	o := th.last
	if l.grpc {
		o = grpcOutcome(ok, details)
	}
	if o.transport && rt >= l.timeout {
		o.class = "timeout"
	}
	th.hist.RecordValue(clampUs(rt))
	if o.class != "" {
		th.errors[o.class]++
	}
	if o.status != "" {
		th.statuses[o.status]++
	}
	if o.backend != "" {
		th.endpoints[o.backend]++
	}
	done := start.Add(rt)
	th.lastDone = done
	l.w.add(done, rt, o.class != "")
}

// Info implements periodic.AccessLogger.
func (l *logger) Info() string { return "meshbench recorder" }

// grpcOutcome reads the outcome of a call of fortio's gRPC health-check
// runner from what its Run returned: "SERVING", another health status
// (the call succeeded, the service is not serving) or the call's error
// text, "rpc error: code = Unavailable desc = ...".
func grpcOutcome(ok bool, details string) outcome {
	if ok {
		return outcome{status: codes.OK.String()}
	}
	rest, isRPC := strings.CutPrefix(details, "rpc error: code = ")
	if !isRPC {
		return outcome{status: codes.OK.String(), class: "health_" + details}
	}
	name, _, _ := strings.Cut(rest, " ")
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if c.String() != name {
			continue
		}
		switch c {
		case codes.DeadlineExceeded:
			return outcome{status: name, class: "timeout"}
		case codes.OK:
			return outcome{status: name, class: "other"}
		}
		return outcome{status: name, class: "grpc_" + name}
	}
	return outcome{class: "other", transport: true}
}

package loadgen

import (
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs to 60 s at 3 significant digits.
const (
	histMin    = 1
	histMax    = 60_000_000
	histDigits = 3
)

func newHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histDigits) }

// newLagHistogram records send lags, which start at 0.
func newLagHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(0, histMax, histDigits) }

// recorder is one worker's measurements. Only its worker writes to it.
type recorder struct {
	latency, service *hdrhistogram.Histogram
	// lag is the send lag of requests whose connection was free at their
	// intended time; connWaits counts the others.
	lag        *hdrhistogram.Histogram
	connWaits  int64
	errors     map[string]int64
	endpoints  map[string]int64
	statuses   map[string]int64
	ok, failed int64
	lagSum     time.Duration // sum of actual - intended send time
	lagN       int64
	serviceSum time.Duration
}

func newRecorder() *recorder {
	return &recorder{latency: newHistogram(), service: newHistogram(), lag: newLagHistogram(), errors: map[string]int64{}, endpoints: map[string]int64{}, statuses: map[string]int64{}}
}

// outcome is what a protocol client reports for one request.
type outcome struct {
	errClass string // "" on success
	backend  string // the X-Backend that answered, if any
	status   string // HTTP status or gRPC code of the response, "" without one
}

func clampUs(d time.Duration) int64 {
	us := d.Microseconds()
	if us < histMin {
		return histMin
	}
	if us > histMax {
		return histMax
	}
	return us
}

// record records one request; waited marks a request whose connection was
// busy at its intended send time.
// clampLagUs is a send lag in microseconds, 0 (on time or early) up to
// histMax.
func clampLagUs(d time.Duration) int64 { return min(max(d.Microseconds(), 0), histMax) }

func (r *recorder) record(intended, sent, done time.Time, o outcome, waited bool) {
	rt, st := done.Sub(intended), done.Sub(sent)
	r.latency.RecordValue(clampUs(rt))
	r.service.RecordValue(clampUs(st))
	if waited {
		r.connWaits++
	} else {
		r.lag.RecordValue(clampLagUs(sent.Sub(intended)))
	}
	r.lagSum += sent.Sub(intended)
	r.lagN++
	r.serviceSum += st
	if o.errClass != "" {
		r.errors[o.errClass]++
		r.failed++
	} else {
		r.ok++
	}
	if o.backend != "" {
		r.endpoints[o.backend]++
	}
	if o.status != "" {
		r.statuses[o.status]++
	}
}

// seconds accumulates the per-second series shared by all workers.
type seconds struct {
	mu  sync.Mutex
	acc []*secondAcc
}

type secondAcc struct {
	count, errors int64
	hist          *hdrhistogram.Histogram
}

func (s *seconds) add(i int, rt time.Duration, failed bool) {
	if i < 0 {
		return
	}
	s.mu.Lock()
	for len(s.acc) <= i {
		s.acc = append(s.acc, &secondAcc{hist: hdrhistogram.New(histMin, histMax, 2)})
	}
	a := s.acc[i]
	a.count++
	if failed {
		a.errors++
	}
	a.hist.RecordValue(clampUs(rt))
	s.mu.Unlock()
}

// mergedSecond is second i of several accumulators together.
func mergedSecond(ss []*seconds, i int) Second {
	out := Second{T: i}
	h := hdrhistogram.New(histMin, histMax, 2)
	for _, s := range ss {
		s.mu.Lock()
		if i >= 0 && i < len(s.acc) {
			a := s.acc[i]
			out.Rate += float64(a.count)
			out.Errors += a.errors
			h.Merge(a.hist)
		}
		s.mu.Unlock()
	}
	if h.TotalCount() > 0 {
		out.P50, out.P99 = h.ValueAtQuantile(50), h.ValueAtQuantile(99)
	}
	return out
}

func (s *seconds) get(i int) (Second, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.acc) {
		return Second{T: i}, false
	}
	a := s.acc[i]
	return Second{T: i, Rate: float64(a.count), P50: a.hist.ValueAtQuantile(50), P99: a.hist.ValueAtQuantile(99), Errors: a.errors}, true
}

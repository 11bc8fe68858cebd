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

// recorder is one worker's measurements. Only its worker writes to it.
type recorder struct {
	latency, service *hdrhistogram.Histogram
	errors           map[string]int64
	endpoints        map[string]int64
	statuses         map[string]int64
	ok, failed       int64
	lagSum           time.Duration // sum of actual - intended send time
	lagN             int64
	serviceSum       time.Duration
}

func newRecorder() *recorder {
	return &recorder{latency: newHistogram(), service: newHistogram(), errors: map[string]int64{}, endpoints: map[string]int64{}, statuses: map[string]int64{}}
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

func (r *recorder) record(intended, sent, done time.Time, o outcome) {
	rt, st := done.Sub(intended), done.Sub(sent)
	r.latency.RecordValue(clampUs(rt))
	r.service.RecordValue(clampUs(st))
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

func (s *seconds) get(i int) (Second, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < 0 || i >= len(s.acc) {
		return Second{T: i}, false
	}
	a := s.acc[i]
	return Second{T: i, Rate: float64(a.count), P50: a.hist.ValueAtQuantile(50), P99: a.hist.ValueAtQuantile(99), Errors: a.errors}, true
}

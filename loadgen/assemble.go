package loadgen

import (
	"errors"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// This file is what another load engine (loadgen/fortioengine) needs to
// produce a Result that means what Run's does: the same Spec defaults and
// validation, the same histogram bounds, the same environment record, and
// a Result whose unexported histograms LatencyHistogram,
// ServiceTimeHistogram and WriteIntervalLog read.

// Normalize fills the defaults of s's zero fields and validates s, as Run
// does before it starts.
func (s *Spec) Normalize() error { return s.normalize() }

// Environment describes the machine the load runs on, as Result.Env does.
func Environment() map[string]any { return environment() }

// NewHistogram returns an empty response-time histogram with the bounds
// of every Result: 1 µs to 60 s, 3 significant digits, values in
// microseconds.
func NewHistogram() *hdrhistogram.Histogram { return newHistogram() }

// NewSecondHistogram returns an empty histogram for one second of the
// time series: the same bounds at 2 significant digits, as
// WriteIntervalLog writes its intervals.
func NewSecondHistogram() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, 2) }

// Measured is what a load engine recorded, for Result.Assemble.
type Measured struct {
	// Latency and Service are the response-time and service-time
	// histograms of the measured window (NewHistogram bounds); every
	// completed request, errors included, is in both.
	Latency, Service *hdrhistogram.Histogram
	// Seconds are the whole seconds of the measured window from
	// Result.Start: Seconds[i] holds the response times of the requests
	// that completed in second i (NewSecondHistogram) and how many of them
	// failed. A nil Hist is an empty second.
	Seconds []SecondHistogram
}

// SecondHistogram is one second of Measured.Seconds.
type SecondHistogram struct {
	Hist   *hdrhistogram.Histogram
	Errors int64
}

// Assemble fills r from m: Requests, Latency, ServiceTime, Histogram and
// ServiceHistogram, AchievedRate (from r.DurationS, which the caller sets
// first, with Start), Timeseries, the histograms behind LatencyHistogram,
// ServiceTimeHistogram and WriteIntervalLog, and Env when it is nil. Nil
// maps and series become empty ones, as Run leaves them. Every other field
// (labels, target, rate, errors, status codes, ...) is the caller's.
func (r *Result) Assemble(m Measured) error {
	if m.Latency == nil || m.Service == nil {
		return errors.New("assembling result: a latency and a service-time histogram are needed")
	}
	r.latency, r.service = m.Latency, m.Service
	r.seconds = make([]*secondAcc, len(m.Seconds))
	for i, s := range m.Seconds {
		h := s.Hist
		if h == nil {
			h = NewSecondHistogram()
		}
		r.seconds[i] = &secondAcc{count: h.TotalCount(), errors: s.Errors, hist: h}
	}
	r.Requests = r.latency.TotalCount()
	if r.DurationS > 0 {
		r.AchievedRate = float64(r.Requests) / r.DurationS
	}
	series := &seconds{acc: r.seconds}
	r.Timeseries = []Second{}
	for i := 0; i < int(r.DurationS); i++ {
		sec, _ := series.get(i)
		r.Timeseries = append(r.Timeseries, sec)
	}
	r.Latency, r.ServiceTime = percentilesOf(r.latency), percentilesOf(r.service)
	var err error
	if r.Histogram, err = EncodeHistogram(r.latency); err != nil {
		return err
	}
	if r.ServiceHistogram, err = EncodeHistogram(r.service); err != nil {
		return err
	}
	if r.Env == nil {
		r.Env = environment()
	}
	for _, m := range []*map[string]int64{&r.Errors.ByClass, &r.Endpoints, &r.StatusCodes} {
		if *m == nil {
			*m = map[string]int64{}
		}
	}
	if r.Labels == nil {
		r.Labels = map[string]string{}
	}
	if r.Resources == nil {
		r.Resources = map[string]any{}
	}
	return nil
}

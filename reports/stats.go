package reports

import (
	"fmt"
	"math"
	"slices"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Spread summarises one measure over the repeats of a variant: the
// median, the smallest and the largest value, and how many repeats had
// it. A Spread of no values has N 0 and NaN fields.
type Spread struct {
	Median, Min, Max float64
	N                int
}

// SpreadOf returns the spread of xs, ignoring NaNs. The median of an even
// count is the mean of the middle two.
func SpreadOf(xs []float64) Spread {
	v := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return Spread{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(v)
	n := len(v)
	med := v[n/2]
	if n%2 == 0 {
		med = (v[n/2-1] + v[n/2]) / 2
	}
	return Spread{Median: med, Min: v[0], Max: v[n-1], N: n}
}

// OK reports whether the spread has at least one value.
func (s Spread) OK() bool { return s.N > 0 }

// Stats are a variant's measures over its repeats. Latencies are in
// microseconds, from the intended send time.
type Stats struct {
	P50, P90, P99, P999, Max Spread
	AchievedRate             Spread // requests/s
	Errors                   Spread // failed requests
	Requests                 Spread
	// CPUPerRequest, CPUSeconds and RSSPeak are the topology's totals
	// (all proxies); variants without proxies have none.
	CPUPerRequest Spread // µs of CPU per request
	CPUSeconds    Spread
	RSSPeak       Spread // bytes, the sum of the proxies' peaks
	// Proxies is the number of proxy instances of the topology (the most
	// any repeat reported).
	Proxies int
	// PerProxy has every proxy instance, by name, in the order first seen.
	PerProxy []ProxyStats
}

// ProxyStats are one proxy instance's measures over the repeats.
type ProxyStats struct {
	Name, Kind, Node string
	CPUPerRequest    Spread
	CPUSeconds       Spread
	RSSPeak          Spread
	// IdleRSS is the RSS before the load started and AnonPeak the peak
	// of the anonymous RSS, in bytes; empty where the platform cannot
	// tell.
	IdleRSS, AnonPeak Spread
}

// known is a byte count that 0 marks as not measured: NaN then, which
// SpreadOf leaves out.
func known(b int64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(b)
}

// summarize fills v.Stats and v.Merged from the repeats with a valid
// result (Done): invalid repeats are left out of every spread.
func (v *Variant) summarize() error {
	type proxyVals struct {
		ProxyStats
		cpuReq, cpuSec, rss, idle, anon []float64
	}
	var p50, p90, p99, p999, pmax, rate, errs, reqs, cpuReq, cpuSec, rss []float64
	var proxies []*proxyVals
	byName := map[string]*proxyVals{}
	var hs []*hdrhistogram.Histogram
	for _, c := range v.Done() {
		r := c.Result
		p50 = append(p50, float64(r.Latency.P50))
		p90 = append(p90, float64(r.Latency.P90))
		p99 = append(p99, float64(r.Latency.P99))
		p999 = append(p999, float64(r.Latency.P999))
		pmax = append(pmax, float64(r.Latency.Max))
		rate = append(rate, r.AchievedRate)
		errs = append(errs, float64(r.Errors.Total))
		reqs = append(reqs, float64(r.Requests))
		hs = append(hs, c.Histogram)
		if len(r.Resources.Proxies) == 0 {
			continue
		}
		v.Stats.Proxies = max(v.Stats.Proxies, len(r.Resources.Proxies))
		t := r.Resources.Total
		cpuReq = append(cpuReq, t.CPUMicrosPerRequest)
		cpuSec = append(cpuSec, t.CPUSeconds)
		rss = append(rss, float64(t.RSSPeakBytes))
		for _, p := range r.Resources.Proxies {
			pv := byName[p.Name]
			if pv == nil {
				pv = &proxyVals{ProxyStats: ProxyStats{Name: p.Name, Kind: p.Kind, Node: p.Node}}
				byName[p.Name] = pv
				proxies = append(proxies, pv)
			}
			pv.cpuReq = append(pv.cpuReq, p.CPUMicrosPerRequest)
			pv.cpuSec = append(pv.cpuSec, p.CPUSeconds)
			pv.rss = append(pv.rss, float64(p.RSSPeakBytes))
			pv.idle = append(pv.idle, known(p.IdleRSSBytes))
			pv.anon = append(pv.anon, known(p.AnonPeakBytes))
		}
	}
	s := &v.Stats
	s.P50, s.P90, s.P99, s.P999, s.Max = SpreadOf(p50), SpreadOf(p90), SpreadOf(p99), SpreadOf(p999), SpreadOf(pmax)
	s.AchievedRate, s.Errors, s.Requests = SpreadOf(rate), SpreadOf(errs), SpreadOf(reqs)
	s.CPUPerRequest, s.CPUSeconds, s.RSSPeak = SpreadOf(cpuReq), SpreadOf(cpuSec), SpreadOf(rss)
	for _, pv := range proxies {
		pv.CPUPerRequest, pv.CPUSeconds, pv.RSSPeak = SpreadOf(pv.cpuReq), SpreadOf(pv.cpuSec), SpreadOf(pv.rss)
		pv.IdleRSS, pv.AnonPeak = SpreadOf(pv.idle), SpreadOf(pv.anon)
		s.PerProxy = append(s.PerProxy, pv.ProxyStats)
	}
	m, err := MergeHistograms(hs)
	if err != nil {
		return err
	}
	v.Merged = m
	return nil
}

// MergeHistograms returns one histogram holding every value of hs (HdrHistogram
// merge: counts are added, nothing is averaged), or nil for none.
func MergeHistograms(hs []*hdrhistogram.Histogram) (*hdrhistogram.Histogram, error) {
	if len(hs) == 0 {
		return nil, nil
	}
	lo, hi, digits := hs[0].LowestTrackableValue(), hs[0].HighestTrackableValue(), hs[0].SignificantFigures()
	for _, h := range hs[1:] {
		lo, hi, digits = min(lo, h.LowestTrackableValue()), max(hi, h.HighestTrackableValue()), max(digits, h.SignificantFigures())
	}
	m := hdrhistogram.New(max(lo, 1), hi, int(digits))
	for _, h := range hs {
		if dropped := m.Merge(h); dropped > 0 {
			return nil, fmt.Errorf("merging histograms: %d values out of range", dropped)
		}
	}
	return m, nil
}

package loadgen

import (
	"errors"
	"fmt"
	"math"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Merge combines results measured at the same time into one: the streams
// of a mix, or the generators that shared a load. Histograms are merged
// (never percentiles averaged), counts and rates added; the merge is
// invalid, unsustained or incomplete when a part is. Parts decoded from
// JSON are merged from their encoded histograms; their per-second
// percentiles, which JSON keeps only as figures, merge as the highest of
// the parts (an upper bound), their per-second rates and errors exactly.
func Merge(parts []*Result) (*Result, error) {
	if len(parts) == 0 {
		return nil, errors.New("merging results: none")
	}
	first := parts[0]
	m := &Result{
		Labels: map[string]string{}, Target: first.Target, Protocol: first.Protocol, Arrival: first.Arrival,
		Sustained: true, Errors: Errors{ByClass: map[string]int64{}}, Endpoints: map[string]int64{},
		StatusCodes: map[string]int64{}, Resources: map[string]any{}, Timeseries: []Second{}, Env: first.Env,
		Engine: first.Engine, NewConnectionPerRequest: first.NewConnectionPerRequest, Start: first.Start,
		latency: newHistogram(), service: newHistogram(), lag: newLagHistogram(),
	}
	var reasons, invalid []string
	lagExact := true
	seen := map[string]bool{}
	for i, p := range parts {
		name := partName(p, i)
		lat, err := p.histogram(p.latency, p.Histogram)
		if err != nil {
			return nil, fmt.Errorf("merging %s: %w", name, err)
		}
		svc, err := p.histogram(p.service, p.ServiceHistogram)
		if err != nil {
			return nil, fmt.Errorf("merging %s: %w", name, err)
		}
		m.latency.Merge(lat)
		m.service.Merge(svc)
		if p.lag != nil {
			m.lag.Merge(p.lag)
		} else {
			lagExact = false
		}
		if p.Protocol != m.Protocol {
			m.Protocol = ProtocolMix
		}
		for _, t := range append([]string{p.Target}, p.Targets...) {
			if t != "" && !seen[t] {
				seen[t] = true
				m.Targets = append(m.Targets, t)
			}
		}
		m.RequestedRate += p.RequestedRate
		m.DurationS = math.Max(m.DurationS, p.DurationS)
		m.Connections += p.Connections
		m.Streams = max(m.Streams, p.Streams)
		m.Incomplete = m.Incomplete || p.Incomplete
		if !p.Sustained {
			m.Sustained = false
			reasons = append(reasons, name+": "+p.Reason)
		}
		if p.Invalid != "" {
			invalid = append(invalid, name+": "+p.Invalid)
		}
		m.ConnectionWaits += p.ConnectionWaits
		m.Errors.Total += p.Errors.Total
		for k, v := range p.Errors.ByClass {
			m.Errors.ByClass[k] += v
		}
		for k, v := range p.Endpoints {
			m.Endpoints[k] += v
		}
		for k, v := range p.StatusCodes {
			m.StatusCodes[k] += v
		}
		if !p.Start.IsZero() && (m.Start.IsZero() || p.Start.Before(m.Start)) {
			m.Start = p.Start
		}
		if p.SendLag.P99 > m.SendLag.P99 {
			m.SendLag = p.SendLag
		}
	}
	if len(m.Targets) > 0 {
		m.Target = m.Targets[0]
	}
	if len(m.Targets) < 2 {
		m.Targets = nil
	}
	m.Reason = strings.Join(reasons, "; ")
	m.Invalid = strings.Join(invalid, "; ")
	m.Requests = m.latency.TotalCount()
	if m.DurationS > 0 {
		m.AchievedRate = float64(m.Requests) / m.DurationS
	}
	m.Latency, m.ServiceTime = percentilesOf(m.latency), percentilesOf(m.service)
	if lagExact && m.RequestedRate > 0 {
		m.SendLag = percentilesOf(m.lag)
	}
	m.mergeSeconds(parts)
	var err error
	if m.Histogram, err = EncodeHistogram(m.latency); err != nil {
		return nil, err
	}
	if m.ServiceHistogram, err = EncodeHistogram(m.service); err != nil {
		return nil, err
	}
	return m, nil
}

// mergeSeconds merges the parts' per-second series: exactly from their
// accumulators when every part has them, else from their figures.
func (m *Result) mergeSeconds(parts []*Result) {
	n := int(m.DurationS)
	exact := true
	for _, p := range parts {
		exact = exact && (p.seconds != nil || len(p.Timeseries) == 0)
	}
	if exact {
		ss := make([]*seconds, len(parts))
		for i, p := range parts {
			ss[i] = &seconds{acc: p.seconds}
		}
		for i := range n {
			m.Timeseries = append(m.Timeseries, mergedSecond(ss, i))
		}
		m.seconds = make([]*secondAcc, n)
		for i := range n {
			a := &secondAcc{hist: hdrhistogram.New(histMin, histMax, 2)}
			for _, p := range parts {
				if i < len(p.seconds) {
					a.count += p.seconds[i].count
					a.errors += p.seconds[i].errors
					a.hist.Merge(p.seconds[i].hist)
				}
			}
			m.seconds[i] = a
		}
		return
	}
	for i := range n {
		s := Second{T: i}
		for _, p := range parts {
			if i < len(p.Timeseries) {
				q := p.Timeseries[i]
				s.Rate += q.Rate
				s.Errors += q.Errors
				s.P50, s.P99 = max(s.P50, q.P50), max(s.P99, q.P99)
			}
		}
		m.Timeseries = append(m.Timeseries, s)
	}
}

// histogram is h, or the encoded histogram when the result was decoded.
func (r *Result) histogram(h *hdrhistogram.Histogram, encoded string) (*hdrhistogram.Histogram, error) {
	if h != nil {
		return h, nil
	}
	if encoded == "" {
		return newHistogram(), nil
	}
	return DecodeHistogram(encoded)
}

// partName names a part of a merge in messages.
func partName(p *Result, i int) string {
	switch {
	case p.Stream != "":
		return "stream " + p.Stream
	case p.Labels["generator"] != "":
		return "generator " + p.Labels["generator"]
	}
	return fmt.Sprintf("part %d", i)
}

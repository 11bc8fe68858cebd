package proxymetrics

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/reports/result"
)

// Series of the reference proxy (proxy/metrics) that the platform reads.
const (
	MetricLatency         = "response_latency_ms"
	MetricUpstream        = "upstream_requests_total"
	MetricRetries         = "upstream_retries_total"
	MetricEjections       = "upstream_ejections_total"
	MetricHandshakes      = "tls_handshakes_total"
	MetricBudgetExhausted = "upstream_retry_budget_exhausted_total"
)

// Families is one scrape of a /metrics endpoint.
type Families map[string]*dto.MetricFamily

// Scrape fetches and parses http://admin/metrics.
func Scrape(ctx context.Context, client *http.Client, admin string) (Families, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", admin, err)
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", admin, resp.Status)
	}
	mfs, err := Parse(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", admin, err)
	}
	return mfs, nil
}

// Parse reads a scrape in the Prometheus text format.
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return mfs, nil
}

// LabelsOf returns a metric's labels as a map.
func LabelsOf(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// signature identifies a series within its family.
func signature(m *dto.Metric) string {
	parts := make([]string, 0, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// counterDeltas returns, for every series of a counter family, its increase
// from start to end, with the series' labels. A series absent at the start
// counts from zero, and so does one whose value went down (it was reset:
// an endpoint that left and came back).
func counterDeltas(start, end Families, name string) []counterDelta {
	before := map[string]float64{}
	if mf := start[name]; mf != nil {
		for _, m := range mf.GetMetric() {
			before[signature(m)] = Value(m)
		}
	}
	var out []counterDelta
	if mf := end[name]; mf != nil {
		for _, m := range mf.GetMetric() {
			v := Value(m)
			if b, ok := before[signature(m)]; ok && b <= v {
				v -= b
			}
			out = append(out, counterDelta{labels: LabelsOf(m), delta: v})
		}
	}
	return out
}

type counterDelta struct {
	labels map[string]string
	delta  float64
}

// Value returns a counter's, gauge's or untyped metric's value.
func Value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// histogram is a cumulative bucket histogram: cum[b] observations were at
// most b; total counts every observation, including those above the last
// bound.
type histogram struct {
	cum   map[float64]float64
	total float64
	sum   float64
}

// cumulative returns a histogram's finite buckets by upper bound.
func cumulative(h *dto.Histogram) map[float64]float64 {
	out := map[float64]float64{}
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), +1) {
			continue
		}
		out[b.GetUpperBound()] = float64(b.GetCumulativeCount()) + b.GetCumulativeCountFloat()
	}
	return out
}

// add adds the increase of one series, from start (nil when the series is
// new) to end.
func (h *histogram) add(end, start *dto.Histogram) {
	if h.cum == nil {
		h.cum = map[float64]float64{}
	}
	e := cumulative(end)
	total := float64(end.GetSampleCount()) + end.GetSampleCountFloat()
	sum := end.GetSampleSum()
	if start != nil {
		st := float64(start.GetSampleCount()) + start.GetSampleCountFloat()
		if st <= total { // else the series was reset: it counts from zero
			total -= st
			sum -= start.GetSampleSum()
			for ub, c := range cumulative(start) {
				e[ub] -= c
			}
		}
	}
	for ub, c := range e {
		h.cum[ub] += c
	}
	h.total += total
	h.sum += sum
}

// quantile estimates the q-quantile (0 < q <= 1) by linear interpolation
// within the bucket that holds it, the first bucket starting at zero. A
// quantile above the last finite bound is that bound.
func (h *histogram) quantile(q float64) float64 {
	if h.total <= 0 {
		return 0
	}
	bounds := make([]float64, 0, len(h.cum))
	for ub := range h.cum {
		bounds = append(bounds, ub)
	}
	slices.Sort(bounds)
	rank := q * h.total
	lower, below := 0.0, 0.0
	for _, ub := range bounds {
		c := h.cum[ub]
		if c >= rank {
			if c <= below {
				return ub
			}
			return lower + (ub-lower)*(rank-below)/(c-below)
		}
		lower, below = ub, c
	}
	return lower
}

// percentilesUs summarises a histogram of milliseconds in microseconds.
func (h *histogram) percentilesUs() loadgen.Percentiles {
	us := func(ms float64) int64 { return int64(math.Round(ms * 1000)) }
	p := loadgen.Percentiles{
		P50: us(h.quantile(0.50)), P90: us(h.quantile(0.90)), P99: us(h.quantile(0.99)),
		P999: us(h.quantile(0.999)), P9999: us(h.quantile(0.9999)), Max: us(h.quantile(1)),
		Count: int64(math.Round(h.total)),
	}
	if h.total > 0 {
		p.Mean = h.sum / h.total * 1000
	}
	return p
}

// Summarize returns a proxy's account of the measured part: the increase of
// its series between the two scrapes.
func Summarize(name string, start, end Families) result.ProxyMetrics {
	pm := result.ProxyMetrics{
		Name:      name,
		Latency:   map[string]loadgen.Percentiles{},
		Endpoints: map[string]map[string]int64{},
	}
	before := map[string]*dto.Histogram{}
	if mf := start[MetricLatency]; mf != nil {
		for _, m := range mf.GetMetric() {
			before[signature(m)] = m.GetHistogram()
		}
	}
	byDirection := map[string]*histogram{}
	if mf := end[MetricLatency]; mf != nil {
		for _, m := range mf.GetMetric() {
			dir := LabelsOf(m)["direction"]
			h := byDirection[dir]
			if h == nil {
				h = &histogram{}
				byDirection[dir] = h
			}
			h.add(m.GetHistogram(), before[signature(m)])
		}
	}
	for dir, h := range byDirection {
		if h.total > 0 {
			pm.Latency[dir] = h.percentilesUs()
		}
	}
	for _, d := range counterDeltas(start, end, MetricUpstream) {
		c, ep := d.labels["cluster"], d.labels["endpoint"]
		if pm.Endpoints[c] == nil {
			pm.Endpoints[c] = map[string]int64{}
		}
		pm.Endpoints[c][ep] += int64(math.Round(d.delta))
	}
	total := func(name string) int64 {
		var n float64
		for _, d := range counterDeltas(start, end, name) {
			n += d.delta
		}
		return int64(math.Round(n))
	}
	pm.Retries = total(MetricRetries)
	pm.Ejections = total(MetricEjections)
	pm.BudgetExhausted = total(MetricBudgetExhausted)
	for _, d := range counterDeltas(start, end, MetricHandshakes) {
		if d.labels["result"] == "success" {
			pm.Handshakes += int64(math.Round(d.delta))
		}
	}
	return pm
}

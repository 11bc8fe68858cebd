package proxymetrics

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func parse(t *testing.T, text string) Families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

const scrapeStart = `# TYPE response_latency_ms histogram
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="200",classification="success",le="1"} 10
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="200",classification="success",le="2"} 10
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="200",classification="success",le="4"} 10
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="200",classification="success",le="+Inf"} 10
response_latency_ms_sum{direction="outbound",route="r",cluster="c",status_code="200",classification="success"} 5
response_latency_ms_count{direction="outbound",route="r",cluster="c",status_code="200",classification="success"} 10
# TYPE upstream_requests_total counter
upstream_requests_total{cluster="c",endpoint="a:1"} 7
upstream_requests_total{cluster="c",endpoint="b:1"} 3
# TYPE upstream_retries_total counter
upstream_retries_total{cluster="c",endpoint="a:1"} 1
`

// At the end: 100 more successes in (1, 2] ms, a new failure series with
// 100 in (2, 4] ms, endpoint b reset (left and came back), and an inbound
// series.
const scrapeEnd = `# TYPE response_latency_ms histogram
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="200",classification="success",le="1"} 10
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="200",classification="success",le="2"} 110
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="200",classification="success",le="4"} 110
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="200",classification="success",le="+Inf"} 110
response_latency_ms_sum{direction="outbound",route="r",cluster="c",status_code="200",classification="success"} 155
response_latency_ms_count{direction="outbound",route="r",cluster="c",status_code="200",classification="success"} 110
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="503",classification="failure",le="1"} 0
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="503",classification="failure",le="2"} 0
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="503",classification="failure",le="4"} 100
response_latency_ms_bucket{direction="outbound",route="r",cluster="c",status_code="503",classification="failure",le="+Inf"} 100
response_latency_ms_sum{direction="outbound",route="r",cluster="c",status_code="503",classification="failure"} 300
response_latency_ms_count{direction="outbound",route="r",cluster="c",status_code="503",classification="failure"} 100
response_latency_ms_bucket{direction="inbound",route="i",cluster="l",status_code="200",classification="success",le="1"} 4
response_latency_ms_bucket{direction="inbound",route="i",cluster="l",status_code="200",classification="success",le="2"} 4
response_latency_ms_bucket{direction="inbound",route="i",cluster="l",status_code="200",classification="success",le="4"} 4
response_latency_ms_bucket{direction="inbound",route="i",cluster="l",status_code="200",classification="success",le="+Inf"} 4
response_latency_ms_sum{direction="inbound",route="i",cluster="l",status_code="200",classification="success"} 2
response_latency_ms_count{direction="inbound",route="i",cluster="l",status_code="200",classification="success"} 4
# TYPE upstream_requests_total counter
upstream_requests_total{cluster="c",endpoint="a:1"} 107
upstream_requests_total{cluster="c",endpoint="b:1"} 2
# TYPE upstream_retries_total counter
upstream_retries_total{cluster="c",endpoint="a:1"} 4
# TYPE upstream_ejections_total counter
upstream_ejections_total{cluster="c",endpoint="a:1"} 1
# TYPE upstream_retry_budget_exhausted_total counter
upstream_retry_budget_exhausted_total{cluster="c"} 2
`

func TestProxyMetricsDifference(t *testing.T) {
	pm := Summarize("px", parse(t, scrapeStart), parse(t, scrapeEnd))
	out := pm.Latency["outbound"]
	// 200 observations: 100 in (1, 2], 100 in (2, 4]. p50 is the top of
	// the first bucket, p90 80% into the second, p99 98% into it.
	if out.Count != 200 || out.P50 != 2000 || out.P90 != 3600 || out.P99 != 3960 {
		t.Errorf("outbound %+v: want count 200, p50 2000, p90 3600, p99 3960 µs", out)
	}
	if out.Mean != 2250 { // (150 + 300) ms / 200
		t.Errorf("outbound mean %v µs, want 2250", out.Mean)
	}
	in := pm.Latency["inbound"]
	if in.Count != 4 || in.P50 != 500 { // all in [0, 1]: p50 is half way
		t.Errorf("inbound %+v: want count 4, p50 500 µs", in)
	}
	if pm.Endpoints["c"]["a:1"] != 100 || pm.Endpoints["c"]["b:1"] != 2 {
		t.Errorf("endpoints %v: want a:1 100 and b:1 2 (reset: counted from zero)", pm.Endpoints)
	}
	if pm.Retries != 3 || pm.Ejections != 1 || pm.BudgetExhausted != 2 {
		t.Errorf("retries %d ejections %d budget %d: want 3, 1, 2", pm.Retries, pm.Ejections, pm.BudgetExhausted)
	}
}

func TestQuantileAboveLastBound(t *testing.T) {
	h := &histogram{cum: map[float64]float64{1: 1, 10: 1}, total: 4}
	if q := h.quantile(0.99); q != 10 {
		t.Errorf("p99 with most observations above the last bound: %v, want the last bound 10", q)
	}
	if q := (&histogram{}).quantile(0.5); q != 0 {
		t.Errorf("empty histogram p50 %v", q)
	}
}

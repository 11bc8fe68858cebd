package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshbench/meshbench/proxy/metrics"
)

func TestRouteSeriesAndClassification(t *testing.T) {
	m := metrics.New()
	r := m.Route("inbound", "r1", "c1")
	r.Request()
	r.Response(200, -1, 3*time.Millisecond)
	r.Response(200, -1, 300*time.Microsecond)
	r.Response(503, -1, time.Millisecond)
	r.Response(200, 14, time.Millisecond)
	r.Response(200, 0, time.Millisecond)
	r.Response(0, -1, time.Millisecond)
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != "response_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[l["status_code"]+"/"+l["grpc_status"]+"/"+l["classification"]] = s.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"200//success": 2, "503//failure": 1, "200/14/failure": 1, "200/0/success": 1, "0//failure": 1}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("response_total %s = %v, want %v", k, got[k], v)
		}
	}
	if n := testutil.CollectAndCount(m.Registry, "request_total"); n != 1 {
		t.Errorf("%d request_total series, want 1", n)
	}
	if n := testutil.CollectAndCount(m.Registry, "response_latency_ms"); n != 4 {
		t.Errorf("%d response_latency_ms series, want 4 (status x classification)", n)
	}
}

func TestClusterSeriesFollowTheEndpointSet(t *testing.T) {
	m := metrics.New()
	states := []metrics.ClusterState{{Cluster: "c1", RetryBudgetExhausted: 4, Endpoints: []metrics.EndpointState{
		{Addr: "127.0.0.1:1", Requests: 10, Retries: 2, Active: 3, Ejections: 1, Ejected: true, RTTEstimate: 1500 * time.Microsecond},
		{Addr: "127.0.0.1:2", Requests: 5, RTTEstimate: -1},
	}}}
	m.WatchClusters(func() []metrics.ClusterState { return states })
	want := `
# HELP upstream_active_requests Attempts in flight to each endpoint.
# TYPE upstream_active_requests gauge
upstream_active_requests{cluster="c1",endpoint="127.0.0.1:1"} 3
upstream_active_requests{cluster="c1",endpoint="127.0.0.1:2"} 0
# HELP upstream_ejected 1 while the endpoint is ejected, else 0.
# TYPE upstream_ejected gauge
upstream_ejected{cluster="c1",endpoint="127.0.0.1:1"} 1
upstream_ejected{cluster="c1",endpoint="127.0.0.1:2"} 0
# HELP upstream_requests_total Attempts sent to each endpoint, retries included.
# TYPE upstream_requests_total counter
upstream_requests_total{cluster="c1",endpoint="127.0.0.1:1"} 10
upstream_requests_total{cluster="c1",endpoint="127.0.0.1:2"} 5
# HELP upstream_retry_budget_exhausted_total Retries refused by the cluster's retry budget.
# TYPE upstream_retry_budget_exhausted_total counter
upstream_retry_budget_exhausted_total{cluster="c1"} 4
# HELP upstream_rtt_estimate_ms The peak-EWMA round-trip estimate of each endpoint, in milliseconds.
# TYPE upstream_rtt_estimate_ms gauge
upstream_rtt_estimate_ms{cluster="c1",endpoint="127.0.0.1:1"} 1.5
`
	names := []string{"upstream_active_requests", "upstream_ejected", "upstream_requests_total", "upstream_retry_budget_exhausted_total", "upstream_rtt_estimate_ms"}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// An endpoint that left the cluster leaves the exposition.
	states[0].Endpoints = states[0].Endpoints[1:]
	if n := testutil.CollectAndCount(m.Registry, "upstream_requests_total"); n != 1 {
		t.Errorf("%d upstream_requests_total series after removal, want 1", n)
	}
}

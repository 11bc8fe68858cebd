package metrics_test

import (
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

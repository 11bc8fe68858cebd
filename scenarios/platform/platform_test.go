package platform

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
)

func TestSummarize(t *testing.T) {
	res, metrics, err := Summarize(250*time.Millisecond, 1000, []ProxySample{
		{Name: "a", Kind: "sidecar", Node: "n0", Usage: result.Usage{CPUSeconds: 0.5, RSSPeakBytes: 10, RSSMeanBytes: 8}},
		{Name: "b", Kind: "node", Node: "n1", Usage: result.Usage{CPUSeconds: 1.5, RSSPeakBytes: 20, RSSMeanBytes: 16},
			SampleErr: errors.New("no cgroup"), ScrapeErr: errors.New("scraping b: refused")},
	})
	if res.SampleIntervalMs != 250 || len(res.Proxies) != 2 || res.Proxies[1].Node != "n1" {
		t.Fatalf("resources %+v", res)
	}
	if tot := res.Total; tot.CPUSeconds != 2 || tot.RSSPeakBytes != 30 || tot.RSSMeanBytes != 24 || tot.CPUMicrosPerRequest != 2000 {
		t.Errorf("total %+v, want 2 s, 30 B peak, 24 B mean, 2000 µs a request", tot)
	}
	if len(metrics) != 1 || metrics[0].Name != "a" {
		t.Errorf("metrics of %v, want a's only (b's scrape failed)", metrics)
	}
	if err == nil || !strings.Contains(err.Error(), "sampling b: no cgroup") || !strings.Contains(err.Error(), "scraping b: refused") {
		t.Errorf("error %v, want both of b's", err)
	}
	res, metrics, err = Summarize(time.Second, 0, nil)
	if err != nil || res.Proxies == nil || len(metrics) != 0 || res.Total.CPUMicrosPerRequest != 0 {
		t.Errorf("no proxies: %+v %v %v", res, metrics, err)
	}
}

func TestBackendArgs(t *testing.T) {
	pod := &scenarios.Pod{Name: "echo-0", Backend: &scenarios.BackendSpec{Concurrency: 4, ErrorRate: 0.25, ResponseSize: 100}}
	got := BackendArgs(pod, "127.0.0.1:8080", ":9090")
	want := []string{"backend", "--listen", "127.0.0.1:8080", "--grpc-listen", ":9090", "--name", "echo-0",
		"--latency", "none", "--concurrency", "4", "--error-rate", "0.25", "--response-size", "100"}
	if !slices.Equal(got, want) {
		t.Errorf("BackendArgs = %q\nwant %q", got, want)
	}
}

func TestUsage(t *testing.T) {
	u := Usage(0.5, []int64{10, 30, 20}, 250)
	if u.CPUSeconds != 0.5 || u.RSSPeakBytes != 30 || u.RSSMeanBytes != 20 || u.CPUMicrosPerRequest != 2000 {
		t.Errorf("Usage = %+v", u)
	}
	if u := Usage(1, nil, 10); u != (result.Usage{}) {
		t.Errorf("no readings: %+v, want none", u)
	}
}

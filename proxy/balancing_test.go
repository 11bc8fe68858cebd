package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/backends"
	"github.com/meshbench/meshbench/loadgen"
)

// TestBalancersUnderASlowReplica is the headline comparison on real
// sockets: five backends behind meshproxy, one of them ten times slower
// (20 ms per request against 2 ms, each backend serving one request at a
// time, so the slow one's capacity is 50 requests/s). The load generator
// sends a constant 400 requests/s, open loop. Round robin gives the slow
// replica a fifth of the load, 80/s, more than it can serve: its queue, and
// round robin's tail, grow for as long as the run lasts. least_request and
// peak_ewma must see it and steer around it: their p99 must be less than
// half of round robin's, measured in the same run, and the slow replica's
// share of requests less than three quarters of round robin's 20% (P2C
// least_request still sends it about 9%: with one request at a time it is
// busy, not overloaded, when compared with idle fast replicas).
func TestBalancersUnderASlowReplica(t *testing.T) {
	type outcome struct {
		p99       time.Duration
		slowShare float64
		res       *loadgen.Result
	}
	run := func(policy string) outcome {
		var addrs []string
		for i := range 5 {
			cfg := backends.Config{Name: fmt.Sprintf("fast-%d", i), Latency: "fixed:2ms", Concurrency: 1}
			if i == 2 {
				cfg = backends.Config{Name: "slow", Latency: "fixed:20ms", Concurrency: 1}
			}
			b, err := backends.New(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := b.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				b.Shutdown(ctx)
			})
			addrs = append(addrs, b.HTTPAddr())
		}
		srv := startProxy(t, `listeners:
- name: out
  address: 127.0.0.1:0
  protocol: http1
  routes:
  - match: {}
    cluster: c
clusters:
- name: c
  protocol: http1
  balancer: {policy: `+policy+`}
  endpoints: [`+strings.Join(addrs, ", ")+`]
`)
		res, err := loadgen.Run(t.Context(), loadgen.Spec{
			Target: proxyURL(srv, "/"), Protocol: loadgen.HTTP1, Rate: 400, Connections: 256,
			Duration: 3 * time.Second, Warmup: 500 * time.Millisecond, Timeout: 10 * time.Second,
			SpinWindow: -1,
		})
		if err != nil {
			t.Fatalf("%s: load: %v", policy, err)
		}
		if res.Errors.Total > 0 {
			t.Fatalf("%s: %d errors: %v", policy, res.Errors.Total, res.Errors.ByClass)
		}
		total := int64(0)
		for _, n := range res.Endpoints {
			total += n
		}
		o := outcome{p99: time.Duration(res.Latency.P99) * time.Microsecond, res: res}
		if total > 0 {
			o.slowShare = float64(res.Endpoints["slow"]) / float64(total)
		}
		t.Logf("%-14s p50 %6.1fms  p99 %7.1fms  max %7.1fms  slow replica share %5.1f%%  (%d requests, %.0f/s)",
			policy, float64(res.Latency.P50)/1e3, float64(res.Latency.P99)/1e3, float64(res.Latency.Max)/1e3,
			100*o.slowShare, res.Requests, res.AchievedRate)
		return o
	}
	rr := run("round_robin")
	if rr.slowShare < 0.19 || rr.slowShare > 0.21 {
		t.Errorf("round robin gave the slow replica %.1f%%, want 20%%", 100*rr.slowShare)
	}
	for _, policy := range []string{"least_request", "peak_ewma"} {
		o := run(policy)
		if o.p99 >= rr.p99/2 {
			t.Errorf("%s p99 %v, want below half of round robin's %v", policy, o.p99, rr.p99)
		}
		if o.slowShare >= rr.slowShare*3/4 {
			t.Errorf("%s gave the slow replica %.1f%% of requests, want below three quarters of round robin's %.1f%%", policy, 100*o.slowShare, 100*rr.slowShare)
		}
	}
}

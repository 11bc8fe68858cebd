package loadgen

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/backends"
)

// TestSearchFindsTheCapacity searches a backend of known capacity: 4
// requests at a time, 5 ms each, 800 req/s. Its real capacity, measured
// here in closed loop, is a little lower (each request takes a little
// more than 5 ms); the search must land within 10 % of both.
func TestSearchFindsTheCapacity(t *testing.T) {
	target, _ := startHTTPGRPCBackend(t, "cap", backends.Config{Latency: "fixed:5ms", Concurrency: 4, Spin: time.Millisecond})
	closed, err := Run(context.Background(), Spec{Target: target, Connections: 16, Duration: 2 * time.Second, Warmup: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	capacity := closed.AchievedRate
	spec := Spec{Target: target, Connections: 64, Duration: 1500 * time.Millisecond, Warmup: 300 * time.Millisecond, SpinWindow: 300 * time.Microsecond,
		Search: &SearchSpec{Objective: Objective{P99: 50 * time.Millisecond, Errors: 0.001}, Max: 3200, Start: 100}}
	r, err := Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	s := r.Search
	if s == nil {
		t.Fatal("no search in the result")
	}
	for _, p := range s.Probes {
		t.Logf("probe %6.1f req/s: achieved %6.1f, p99 %6d µs, met %v %s", p.Rate, p.AchievedRate, p.Latency.P99, p.Met, p.Missed)
	}
	t.Logf("capacity: measured %.0f req/s in closed loop, nominal 800; search: max %.1f req/s, limit %s", capacity, s.MaxRate, s.Limit)
	for _, want := range []float64{800, capacity} {
		if math.Abs(s.MaxRate-want) > 0.1*want {
			t.Errorf("max rate %.1f: not within 10%% of %.0f req/s", s.MaxRate, want)
		}
	}
	if s.Capped || s.Limit == "" || len(s.Probes) < 5 || len(s.Probes) > DefaultSearchProbes {
		t.Errorf("capped %v, limit %q, %d probes", s.Capped, s.Limit, len(s.Probes))
	}
	if r.RequestedRate != s.MaxRate || r.Invalid != "" || r.Latency.P99 > 50000 || s.Objective.P99us != 50000 {
		t.Errorf("the result is not the probe at the rate found: requested %v, invalid %q, p99 %d µs, objective %+v", r.RequestedRate, r.Invalid, r.Latency.P99, s.Objective)
	}
	// The probes climb exponentially from the start, then bisect.
	if s.Probes[0].Rate != 100 || s.Probes[1].Rate != 200 || !s.Probes[0].Met {
		t.Errorf("first probes %v, %v", s.Probes[0].Rate, s.Probes[1].Rate)
	}
}

func TestSearchCappedAndErrors(t *testing.T) {
	target := startBackend(t, "fixed:1ms")
	r, err := Run(context.Background(), Spec{Target: target, Connections: 8, Duration: 500 * time.Millisecond,
		Search: &SearchSpec{Objective: Objective{P99: 50 * time.Millisecond, Errors: -1}, Max: 200, Start: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if s := r.Search; !s.Capped || s.MaxRate != 200 || len(s.Probes) != 2 {
		t.Errorf("a target faster than the search's max: capped %v, max %v, %d probes", s.Capped, s.MaxRate, len(s.Probes))
	}
	own := Spec{Duration: time.Second, Mix: []Stream{{Name: "a", Protocol: HTTP1, Targets: []string{target}, Rate: 5, Connections: 1}},
		Search: &SearchSpec{Objective: Objective{P99: time.Millisecond}, Max: 10}}
	if _, err := Run(context.Background(), own); err == nil || !strings.Contains(err.Error(), "has a rate of its own") {
		t.Errorf("a search over a stream of its own rate: %v", err)
	}
	for _, tc := range []struct {
		ss   SearchSpec
		want string
	}{
		{SearchSpec{Objective: Objective{P99: time.Millisecond}}, "max must be a positive rate"},
		{SearchSpec{Objective: Objective{Errors: -1}, Max: 10}, "objective is empty"},
		{SearchSpec{Objective: Objective{P99: time.Millisecond}, Max: 10, Start: 20}, "start 20 above max 10"},
		{SearchSpec{Objective: Objective{Errors: 2}, Max: 10}, "want a fraction"},
	} {
		_, err := Run(context.Background(), Spec{Target: target, Duration: time.Second, Search: &tc.ss})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.ss, err, tc.want)
		}
	}
}

func TestObjectiveJudge(t *testing.T) {
	o := Objective{P99: 10 * time.Millisecond, Errors: 0.01}
	if got := o.String(); got != "p99 ≤ 10ms, errors ≤ 1%" {
		t.Errorf("String: %q", got)
	}
	for _, tc := range []struct {
		r       Result
		met     bool
		missed  string
		genLimd bool
	}{
		{Result{Requests: 100, Latency: Percentiles{P99: 9000}}, true, "", false},
		{Result{Requests: 100, Latency: Percentiles{P99: 11000}}, false, "p99 11ms > 10ms", false},
		{Result{Requests: 100, Latency: Percentiles{P99: 1000}, Errors: Errors{Total: 2}}, false, "errors 2% > 1%", false},
		{Result{Requests: 100, Latency: Percentiles{P99: 1000}, Invalid: "late sends"}, false, "invalid run: late sends", true},
		{Result{}, false, "no request completed", false},
	} {
		p, gl := o.judge(&tc.r)
		if p.Met != tc.met || !strings.Contains(p.Missed, tc.missed) || gl != tc.genLimd {
			t.Errorf("%+v: met %v missed %q generator-limited %v", tc.r.Latency, p.Met, p.Missed, gl)
		}
	}
}

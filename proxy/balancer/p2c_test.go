package balancer_test

import (
	"math"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
)

func TestRandomIsUniform(t *testing.T) {
	p := balancer.NewRandom(endpoints(5))
	counts := make([]int, 5)
	const n = 50_000
	for range n {
		r, _ := p.Pick(balancer.PickInfo{})
		counts[idx(r)]++
	}
	// Chi-square with 4 degrees of freedom: 18.47 is the 0.1% critical value.
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - n/5.0
		chi += d * d / (n / 5.0)
	}
	if chi > 18.47 {
		t.Errorf("counts %v: chi-square %.1f, not uniform", counts, chi)
	}
}

// TestLeastRequestAvoidsTheBusyEndpoint holds requests open on endpoint 0;
// P2C must then send almost nothing there, and a full scan nothing at all.
func TestLeastRequestAvoidsTheBusyEndpoint(t *testing.T) {
	for _, full := range []bool{false, true} {
		eps := endpoints(4)
		p := balancer.NewLeastRequest(eps, balancer.LeastRequestConfig{FullScan: full})
		// Open 80 requests (least-request spreads them), then finish all
		// but those on endpoint 0, which stays busy.
		var held, others []balancer.Result
		for range 80 {
			r, _ := p.Pick(balancer.PickInfo{})
			if idx(r) == 0 {
				held = append(held, r)
			} else {
				others = append(others, r)
			}
		}
		for _, r := range others {
			r.Done(balancer.DoneInfo{})
		}
		if eps[0].InFlight() < 10 {
			t.Fatalf("in flight on 0: %d", eps[0].InFlight())
		}
		got0 := 0
		for range 10_000 {
			r, _ := p.Pick(balancer.PickInfo{})
			if idx(r) == 0 {
				got0++
			}
			r.Done(balancer.DoneInfo{})
		}
		// P2C picks the busy endpoint only when both draws hit it: 1/16.
		if limit := map[bool]int{false: 800, true: 0}[full]; got0 > limit {
			t.Errorf("full=%v: busy endpoint got %d of 10000 picks, want at most %d", full, got0, limit)
		}
		for _, r := range held {
			r.Done(balancer.DoneInfo{})
		}
		if eps[0].InFlight() != 0 {
			t.Errorf("in flight after Done: %d", eps[0].InFlight())
		}
	}
}

// fakeClock is a settable clock for PeakEWMA.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestPeakEWMAPeakAndDecay(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	eps := endpoints(1)
	p := balancer.NewPeakEWMA(eps, balancer.PeakEWMAConfig{Now: clk.now})
	if got := p.Estimate(eps[0]); got != balancer.DefaultEWMARTT {
		t.Errorf("initial estimate %v, want the default %v", got, balancer.DefaultEWMARTT)
	}
	// A slow response replaces the estimate at once (the peak).
	r, _ := p.Pick(balancer.PickInfo{})
	clk.t = clk.t.Add(200 * time.Millisecond)
	r.Done(balancer.DoneInfo{})
	if got := p.Estimate(eps[0]); got != 200*time.Millisecond {
		t.Errorf("after a 200ms response: %v, want 200ms", got)
	}
	// A fast response 1 s later moves it by 1 - exp(-1s/10s) of the gap.
	clk.t = clk.t.Add(time.Second - 10*time.Millisecond)
	r, _ = p.Pick(balancer.PickInfo{})
	clk.t = clk.t.Add(10 * time.Millisecond)
	r.Done(balancer.DoneInfo{})
	w := math.Exp(-1.0 / 10)
	want := 0.2*w + 0.01*(1-w)
	if got := p.Estimate(eps[0]).Seconds(); math.Abs(got-want) > 1e-4 {
		t.Errorf("after a 10ms response 1s later: %.5fs, want %.5fs", got, want)
	}
	// A failure that comes back fast still counts as the penalty.
	r, _ = p.Pick(balancer.PickInfo{})
	clk.t = clk.t.Add(time.Millisecond)
	r.Done(balancer.DoneInfo{Err: errFailed})
	if got := p.Estimate(eps[0]); got != balancer.DefaultEWMAPenalty {
		t.Errorf("after a fast failure: %v, want the %v penalty", got, balancer.DefaultEWMAPenalty)
	}
}

type failed struct{}

func (failed) Error() string { return "failed" }

var errFailed error = failed{}

// TestPeakEWMAShunsASlowEndpoint simulates five endpoints, one ten times
// slower, each request completing after its endpoint's latency: the slow
// one must get a small share, and round robin's share is the baseline.
func TestPeakEWMAShunsASlowEndpoint(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := balancer.NewPeakEWMA(endpoints(5), balancer.PeakEWMAConfig{Now: clk.now})
	latency := func(i int) time.Duration {
		if i == 4 {
			return 50 * time.Millisecond
		}
		return 5 * time.Millisecond
	}
	counts := make([]int, 5)
	for range 5000 {
		r, _ := p.Pick(balancer.PickInfo{})
		counts[idx(r)]++
		clk.t = clk.t.Add(latency(idx(r)))
		r.Done(balancer.DoneInfo{})
		clk.t = clk.t.Add(time.Millisecond)
	}
	if share := float64(counts[4]) / 5000; share > 0.08 {
		t.Errorf("slow endpoint got %.1f%% of requests (counts %v), want well below round robin's 20%%", 100*share, counts)
	}
}

func TestNewPolicies(t *testing.T) {
	for _, policy := range []string{balancer.PolicyRoundRobin, balancer.PolicyRandom, balancer.PolicyLeastRequest, balancer.PolicyPeakEWMA} {
		p, err := balancer.New(balancer.Config{Policy: policy}, endpoints(3))
		if err != nil {
			t.Fatalf("%s: %v", policy, err)
		}
		r, err := p.Pick(balancer.PickInfo{})
		if err != nil || r.Endpoint == nil {
			t.Errorf("%s: pick %v %v", policy, r, err)
		}
		if r.Done != nil {
			r.Done(balancer.DoneInfo{})
		}
	}
}

package balancer_test

import (
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
)

func TestRandomIsUniform(t *testing.T) {
	p := balancer.NewRandom(endpoints(10), balancer.RandomConfig{Rand: seeded()})
	counts := make([]int, 10)
	for range 50_000 {
		r, _ := p.Pick(balancer.PickInfo{})
		counts[idx(r)]++
	}
	assertUniform(t, "random", counts)
}

// TestLeastRequestWithEqualLoadIsUniform finishes every request before the
// next pick, so every endpoint has 0 in flight: the first draw always wins,
// and P2C (and a full scan, which starts at a random endpoint) must be
// uniform.
func TestLeastRequestWithEqualLoadIsUniform(t *testing.T) {
	for _, cfg := range []balancer.LeastRequestConfig{{}, {ChoiceCount: 3}, {FullScan: true}} {
		cfg.Rand = seeded()
		p := balancer.NewLeastRequest(endpoints(10), cfg)
		counts := make([]int, 10)
		for range 50_000 {
			r, _ := p.Pick(balancer.PickInfo{})
			counts[idx(r)]++
			r.Done(balancer.DoneInfo{})
		}
		assertUniform(t, "least_request", counts)
	}
}

// hold opens k requests on e through a picker of its own: the load state
// lives on the endpoint, so every picker over e sees them.
func hold(e *balancer.Endpoint, k int) []balancer.Result {
	solo := balancer.NewLeastRequest([]*balancer.Endpoint{e}, balancer.LeastRequestConfig{})
	var held []balancer.Result
	for range k {
		r, _ := solo.Pick(balancer.PickInfo{})
		held = append(held, r)
	}
	return held
}

// TestLeastRequestAvoidsTheBusyEndpoint holds requests open on endpoint 0
// of N and finishes all others at once. With ChoiceCount c the busy
// endpoint is picked only when all c draws (with replacement) hit it, a
// share of (1/N)^c; a full scan never picks it.
func TestLeastRequestAvoidsTheBusyEndpoint(t *testing.T) {
	for _, tc := range []struct {
		n    int
		cfg  balancer.LeastRequestConfig
		want float64
	}{
		{4, balancer.LeastRequestConfig{}, 1.0 / 16},
		{4, balancer.LeastRequestConfig{ChoiceCount: 3}, 1.0 / 64},
		{10, balancer.LeastRequestConfig{}, 1.0 / 100},
		{4, balancer.LeastRequestConfig{FullScan: true}, 0},
	} {
		eps := endpoints(tc.n)
		held := hold(eps[0], 3)
		tc.cfg.Rand = seeded()
		p := balancer.NewLeastRequest(eps, tc.cfg)
		const picks = 40_000
		busy := 0
		for range picks {
			r, _ := p.Pick(balancer.PickInfo{})
			if idx(r) == 0 {
				busy++
			}
			r.Done(balancer.DoneInfo{})
		}
		if tc.want == 0 {
			if busy != 0 {
				t.Errorf("N=%d %+v: busy endpoint got %d picks, want none", tc.n, tc.cfg, busy)
			}
		} else {
			assertBinomial(t, "busy endpoint's picks", busy, picks, tc.want)
		}
		for _, r := range held {
			r.Done(balancer.DoneInfo{})
		}
		if eps[0].InFlight() != 0 {
			t.Errorf("in flight after Done: %d", eps[0].InFlight())
		}
	}
}

// TestLeastRequestKeepsInFlightEven opens 10,000 requests over 10
// endpoints without finishing any. Two choices keep the most and least
// loaded endpoints within a few requests of each other (the heavily loaded
// case: a gap of ln ln n / ln 2 + O(1), independent of the number of
// requests); random placement would leave a gap of about 4 standard
// deviations of Binomial(10000, 0.1), some 120 requests.
func TestLeastRequestKeepsInFlightEven(t *testing.T) {
	eps := endpoints(10)
	p := balancer.NewLeastRequest(eps, balancer.LeastRequestConfig{Rand: seeded()})
	for range 10_000 {
		if _, err := p.Pick(balancer.PickInfo{}); err != nil {
			t.Fatal(err)
		}
	}
	loads := make([]int64, len(eps))
	for i, e := range eps {
		loads[i] = e.InFlight()
	}
	if gap := slices.Max(loads) - slices.Min(loads); gap > 4 {
		t.Errorf("in flight %v: gap %d, want at most 4", loads, gap)
	}
}

// fakeClock is a settable clock for PeakEWMA.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// after advances the clock by d and returns the DoneInfo of a request that
// took d.
func (c *fakeClock) after(d time.Duration) balancer.DoneInfo {
	c.t = c.t.Add(d)
	return balancer.DoneInfo{Latency: d}
}

func TestPeakEWMAPeakAndDecay(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	eps := endpoints(1)
	p := balancer.NewPeakEWMA(eps, balancer.PeakEWMAConfig{Now: clk.now})
	if got := p.Estimate(eps[0]); got != balancer.DefaultEWMARTT {
		t.Errorf("initial estimate %v, want the default %v", got, balancer.DefaultEWMARTT)
	}
	// A slow response replaces the estimate at once (the peak).
	r, _ := p.Pick(balancer.PickInfo{})
	r.Done(clk.after(200 * time.Millisecond))
	if got := p.Estimate(eps[0]); got != 200*time.Millisecond {
		t.Errorf("after a 200ms response: %v, want 200ms", got)
	}
	// A fast response 1 s later moves it by 1 - exp(-1s/10s) of the gap.
	clk.t = clk.t.Add(time.Second - 10*time.Millisecond)
	r, _ = p.Pick(balancer.PickInfo{})
	r.Done(clk.after(10 * time.Millisecond))
	w := math.Exp(-1.0 / 10)
	want := 0.2*w + 0.01*(1-w)
	if got := p.Estimate(eps[0]).Seconds(); math.Abs(got-want) > 1e-4 {
		t.Errorf("after a 10ms response 1s later: %.5fs, want %.5fs", got, want)
	}
	// Without responses the estimate decays towards zero.
	before := p.Estimate(eps[0])
	clk.t = clk.t.Add(10 * time.Second)
	if got, want := p.Estimate(eps[0]).Seconds(), before.Seconds()*math.Exp(-1); math.Abs(got-want) > 1e-4 {
		t.Errorf("10s without responses: %.5fs, want %.5fs", got, want)
	}
	// A failure that comes back fast still counts as the penalty.
	r, _ = p.Pick(balancer.PickInfo{})
	d := clk.after(time.Millisecond)
	d.Err = errors.New("connection refused")
	r.Done(d)
	if got := p.Estimate(eps[0]); got != balancer.DefaultEWMAPenalty {
		t.Errorf("after a fast failure: %v, want the %v penalty", got, balancer.DefaultEWMAPenalty)
	}
}

// TestPeakEWMASampleIsTheReportedLatency: the round trip is what the
// caller reports in DoneInfo.Latency, not the picker's own clock.
func TestPeakEWMASampleIsTheReportedLatency(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	eps := endpoints(1)
	p := balancer.NewPeakEWMA(eps, balancer.PeakEWMAConfig{Now: clk.now})
	r, _ := p.Pick(balancer.PickInfo{})
	r.Done(balancer.DoneInfo{Latency: 300 * time.Millisecond})
	if got := p.Estimate(eps[0]); got != 300*time.Millisecond {
		t.Errorf("estimate %v after a reported 300ms, want 300ms", got)
	}
}

// TestPeakEWMADrawsTwoDistinctEndpoints holds requests on endpoint 0 of 4
// with all estimates equal: its cost is higher than any other's, and since
// the two draws are distinct it can never win one (least_request, drawing
// with replacement, would give it 1/16).
func TestPeakEWMADrawsTwoDistinctEndpoints(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	eps := endpoints(4)
	held := hold(eps[0], 2)
	p := balancer.NewPeakEWMA(eps, balancer.PeakEWMAConfig{Now: clk.now, Rand: seeded()})
	counts := make([]int, 4)
	for range 20_000 {
		r, _ := p.Pick(balancer.PickInfo{})
		counts[idx(r)]++
		r.Done(balancer.DoneInfo{Latency: balancer.DefaultEWMARTT})
	}
	if counts[0] != 0 {
		t.Errorf("busy endpoint got %d picks (counts %v), want none", counts[0], counts)
	}
	for _, r := range held {
		r.Done(balancer.DoneInfo{})
	}
}

// simulate sends requests arriving every interval (on a fake clock) to
// pick's endpoints, each request ending after its endpoint's latency, and
// returns the picks per endpoint. Requests overlap, so both the in-flight
// counts and the latency estimates matter.
func simulate(clk *fakeClock, p balancer.Picker, latency []time.Duration, requests int, interval time.Duration) []int {
	type open struct {
		end time.Time
		r   balancer.Result
		lat time.Duration
	}
	var inflight []open
	counts := make([]int, len(latency))
	start := clk.t
	for i := range requests {
		arrival := start.Add(time.Duration(i) * interval)
		for {
			first := -1
			for k, o := range inflight {
				if !o.end.After(arrival) && (first < 0 || o.end.Before(inflight[first].end)) {
					first = k
				}
			}
			if first < 0 {
				break
			}
			o := inflight[first]
			inflight = slices.Delete(inflight, first, first+1)
			clk.t = o.end
			o.r.Done(balancer.DoneInfo{Latency: o.lat})
		}
		clk.t = arrival
		r, _ := p.Pick(balancer.PickInfo{})
		k := idx(r)
		counts[k]++
		inflight = append(inflight, open{end: arrival.Add(latency[k]), r: r, lat: latency[k]})
	}
	return counts
}

// TestPeakEWMAShunsASlowEndpoint simulates five endpoints, one ten times
// slower (50ms against 5ms), at 1000 requests/s for 20 s. peak_ewma must
// send the slow one a small share, far below round robin's 20% and below
// what least_request (which sees only the slow endpoint's longer queue)
// sends it; with equal latencies it must spread evenly.
func TestPeakEWMAShunsASlowEndpoint(t *testing.T) {
	fast, slow := 5*time.Millisecond, 50*time.Millisecond
	latency := []time.Duration{fast, fast, fast, fast, slow}
	const requests = 20_000

	clk := &fakeClock{t: time.Unix(1000, 0)}
	ewma := balancer.NewPeakEWMA(endpoints(5), balancer.PeakEWMAConfig{Now: clk.now, Rand: seeded()})
	counts := simulate(clk, ewma, latency, requests, time.Millisecond)
	ewmaShare := float64(counts[4]) / requests

	clk = &fakeClock{t: time.Unix(1000, 0)}
	lr := balancer.NewLeastRequest(endpoints(5), balancer.LeastRequestConfig{Rand: seeded()})
	lrCounts := simulate(clk, lr, latency, requests, time.Millisecond)
	lrShare := float64(lrCounts[4]) / requests

	t.Logf("slow endpoint's share: peak_ewma %.2f%% %v, least_request %.2f%% %v", 100*ewmaShare, counts,
		100*lrShare, lrCounts)
	if ewmaShare > 0.03 {
		t.Errorf("peak_ewma sent the slow endpoint %.2f%% of requests (counts %v), want under 3%%", 100*ewmaShare, counts)
	}
	if ewmaShare > lrShare/2 {
		t.Errorf("peak_ewma sent the slow endpoint %.2f%%, least_request %.2f%%: want at most half", 100*ewmaShare,
			100*lrShare)
	}
	for i := range 4 {
		if share := float64(counts[i]) / requests; share < 0.2 {
			t.Errorf("fast endpoint %d got %.1f%%, want at least its round-robin 20%% (counts %v)", i, 100*share, counts)
		}
	}

	clk = &fakeClock{t: time.Unix(1000, 0)}
	even := balancer.NewPeakEWMA(endpoints(5), balancer.PeakEWMAConfig{Now: clk.now, Rand: seeded()})
	assertUniform(t, "peak_ewma with equal latencies", simulate(clk, even, []time.Duration{fast, fast, fast, fast, fast},
		requests, time.Millisecond))
}

package balancer_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
)

// endpoints returns n endpoints with distinct addresses; Meta is the index.
func endpoints(n int) []*balancer.Endpoint {
	eps := make([]*balancer.Endpoint, n)
	for i := range eps {
		eps[i] = &balancer.Endpoint{Addr: fmt.Sprintf("10.0.%d.%d:8080", i/250, i%250+1), Meta: i}
	}
	return eps
}

// idx is the index endpoints gave the picked endpoint.
func idx(r balancer.Result) int { return r.Endpoint.Meta.(int) }

// seeded is the fixed-seed source of the statistical tests (not safe for
// concurrent use: each test draws from one goroutine).
func seeded() func(int) int { return rand.New(rand.NewPCG(1, 2)).IntN }

// chiSquare is Pearson's statistic of counts against a uniform spread.
func chiSquare(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	want := float64(total) / float64(len(counts))
	chi := 0.0
	for _, c := range counts {
		d := float64(c) - want
		chi += d * d / want
	}
	return chi
}

// assertUniform fails when counts (of 5 or 10 endpoints) are not uniform
// at the 0.1% level of the chi-square test.
func assertUniform(t *testing.T, what string, counts []int) {
	t.Helper()
	var crit float64
	switch df := len(counts) - 1; df {
	case 4:
		crit = 18.467
	case 9:
		crit = 27.877
	default:
		t.Fatalf("no chi-square critical value for %d degrees of freedom", df)
	}
	if chi := chiSquare(counts); chi > crit {
		t.Errorf("%s: counts %v, chi-square %.1f > %.1f: not uniform", what, counts, chi, crit)
	}
}

// assertBinomial fails when got successes of n trials is more than 4.5
// standard deviations from the mean of a Binomial(n, p).
func assertBinomial(t *testing.T, what string, got, n int, p float64) {
	t.Helper()
	mean := float64(n) * p
	tol := 4.5 * math.Sqrt(float64(n)*p*(1-p))
	if math.Abs(float64(got)-mean) > tol {
		t.Errorf("%s: %d of %d, want %.0f ± %.0f (p = %.4f)", what, got, n, mean, tol, p)
	}
}

func TestRoundRobinIsExactlyEvenUnderConcurrency(t *testing.T) {
	p, err := balancer.New(balancer.Config{Policy: "round_robin"}, endpoints(5))
	if err != nil {
		t.Fatal(err)
	}
	counts := concurrentCounts(t, p, 5, 8, 1000)
	for i, c := range counts {
		if c != 1600 {
			t.Errorf("endpoint %d got %d picks, want exactly 1600 (%v)", i, c, counts)
		}
	}
}

// concurrentCounts picks perG times in each of g goroutines and returns the
// picks per endpoint index.
func concurrentCounts(t *testing.T, p balancer.Picker, n, g, perG int) []int {
	t.Helper()
	var mu sync.Mutex
	counts := make([]int, n)
	var wg sync.WaitGroup
	for range g {
		wg.Go(func() {
			local := make([]int, n)
			for range perG {
				r, err := p.Pick(balancer.PickInfo{})
				if err != nil {
					t.Error(err)
					return
				}
				local[idx(r)]++
			}
			mu.Lock()
			for i, c := range local {
				counts[i] += c
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return counts
}

func TestRoundRobinOrder(t *testing.T) {
	p := balancer.NewRoundRobin(endpoints(3))
	for i := range 7 {
		r, _ := p.Pick(balancer.PickInfo{})
		if idx(r) != i%3 {
			t.Fatalf("pick %d went to %d", i, idx(r))
		}
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := balancer.New(balancer.Config{Policy: "round_robin"}, nil); err == nil {
		t.Error("no endpoints accepted")
	}
	if _, err := balancer.New(balancer.Config{}, nil); err == nil {
		t.Error("no endpoints accepted by the default policy")
	}
	if _, err := balancer.New(balancer.Config{Policy: "fastest"}, endpoints(1)); err == nil {
		t.Error("unknown policy accepted")
	}
	if _, err := balancer.New(balancer.Config{Policy: "maglev", TableSize: 1000}, endpoints(3)); err == nil {
		t.Error("maglev table size 1000 accepted")
	}
}

func TestNewDefaultsToPeakEWMA(t *testing.T) {
	p, err := balancer.New(balancer.Config{}, endpoints(3))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*balancer.PeakEWMA); !ok {
		t.Errorf("New with no policy returned %T, want *balancer.PeakEWMA", p)
	}
	if balancer.DefaultPolicy != balancer.PolicyPeakEWMA {
		t.Errorf("DefaultPolicy is %q", balancer.DefaultPolicy)
	}
}

// TestNewPolicies builds every listed policy through New, with the type
// each must produce, and makes one pick and Done.
func TestNewPolicies(t *testing.T) {
	want := map[string]string{
		balancer.PolicyRoundRobin:         "*balancer.RoundRobin",
		balancer.PolicyWeightedRoundRobin: "*balancer.WeightedRoundRobin",
		balancer.PolicyRandom:             "*balancer.Random",
		balancer.PolicyLeastRequest:       "*balancer.LeastRequest",
		balancer.PolicyPeakEWMA:           "*balancer.PeakEWMA",
		balancer.PolicyRingHash:           "*balancer.RingHash",
		balancer.PolicyMaglev:             "*balancer.Maglev",
	}
	if len(balancer.Policies()) != len(want) {
		t.Errorf("Policies() = %v, want the %d of this test", balancer.Policies(), len(want))
	}
	for _, policy := range balancer.Policies() {
		cfg := balancer.Config{Policy: policy}
		p, err := balancer.New(cfg, endpoints(3))
		if err != nil {
			t.Fatalf("%s: %v", policy, err)
		}
		if got := fmt.Sprintf("%T", p); got != want[policy] {
			t.Errorf("%s: New returned %s, want %s", policy, got, want[policy])
		}
		info := balancer.PickInfo{}
		if cfg.NeedsKey() {
			info.Key = "user-1"
		}
		r, err := p.Pick(info)
		if err != nil || r.Endpoint == nil {
			t.Errorf("%s: pick %v %v", policy, r, err)
		}
		if r.Done != nil {
			r.Done(balancer.DoneInfo{Latency: time.Millisecond})
		}
	}
}

// TestConfigRandIsUsed gives every randomised policy, through New, a
// source that always draws the last index: random and least_request must
// pick the last endpoint, peak_ewma one of the last two (its draws are
// distinct), and the hashing policies one endpoint for every key-less
// request.
func TestConfigRandIsUsed(t *testing.T) {
	last := func(n int) int { return n - 1 }
	for policy, allowed := range map[string][]int{
		balancer.PolicyRandom:       {4},
		balancer.PolicyLeastRequest: {4},
		balancer.PolicyPeakEWMA:     {3, 4},
		balancer.PolicyRingHash:     nil,
		balancer.PolicyMaglev:       nil,
	} {
		cfg := balancer.Config{Policy: policy, Rand: last}
		if policy == balancer.PolicyMaglev {
			cfg.TableSize = 7
		}
		p, err := balancer.New(cfg, endpoints(5))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		for range 20 {
			r, _ := p.Pick(balancer.PickInfo{})
			seen[idx(r)] = true
			if allowed != nil && !slices.Contains(allowed, idx(r)) {
				t.Errorf("%s: a Rand always drawing n-1 led to endpoint %d, want one of %v", policy, idx(r), allowed)
			}
			if r.Done != nil {
				r.Done(balancer.DoneInfo{Latency: time.Millisecond})
			}
		}
		if allowed == nil && len(seen) != 1 {
			t.Errorf("%s: a constant Rand spread key-less picks over %v", policy, seen)
		}
	}
}

// TestPickDoesNotAllocate holds every policy to zero allocations per Pick
// and Done.
func TestPickDoesNotAllocate(t *testing.T) {
	for _, policy := range balancer.Policies() {
		eps := endpoints(100)
		p, err := balancer.New(balancer.Config{Policy: policy}, eps)
		if err != nil {
			t.Fatal(err)
		}
		info := balancer.PickInfo{}
		if (balancer.Config{Policy: policy}).NeedsKey() {
			info.Key = "user-1"
		}
		allocs := testing.AllocsPerRun(1000, func() {
			r, _ := p.Pick(info)
			if r.Done != nil {
				r.Done(balancer.DoneInfo{Latency: time.Millisecond})
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per pick, want 0", policy, allocs)
		}
	}
}

// TestRebuiltPickerKeepsLoadState builds a second picker over the same
// endpoints while requests of the first are in flight, as the proxy does
// on a discovery update: the second sees them, and their Done (from the
// first picker) is seen by both.
func TestRebuiltPickerKeepsLoadState(t *testing.T) {
	eps := endpoints(3)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	old := balancer.NewPeakEWMA(eps, balancer.PeakEWMAConfig{Now: clk.now, Rand: seeded()})
	var held []balancer.Result
	for range 6 {
		r, _ := old.Pick(balancer.PickInfo{})
		held = append(held, r)
	}
	r, _ := old.Pick(balancer.PickInfo{})
	r.Done(balancer.DoneInfo{Latency: 400 * time.Millisecond})
	slow := r.Endpoint

	rebuilt := balancer.NewPeakEWMA(eps[:2:2], balancer.PeakEWMAConfig{Now: clk.now, Rand: seeded()})
	if got := rebuilt.Estimate(slow); got != 400*time.Millisecond {
		t.Errorf("rebuilt picker's estimate of %s: %v, want the 400ms learned before", slow.Addr, got)
	}
	var inflight int64
	for _, e := range eps {
		inflight += e.InFlight()
	}
	if inflight != 6 {
		t.Errorf("in flight over all endpoints: %d, want 6", inflight)
	}
	for _, r := range held {
		r.Done(balancer.DoneInfo{Latency: time.Millisecond})
	}
	for _, e := range eps {
		if e.InFlight() != 0 {
			t.Errorf("%s: %d in flight after every Done", e.Addr, e.InFlight())
		}
	}
}

// TestValidateIsNewsRule: what Validate refuses, New refuses too, and a
// parameter's zero value takes its default.
func TestValidateIsNewsRule(t *testing.T) {
	for _, tc := range []struct {
		cfg  balancer.Config
		want string
	}{
		{balancer.Config{Policy: balancer.PolicyLeastRequest, ChoiceCount: 1}, "choice_count: 1: must be at least 2"},
		{balancer.Config{Policy: balancer.PolicyRoundRobin, ChoiceCount: 3}, "choice_count and full_scan apply to least_request only"},
		{balancer.Config{Policy: balancer.PolicyPeakEWMA, Decay: -time.Second}, "decay and default_rtt must be positive"},
		{balancer.Config{Policy: balancer.PolicyRingHash, MinRingSize: -1}, "min_ring_size: a positive size, for ring_hash only"},
		{balancer.Config{Policy: balancer.PolicyMaglev, TableSize: 8}, "table_size: "},
		{balancer.Config{Policy: "fastest"}, `policy: "fastest": unknown policy`},
	} {
		ps := tc.cfg.Validate(3)
		if len(ps) == 0 || !strings.HasPrefix(ps[0].String(), tc.want) {
			t.Errorf("%+v: Validate = %v, want %q", tc.cfg, ps, tc.want)
		}
		if _, err := balancer.New(tc.cfg, endpoints(3)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: New error %v, want one with %q", tc.cfg, err, tc.want)
		}
	}
	for _, cfg := range []balancer.Config{{}, {Policy: balancer.PolicyLeastRequest}, {Policy: balancer.PolicyLeastRequest, ChoiceCount: 2}} {
		if ps := cfg.Validate(3); len(ps) != 0 {
			t.Errorf("%+v: Validate = %v, want none", cfg, ps)
		}
	}
}

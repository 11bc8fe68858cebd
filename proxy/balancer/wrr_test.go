package balancer_test

import (
	"math"
	"math/big"
	"testing"

	"github.com/meshbench/meshbench/proxy/balancer"
)

// weighted returns endpoints with the given weights.
func weighted(weights ...int) []*balancer.Endpoint {
	eps := endpoints(len(weights))
	for i, w := range weights {
		eps[i].Weight = w
	}
	return eps
}

// effective is the weight the scheduler uses.
func effective(w int) int64 {
	if w < 1 {
		return 1
	}
	return min(int64(w), balancer.MaxWeight)
}

// edfReference is the earliest-deadline-first schedule computed directly
// from its definition, with exact rationals: the first picks of endpoints
// with the given weights.
func edfReference(weights []int, picks int) []int {
	deadline := make([]*big.Rat, len(weights))
	for i, w := range weights {
		deadline[i] = big.NewRat(1, effective(w))
	}
	var out []int
	for range picks {
		best := 0
		for i := range deadline {
			if deadline[i].Cmp(deadline[best]) < 0 {
				best = i
			}
		}
		out = append(out, best)
		deadline[best].Add(deadline[best], big.NewRat(1, effective(weights[best])))
	}
	return out
}

func TestWeightedRoundRobinMatchesEDF(t *testing.T) {
	draw := seeded()
	random := make([]int, 9)
	for i := range random {
		random[i] = 1 + draw(10)
	}
	for _, weights := range [][]int{
		{1, 2},
		{5, 1, 1},
		{3, 0, -2, 4},
		random,
		{math.MaxInt32, math.MaxInt32 - 1, 1 << 20},
		{math.MaxInt, 3}, // clamped to MaxWeight
	} {
		p := balancer.NewWeightedRoundRobin(weighted(weights...))
		want := edfReference(weights, 500)
		for i, w := range want {
			r, _ := p.Pick(balancer.PickInfo{})
			if idx(r) != w {
				t.Fatalf("weights %v: pick %d went to %d, want %d (EDF)", weights, i, idx(r), w)
			}
		}
	}
}

// TestWeightedRoundRobinCyclesAreExact checks every cycle of sum(weights)
// picks: each endpoint exactly weight times.
func TestWeightedRoundRobinCyclesAreExact(t *testing.T) {
	weights := []int{5, 1, 3, 0, 2, -4, 7} // 0 and -4 count as 1
	cycle := 0
	for _, w := range weights {
		cycle += int(effective(w))
	}
	p := balancer.NewWeightedRoundRobin(weighted(weights...))
	for c := range 50 {
		counts := make([]int, len(weights))
		for range cycle {
			r, _ := p.Pick(balancer.PickInfo{})
			counts[idx(r)]++
		}
		for i, w := range weights {
			if int64(counts[i]) != effective(w) {
				t.Fatalf("cycle %d: counts %v, want the weights %v (below 1 as 1)", c, counts, weights)
			}
		}
	}
}

func TestWeightedRoundRobinIsExactUnderConcurrency(t *testing.T) {
	weights := []int{1, 2, 3, 4, 10} // a cycle of 20
	p, err := balancer.New(balancer.Config{Policy: balancer.PolicyWeightedRoundRobin}, weighted(weights...))
	if err != nil {
		t.Fatal(err)
	}
	// 8 goroutines × 1000 picks: 400 full cycles.
	counts := concurrentCounts(t, p, len(weights), 8, 1000)
	for i, w := range weights {
		if counts[i] != 400*w {
			t.Errorf("endpoint %d (weight %d) got %d picks, want exactly %d (%v)", i, w, counts[i], 400*w, counts)
		}
	}
}

func TestWeightedRoundRobinWithEqualWeightsIsRoundRobin(t *testing.T) {
	for _, w := range []int{0, 1, 3} {
		eps := weighted(w, w, w, w, w)
		wrr := balancer.NewWeightedRoundRobin(eps)
		rr := balancer.NewRoundRobin(eps)
		for i := range 53 {
			a, _ := wrr.Pick(balancer.PickInfo{})
			b, _ := rr.Pick(balancer.PickInfo{})
			if a.Endpoint != b.Endpoint {
				t.Fatalf("weights all %d: pick %d went to %d, round robin to %d", w, i, idx(a), idx(b))
			}
		}
	}
}

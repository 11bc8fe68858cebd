package balancer

import (
	"math"
	"sync"
)

// MaxWeight is the largest Endpoint.Weight WeightedRoundRobin honours;
// larger weights count as MaxWeight.
const MaxWeight = math.MaxUint32

// WeightedRoundRobin sends each endpoint a share of the requests
// proportional to its Weight, with Envoy's earliest-deadline-first
// scheduler (source/common/upstream/edf_scheduler.h): every endpoint has a
// deadline, first 1/weight; a pick takes the endpoint with the earliest
// deadline, ties going to the endpoint listed first, and moves its deadline
// on by 1/weight. The picks come in cycles of sum(weights), the first
// starting with the first pick, and in each cycle every endpoint is picked
// exactly weight times, spread through the cycle by deadline; with equal
// weights the schedule is exactly RoundRobin's. Deadlines are compared as exact fractions, so the schedule
// does not drift however long the picker runs.
//
// Parameters: each Endpoint.Weight (values below 1 count as 1, above
// MaxWeight as MaxWeight). Pick takes a mutex and costs O(log n). The
// schedule is the picker's own: a rebuilt picker starts a new cycle.
type WeightedRoundRobin struct {
	endpoints []*Endpoint
	mu        sync.Mutex
	heap      []edfEntry // a binary min-heap by (deadline, index)
	cycle     uint64     // sum of the weights
	picked    uint64     // picks in the current cycle
}

// edfEntry is one endpoint in the scheduler. Its deadline is k/w: k is the
// number of times it has been picked in the current cycle, plus one.
type edfEntry struct {
	k, w  uint64
	index int
}

// before reports whether a's deadline precedes b's: k/w compared by cross
// multiplication (k ≤ w+1 ≤ 2^32 and w < 2^32, so nothing overflows), ties
// broken by endpoint order.
func (a *edfEntry) before(b *edfEntry) bool {
	x, y := a.k*b.w, b.k*a.w
	return x < y || x == y && a.index < b.index
}

// NewWeightedRoundRobin returns a weighted round-robin picker over
// endpoints (not empty), weighted by their Weight fields as they are now.
func NewWeightedRoundRobin(endpoints []*Endpoint) *WeightedRoundRobin {
	p := &WeightedRoundRobin{endpoints: endpoints, heap: make([]edfEntry, len(endpoints))}
	for i, e := range endpoints {
		w := uint64(1)
		if e.Weight > 1 {
			w = min(uint64(e.Weight), MaxWeight)
		}
		p.heap[i] = edfEntry{k: 1, w: w, index: i}
		p.cycle += w
	}
	// Heapify.
	for i := len(p.heap)/2 - 1; i >= 0; i-- {
		p.down(i)
	}
	return p
}

// Pick returns the endpoint with the earliest deadline; Result.Done is nil.
func (p *WeightedRoundRobin) Pick(PickInfo) (Result, error) {
	p.mu.Lock()
	top := &p.heap[0]
	e := p.endpoints[top.index]
	top.k++
	p.down(0)
	p.picked++
	if p.picked == p.cycle {
		// A cycle ends at deadline 1, when every endpoint has been
		// picked exactly w times: start the next one at 0, which keeps
		// the order (all deadlines move by 1) and the numbers small.
		p.picked = 0
		for i := range p.heap {
			p.heap[i].k -= p.heap[i].w
		}
	}
	p.mu.Unlock()
	return Result{Endpoint: e}, nil
}

// down restores the heap order below i.
func (p *WeightedRoundRobin) down(i int) {
	h := p.heap
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		c := l
		if r := l + 1; r < len(h) && h[r].before(&h[l]) {
			c = r
		}
		if !h[c].before(&h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

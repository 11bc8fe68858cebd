package retry

import "sync/atomic"

// Budget caps a cluster's concurrent retries at a share of its active
// requests, as Envoy's retry budget does: a retry may start while the
// retries in flight are fewer than max(MinConcurrency, Ratio × active
// requests). During an outage, when every request fails, retries therefore
// add at most Ratio to the load instead of multiplying it by the number of
// attempts; at low load the floor still lets a few through.
type Budget struct {
	ratio    float64
	floor    int64
	active   atomic.Int64
	retries  atomic.Int64
	rejected atomic.Uint64
}

// Defaults of a Budget, Envoy's.
const (
	DefaultBudgetRatio          = 0.2
	DefaultBudgetMinConcurrency = 3
)

// NewBudget returns a budget; ratio ≤ 0 and minConcurrency ≤ 0 take the
// defaults.
func NewBudget(ratio float64, minConcurrency int) *Budget {
	if ratio <= 0 {
		ratio = DefaultBudgetRatio
	}
	if minConcurrency <= 0 {
		minConcurrency = DefaultBudgetMinConcurrency
	}
	return &Budget{ratio: ratio, floor: int64(minConcurrency)}
}

// Begin counts a request as active until End.
func (b *Budget) Begin() { b.active.Add(1) }

// End ends a request counted by Begin.
func (b *Budget) End() { b.active.Add(-1) }

// TryRetry reserves a retry if the budget allows one; the caller calls
// Done when that attempt ends. It counts refusals (see Exhausted).
func (b *Budget) TryRetry() bool {
	limit := max(b.floor, int64(b.ratio*float64(b.active.Load())))
	for {
		n := b.retries.Load()
		if n >= limit {
			b.rejected.Add(1)
			return false
		}
		if b.retries.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Done ends a retry reserved by TryRetry.
func (b *Budget) Done() { b.retries.Add(-1) }

// Exhausted returns how many retries the budget refused.
func (b *Budget) Exhausted() uint64 { return b.rejected.Load() }

// InFlight returns the retries in flight.
func (b *Budget) InFlight() int64 { return b.retries.Load() }

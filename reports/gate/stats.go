package gate

import (
	"math"
	"math/rand/v2"
	"slices"
)

// Interval is a bootstrap confidence interval of a median.
type Interval struct {
	Median float64 `json:"median"`
	Low    float64 `json:"low"`
	High   float64 `json:"high"`
}

// median returns the median of xs (the mean of the middle two for an even
// count); xs is sorted in place.
func median(xs []float64) float64 {
	slices.Sort(xs)
	n := len(xs)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}

// BootstrapMedian returns the median of xs and the percentile bootstrap
// interval of it at the given confidence, from resamples resamples drawn
// with a fixed seed: the same values always give the same interval.
func BootstrapMedian(xs []float64, confidence float64, resamples int) Interval {
	if len(xs) == 0 {
		return Interval{Median: math.NaN(), Low: math.NaN(), High: math.NaN()}
	}
	med := median(slices.Clone(xs))
	rng := rand.New(rand.NewPCG(0x6d657368, 0x62656e6368)) // fixed: reproducible verdicts
	meds := make([]float64, resamples)
	buf := make([]float64, len(xs))
	for i := range meds {
		for j := range buf {
			buf[j] = xs[rng.IntN(len(xs))]
		}
		meds[i] = median(buf)
	}
	slices.Sort(meds)
	alpha := (1 - confidence) / 2
	return Interval{Median: med, Low: quantile(meds, alpha), High: quantile(meds, 1-alpha)}
}

// quantile returns the q-quantile of sorted xs (nearest rank).
func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// MaxRepeatsNeeded caps the estimate of RepeatsNeeded.
const MaxRepeatsNeeded = 1000

// RepeatsNeeded estimates how many paired repeats would put an interval
// entirely on one side of boundary, assuming its half-width shrinks as
// 1/sqrt(n) with n repeats and the median stays where it is. It returns 0
// when the median sits on the boundary (no number of repeats is likely to
// settle it) and at most MaxRepeatsNeeded.
func RepeatsNeeded(iv Interval, n int, boundary float64) int {
	dist := math.Abs(iv.Median - boundary)
	half := iv.High - iv.Median // the side of the interval that crosses
	if boundary < iv.Median {
		half = iv.Median - iv.Low
	}
	if n < 1 || dist <= 1e-12*math.Max(1, math.Abs(boundary)) {
		return 0
	}
	if half <= 0 {
		return n
	}
	need := math.Ceil(float64(n) * (half / dist) * (half / dist))
	if need > MaxRepeatsNeeded {
		return MaxRepeatsNeeded
	}
	return max(int(need), n+1)
}

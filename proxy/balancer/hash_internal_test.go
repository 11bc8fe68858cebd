package balancer

import (
	"fmt"
	"slices"
	"testing"
)

func testEndpoints(n int) []*Endpoint {
	eps := make([]*Endpoint, n)
	for i := range eps {
		eps[i] = &Endpoint{Addr: fmt.Sprintf("10.1.%d.%d:80", i/250, i%250+1)}
	}
	return eps
}

// TestMaglevSlotsAreEven: every endpoint owns ⌊M/N⌋ or ⌈M/N⌉ slots.
func TestMaglevSlotsAreEven(t *testing.T) {
	for _, tc := range []struct{ m, n int }{{65537, 10}, {65537, 7}, {65537, 1000}, {101, 10}, {7, 7}, {7, 1}} {
		p, err := NewMaglev(testEndpoints(tc.n), MaglevConfig{TableSize: tc.m})
		if err != nil {
			t.Fatal(err)
		}
		slots := make([]int, tc.n)
		for _, o := range p.table {
			slots[o]++
		}
		lo, hi := tc.m/tc.n, (tc.m+tc.n-1)/tc.n
		if slices.Min(slots) < lo || slices.Max(slots) > hi {
			t.Errorf("M=%d N=%d: slots per endpoint from %d to %d, want %d..%d", tc.m, tc.n, slices.Min(slots),
				slices.Max(slots), lo, hi)
		}
	}
}

// TestRingHashPoints: every endpoint has the same number of points, the
// least power of two that reaches MinRingSize, and the ring is sorted.
func TestRingHashPoints(t *testing.T) {
	for _, tc := range []struct{ n, min, per int }{{10, 0, 128}, {9, 0, 128}, {7, 0, 256}, {1000, 0, 2}, {3, 16, 8}} {
		p := NewRingHash(testEndpoints(tc.n), RingHashConfig{MinRingSize: tc.min})
		per := make([]int, tc.n)
		for _, o := range p.owners {
			per[o]++
		}
		if slices.Min(per) != tc.per || slices.Max(per) != tc.per {
			t.Errorf("N=%d MinRingSize=%d: points per endpoint %d..%d, want %d", tc.n, tc.min, slices.Min(per),
				slices.Max(per), tc.per)
		}
		if !slices.IsSorted(p.points) {
			t.Errorf("N=%d: ring not sorted", tc.n)
		}
	}
}

package balancer

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// hash is xxHash64, as Envoy uses for ring_hash and maglev: stable across
// processes, so every proxy of a mesh sends a key to the same endpoint and
// a rebuilt ring moves only what it must.
func hash(s string) uint64 { return xxhash.Sum64String(s) }

// RingHash is consistent hashing on a ring (Karger et al. 1997, as in
// Envoy's ring_hash): every endpoint owns the same number of virtual nodes,
// MinRingSize/len(endpoints) rounded up to a power of two, at
// pseudo-random points of a 64-bit ring (xxHash64 of "addr_v"), and a
// request goes to the owner of the first point at or after its key's hash.
// The points depend only on addresses, so every proxy builds the same ring.
// While the number of points per endpoint stays the same, removing an
// endpoint moves exactly its own keys (to the next points' owners) and
// adding one moves to it only the keys it now owns: about 1/N of them
// either way. Load over keys follows the share of the ring each endpoint
// owns, whose relative spread is about 1/√(points per endpoint).
// Requests without a key go to the owner of a point drawn at random, that
// is to a uniformly random endpoint. The policy ignores load.
//
// Parameters: MinRingSize (default 1024), Rand (default math/rand/v2's
// IntN).
type RingHash struct {
	endpoints []*Endpoint
	points    []uint64
	owners    []int32
	rand      func(int) int
}

// RingHashConfig holds RingHash's parameters.
type RingHashConfig struct {
	// MinRingSize is the least number of points on the ring; default
	// DefaultMinRingSize (1024).
	MinRingSize int
	// Rand is the random source for requests without a key, as
	// Config.Rand; nil means math/rand/v2's IntN.
	Rand func(n int) int
}

// DefaultMinRingSize is RingHash's default ring size.
const DefaultMinRingSize = 1024

// NewRingHash builds the ring for endpoints (not empty). The points of an
// endpoint depend only on its address (and the points per endpoint), so
// rings built over overlapping endpoint sets with the same points per
// endpoint agree on the keys their common endpoints own.
func NewRingHash(endpoints []*Endpoint, cfg RingHashConfig) *RingHash {
	minRingSize := cfg.MinRingSize
	if minRingSize <= 0 {
		minRingSize = DefaultMinRingSize
	}
	// Points per endpoint: the share of MinRingSize rounded up to a power
	// of two, so that adding or removing an endpoint leaves the others'
	// points alone unless the share crosses a power of two (then every
	// endpoint gains or loses half of its points).
	per := 1
	for per*len(endpoints) < minRingSize {
		per *= 2
	}
	p := &RingHash{endpoints: endpoints, rand: randOrDefault(cfg.Rand)}
	type point struct {
		h     uint64
		owner int32
	}
	pts := make([]point, 0, per*len(endpoints))
	for i, e := range endpoints {
		for v := range per {
			pts = append(pts, point{hash(e.Addr + "_" + strconv.Itoa(v)), int32(i)})
		}
	}
	// Equal hashes (unlikely) are ordered by address so that the ring
	// does not depend on the order endpoints are listed in.
	slices.SortFunc(pts, func(a, b point) int {
		return cmp.Or(cmp.Compare(a.h, b.h), cmp.Compare(endpoints[a.owner].Addr, endpoints[b.owner].Addr),
			cmp.Compare(a.owner, b.owner))
	})
	p.points = make([]uint64, 0, len(pts))
	p.owners = make([]int32, 0, len(pts))
	for _, pt := range pts {
		p.points = append(p.points, pt.h)
		p.owners = append(p.owners, pt.owner)
	}
	return p
}

// Pick returns the owner of the key's point on the ring (of a random point
// without a key); Result.Done is nil.
func (p *RingHash) Pick(info PickInfo) (Result, error) {
	if info.Key == "" {
		return Result{Endpoint: p.endpoints[p.owners[p.rand(len(p.owners))]]}, nil
	}
	h := hash(info.Key)
	i := sort.Search(len(p.points), func(i int) bool { return p.points[i] >= h })
	if i == len(p.points) {
		i = 0
	}
	return Result{Endpoint: p.endpoints[p.owners[i]]}, nil
}

// Maglev is Google's Maglev consistent hashing (Eisenbud et al., NSDI
// 2016): a lookup table of a prime size M filled by letting every endpoint
// claim slots in the order of its own permutation (offset + j·skip mod M,
// from xxHash64 of its address), round by round, in the order of their
// addresses, so that the table does not depend on the order endpoints are
// listed in. Each endpoint owns ⌊M/N⌋ or ⌈M/N⌉ slots: the load over keys
// is as even as the keys' hashes. A change of one endpoint moves about 1/N
// of the keys, but, unlike RingHash, a few keys may also move between
// endpoints that remain (the paper's "minimal disruption" is approximate).
// Lookups are one modulo. Requests without a key get a random slot. The
// policy ignores load.
//
// Parameters: TableSize, a prime at least N (default 65537), Rand
// (default math/rand/v2's IntN).
type Maglev struct {
	endpoints []*Endpoint
	table     []int32
	rand      func(int) int
}

// MaglevConfig holds Maglev's parameters.
type MaglevConfig struct {
	// TableSize is the lookup table's size, a prime at least the number
	// of endpoints; default DefaultMaglevTableSize (65537).
	TableSize int
	// Rand is the random source for requests without a key, as
	// Config.Rand; nil means math/rand/v2's IntN.
	Rand func(n int) int
}

// DefaultMaglevTableSize is Maglev's default table size (prime).
const DefaultMaglevTableSize = 65537

// NewMaglev fills the lookup table for endpoints (not empty); it fails when
// cfg.TableSize is not a valid size (see CheckTableSize).
func NewMaglev(endpoints []*Endpoint, cfg MaglevConfig) (*Maglev, error) {
	tableSize := cfg.TableSize
	if tableSize <= 0 {
		tableSize = DefaultMaglevTableSize
	}
	if err := CheckTableSize(tableSize, len(endpoints)); err != nil {
		return nil, err
	}
	m := uint64(tableSize)
	n := len(endpoints)
	// order[r] is the endpoint that claims r-th in each round.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(endpoints[a].Addr, endpoints[b].Addr) })
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	for i, e := range endpoints {
		offset[i] = hash("offset_"+e.Addr) % m
		skip[i] = hash("skip_"+e.Addr)%(m-1) + 1
	}
	table := make([]int32, tableSize)
	for i := range table {
		table[i] = -1
	}
	filled := 0
	for filled < tableSize {
		for _, i := range order {
			c := (offset[i] + next[i]*skip[i]) % m
			for table[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % m
			}
			table[c] = int32(i)
			next[i]++
			filled++
			if filled == tableSize {
				break
			}
		}
	}
	return &Maglev{endpoints: endpoints, table: table, rand: randOrDefault(cfg.Rand)}, nil
}

// Pick returns the endpoint of the key's slot (of a random slot without a
// key); Result.Done is nil.
func (p *Maglev) Pick(info PickInfo) (Result, error) {
	if info.Key == "" {
		return Result{Endpoint: p.endpoints[p.table[p.rand(len(p.table))]]}, nil
	}
	return Result{Endpoint: p.endpoints[p.table[hash(info.Key)%uint64(len(p.table))]]}, nil
}

// CheckTableSize reports whether size can be a Maglev table for n
// endpoints: a prime, at least n.
func CheckTableSize(size, n int) error {
	if size < 2 || size < n {
		return fmt.Errorf("maglev table size %d: must be a prime at least the number of endpoints", size)
	}
	for d := 2; d*d <= size; d++ {
		if size%d == 0 {
			return fmt.Errorf("maglev table size %d: must be a prime at least the number of endpoints", size)
		}
	}
	return nil
}

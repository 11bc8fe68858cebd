package balancer

import (
	"fmt"
	"math/rand/v2"
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
// pseudo-random points of a 64-bit ring, and a request goes to the owner of the first point at or after
// its key's hash. Moving one endpoint of N remaps about 1/N of the keys.
// Requests without a key get a random point.
//
// Parameters: MinRingSize (default 1024).
type RingHash struct {
	endpoints []*Endpoint
	points    []uint64
	owners    []int32
}

// DefaultMinRingSize is RingHash's default ring size.
const DefaultMinRingSize = 1024

// NewRingHash builds the ring for endpoints (not empty). The points of an
// endpoint depend only on its address, so rings built over overlapping
// endpoint sets agree on the keys their common endpoints own.
func NewRingHash(endpoints []*Endpoint, minRingSize int) *RingHash {
	if minRingSize <= 0 {
		minRingSize = DefaultMinRingSize
	}
	// Virtual nodes per endpoint: the share of MinRingSize rounded up to a
	// power of two, so that adding or removing an endpoint rarely changes
	// the others' points, and then only the removed endpoint's keys move.
	per := 1
	for per*len(endpoints) < minRingSize {
		per *= 2
	}
	p := &RingHash{endpoints: endpoints}
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
	sort.Slice(pts, func(a, b int) bool { return pts[a].h < pts[b].h })
	for _, pt := range pts {
		p.points = append(p.points, pt.h)
		p.owners = append(p.owners, pt.owner)
	}
	return p
}

// Pick returns the owner of the key's point on the ring.
func (p *RingHash) Pick(info PickInfo) (Result, error) {
	h := rand.Uint64()
	if info.Key != "" {
		h = hash(info.Key)
	}
	i := sort.Search(len(p.points), func(i int) bool { return p.points[i] >= h })
	if i == len(p.points) {
		i = 0
	}
	return Result{Endpoint: p.endpoints[p.owners[i]]}, nil
}

// Maglev is Google's Maglev consistent hashing (Eisenbud et al., NSDI
// 2016): a lookup table of a prime size M filled by letting every endpoint
// claim slots in the order of its own permutation (offset + j·skip mod M),
// round by round, so each endpoint owns M/N slots within one and a change
// of one endpoint moves about 1/N of the keys. Lookups are one modulo.
// Requests without a key get a random slot.
//
// Parameters: TableSize, a prime (default 65537).
type Maglev struct {
	endpoints []*Endpoint
	table     []int32
}

// DefaultMaglevTableSize is Maglev's default table size (prime).
const DefaultMaglevTableSize = 65537

// NewMaglev fills the lookup table for endpoints (not empty).
func NewMaglev(endpoints []*Endpoint, tableSize int) (*Maglev, error) {
	if tableSize <= 0 {
		tableSize = DefaultMaglevTableSize
	}
	if err := CheckTableSize(tableSize, len(endpoints)); err != nil {
		return nil, err
	}
	m := uint64(tableSize)
	n := len(endpoints)
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
		for i := range n {
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
	return &Maglev{endpoints: endpoints, table: table}, nil
}

// Pick returns the endpoint of the key's slot.
func (p *Maglev) Pick(info PickInfo) (Result, error) {
	h := rand.Uint64()
	if info.Key != "" {
		h = hash(info.Key)
	}
	return Result{Endpoint: p.endpoints[p.table[h%uint64(len(p.table))]]}, nil
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

package balancer_test

import (
	"fmt"
	"testing"

	"github.com/meshbench/meshbench/proxy/balancer"
)

func addrEndpoints(addrs ...string) []*balancer.Endpoint {
	eps := make([]*balancer.Endpoint, len(addrs))
	for i, a := range addrs {
		eps[i] = &balancer.Endpoint{Addr: a, Meta: i}
	}
	return eps
}

func tenAddrs() []string {
	var a []string
	for i := range 10 {
		a = append(a, fmt.Sprintf("10.0.0.%d:8080", i+1))
	}
	return a
}

// consistency checks a hashing picker: the same key always maps to the
// same endpoint, the load is spread, every key of the removed endpoint
// moves, and removing one endpoint of N moves about 1/N of all keys.
func consistency(t *testing.T, build func([]*balancer.Endpoint) balancer.Picker) {
	t.Helper()
	addrs := tenAddrs()
	full := build(addrEndpoints(addrs...))
	less := build(addrEndpoints(addrs[1:]...)) // 10.0.0.1 removed
	const keys = 20_000
	moved := 0
	counts := map[string]int{}
	for k := range keys {
		key := fmt.Sprintf("user-%d", k)
		a, _ := full.Pick(balancer.PickInfo{Key: key})
		again, _ := full.Pick(balancer.PickInfo{Key: key})
		if a.Endpoint != again.Endpoint {
			t.Fatalf("key %s went to %s then %s", key, a.Endpoint.Addr, again.Endpoint.Addr)
		}
		counts[a.Endpoint.Addr]++
		b, _ := less.Pick(balancer.PickInfo{Key: key})
		if a.Endpoint.Addr != b.Endpoint.Addr {
			moved++
		}
	}
	if frac := float64(moved) / keys; frac < 0.05 || frac > 0.16 {
		t.Errorf("removing 1 of 10 endpoints moved %.1f%% of keys, want about 10%%", 100*frac)
	}
	for addr, c := range counts {
		if c < keys/10/2 || c > keys/10*2 {
			t.Errorf("%s got %d of %d keys: badly spread (%v)", addr, c, keys, counts)
		}
	}
}

func TestRingHashConsistency(t *testing.T) {
	consistency(t, func(eps []*balancer.Endpoint) balancer.Picker { return balancer.NewRingHash(eps, 0) })
}

func TestMaglevConsistency(t *testing.T) {
	consistency(t, func(eps []*balancer.Endpoint) balancer.Picker {
		m, err := balancer.NewMaglev(eps, 0)
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
}

func TestMaglevTableSize(t *testing.T) {
	if _, err := balancer.NewMaglev(addrEndpoints(tenAddrs()...), 1000); err == nil {
		t.Error("a table size that is not prime was accepted")
	}
	m, err := balancer.NewMaglev(addrEndpoints(tenAddrs()...), 101)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for k := range 2000 {
		r, _ := m.Pick(balancer.PickInfo{Key: fmt.Sprint(k)})
		seen[r.Endpoint.Addr] = true
	}
	if len(seen) != 10 {
		t.Errorf("a 101-slot table reached %d of 10 endpoints", len(seen))
	}
}

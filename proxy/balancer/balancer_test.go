package balancer_test

import (
	"sync"
	"testing"

	"github.com/meshbench/meshbench/proxy/balancer"
)

func endpoints(n int) []*balancer.Endpoint {
	eps := make([]*balancer.Endpoint, n)
	for i := range eps {
		eps[i] = &balancer.Endpoint{Addr: "127.0.0.1:" + string(rune('0'+i)), Meta: i}
	}
	return eps
}

// idx is the index endpoints gave the picked endpoint.
func idx(r balancer.Result) int { return r.Endpoint.Meta.(int) }

func TestRoundRobinIsExactlyEvenUnderConcurrency(t *testing.T) {
	p, err := balancer.New(balancer.Config{Policy: "round_robin"}, endpoints(5))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	counts := make([]int, 5)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]int, 5)
			for range 1000 {
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
		}()
	}
	wg.Wait()
	for i, c := range counts {
		if c != 1600 {
			t.Errorf("endpoint %d got %d picks, want exactly 1600 (%v)", i, c, counts)
		}
	}
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
	if _, err := balancer.New(balancer.Config{Policy: "fastest"}, endpoints(1)); err == nil {
		t.Error("unknown policy accepted")
	}
}

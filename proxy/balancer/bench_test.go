package balancer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
)

// benchSizes are the endpoint counts of the pick benchmarks.
var benchSizes = []int{10, 100, 1000}

// benchPicker builds policy over n endpoints with weights 1 to 5, with
// default parameters and randomness.
func benchPicker(b *testing.B, policy string, n int) (balancer.Picker, []balancer.PickInfo) {
	eps := endpoints(n)
	for i, e := range eps {
		e.Weight = 1 + i%5
	}
	cfg := balancer.Config{Policy: policy}
	p, err := balancer.New(cfg, eps)
	if err != nil {
		b.Fatal(err)
	}
	infos := make([]balancer.PickInfo, 1024)
	if cfg.NeedsKey() {
		for i := range infos {
			infos[i].Key = fmt.Sprintf("user-%d", i)
		}
	}
	return p, infos
}

// pickDone is one request's balancing work: Pick, then Done when set.
func pickDone(b *testing.B, p balancer.Picker, info balancer.PickInfo) {
	r, err := p.Pick(info)
	if err != nil {
		b.Fatal(err)
	}
	if r.Done != nil {
		r.Done(balancer.DoneInfo{StatusCode: 200, Latency: time.Millisecond})
	}
}

// BenchmarkPick measures Pick followed by Done for every policy and
// endpoint count, from one goroutine. Hashing policies get a key from a set
// of 1024.
func BenchmarkPick(b *testing.B) {
	for _, policy := range balancer.Policies() {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", policy, n), func(b *testing.B) {
				p, infos := benchPicker(b, policy, n)
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					pickDone(b, p, infos[i%len(infos)])
					i++
				}
			})
		}
	}
}

// BenchmarkPickParallel is BenchmarkPick from GOMAXPROCS goroutines at
// once, where shared state (round robin's counter, weighted round robin's
// mutex, in-flight counters) is contended.
func BenchmarkPickParallel(b *testing.B) {
	for _, policy := range balancer.Policies() {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%s/%d", policy, n), func(b *testing.B) {
				p, infos := benchPicker(b, policy, n)
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					i := 0
					for pb.Next() {
						pickDone(b, p, infos[i%len(infos)])
						i++
					}
				})
			})
		}
	}
}

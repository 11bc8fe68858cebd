package fortioengine

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/meshbench/meshbench/backends"
	"github.com/meshbench/meshbench/loadgen"
)

// The comparison tests judge the two engines against each other in the
// same test, never against absolute times: only the ratio of their
// figures, and bounds derived from the backend's configured delay or stall.

// Agreement: at low load against a fixed delay, where there is nothing
// for the engines to disagree about, meshbench's loadgen and fortio see
// the same median.
const (
	agreeDelay    = 2 * time.Millisecond
	agreeRate     = 200
	agreeConns    = 4
	agreeDuration = time.Second
	agreeWarmup   = 300 * time.Millisecond
	agreeRuns     = 3    // of each engine per attempt, interleaved A B A B ...
	agreeMargin   = 0.05 // bound on |fortio p50 / loadgen p50 - 1|
	// agreeAttempts: on a busy two-core machine loadgen's sends run late
	// (its response time counts from the intended send, fortio's from the
	// actual one), which moves the ratio by a few percent for a while;
	// the test fails only if every attempt does. An engine 1 ms off fails
	// every one.
	agreeAttempts = 3
)

// median of the values (the mean of the middle two for an even count).
func median(xs []int64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 0 {
		return float64(s[n/2-1]+s[n/2]) / 2
	}
	return float64(s[n/2])
}

// agreement runs loadgen against meshTarget and fortio against
// fortioTarget, interleaved, and returns the ratio of the medians of
// their p50s, fortio's over loadgen's.
func agreement(t *testing.T, meshTarget, fortioTarget string) float64 {
	t.Helper()
	var mesh, fortio []int64
	for range agreeRuns {
		spec := loadgen.Spec{Rate: agreeRate, Connections: agreeConns, Duration: agreeDuration, Warmup: agreeWarmup}
		spec.Target = meshTarget
		m, err := loadgen.Run(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		spec.Target = fortioTarget
		f, err := Run(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range []*loadgen.Result{m, f} {
			if r.Errors.Total != 0 || r.Requests < agreeRate*int64(agreeDuration/time.Second)*9/10 {
				t.Fatalf("%s: %d requests, errors %+v", r.Engine, r.Requests, r.Errors)
			}
		}
		mesh, fortio = append(mesh, m.Latency.P50), append(fortio, f.Latency.P50)
	}
	ratio := median(fortio) / median(mesh)
	t.Logf("p50 µs: loadgen %v (median %.0f), fortio %v (median %.0f): ratio %.3f", mesh, median(mesh), fortio, median(fortio), ratio)
	return ratio
}

// TestEnginesAgreeAtLowLoad: fortio's p50 is within 5% of loadgen's,
// comparing the medians of interleaved runs against one backend.
func TestEnginesAgreeAtLowLoad(t *testing.T) {
	b := startBackend(t, backends.Config{Name: "b1", Latency: fmt.Sprintf("fixed:%v", agreeDelay)})
	var ratio float64
	for range agreeAttempts {
		if ratio = agreement(t, httpTarget(b), httpTarget(b)); math.Abs(ratio-1) <= agreeMargin {
			return
		}
	}
	t.Errorf("fortio's p50 is %.3f × loadgen's in the last of %d attempts, want within %.0f%%", ratio, agreeAttempts, 100*agreeMargin)
}

// Stall: a backend that holds every request for stallFor once every
// stallEvery, at a rate well below its capacity, on few connections.
const (
	stallEvery    = time.Second
	stallFor      = 250 * time.Millisecond
	stallRate     = 400
	stallConns    = 2
	stallDuration = 4 * time.Second
)

// TestStallShowsOnlyInLoadgen runs both engines at once against one
// stalling backend. loadgen sends on its schedule and measures from the
// intended send, so the requests meant for a stall wait it out and its
// p99 is most of the stall. fortio's two threads each wait in the stall
// with one request and send the others late, measured from then: the
// stall reaches fortio's maximum (it did meet the stalls) but not its
// p99.
func TestStallShowsOnlyInLoadgen(t *testing.T) {
	b := startBackend(t, backends.Config{Name: "b1", Latency: fmt.Sprintf("fixed:1ms,stall:%v/%v", stallEvery, stallFor)})
	spec := loadgen.Spec{Target: httpTarget(b), Rate: stallRate, Connections: stallConns, Duration: stallDuration, Warmup: 500 * time.Millisecond}
	var mesh, fortio *loadgen.Result
	var errMesh, errFortio error
	var wg sync.WaitGroup
	wg.Go(func() { mesh, errMesh = loadgen.Run(context.Background(), spec) })
	wg.Go(func() { fortio, errFortio = Run(context.Background(), spec) })
	wg.Wait()
	if errMesh != nil || errFortio != nil {
		t.Fatal(errMesh, errFortio)
	}
	for _, r := range []*loadgen.Result{mesh, fortio} {
		t.Logf("%-9s requests %d (%.1f req/s), p50 %dµs p99 %dµs p99.9 %dµs max %dµs; service p99 %dµs",
			r.Engine, r.Requests, r.AchievedRate, r.Latency.P50, r.Latency.P99, r.Latency.P999, r.Latency.Max, r.ServiceTime.P99)
	}
	half := (stallFor / 2).Microseconds()
	if mesh.Latency.P99 < half {
		t.Errorf("loadgen p99 %dµs, want at least half the %v stall (%dµs)", mesh.Latency.P99, stallFor, half)
	}
	if fortio.Latency.Max < half {
		t.Errorf("fortio max %dµs: its threads did not meet the %v stalls", fortio.Latency.Max, stallFor)
	}
	if fortio.Latency.P99 >= mesh.Latency.P99/2 {
		t.Errorf("fortio p99 %dµs, want below half loadgen's %dµs", fortio.Latency.P99, mesh.Latency.P99)
	}
}

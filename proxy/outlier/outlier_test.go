package outlier

import (
	"sort"
	"sync"
	"testing"
	"time"
)

// fakeTime is a manual clock whose timers fire when it is advanced.
type fakeTime struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeTime) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeTime) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool { c.mu.Lock(); defer c.mu.Unlock(); was := !t.stopped; t.stopped = true; return was }
}

// advance moves the clock and fires due timers in order.
func (c *fakeTime) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		if !t.stopped && !t.at.After(c.now) {
			due = append(due, t)
		} else if !t.stopped {
			keep = append(keep, t)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

func newTestDetector(cfg Config) (*Detector, *fakeTime, *int) {
	clk := &fakeTime{now: time.Unix(1000, 0)}
	cfg.Now, cfg.AfterFunc = clk.Now, clk.AfterFunc
	changes := new(int)
	return New(cfg, func() { *changes++ }), clk, changes
}

func TestClassify(t *testing.T) {
	for status, want := range map[int]Outcome{0: GatewayFailure, 200: Success, 404: Success, 500: Error5xx, 501: Error5xx, 502: GatewayFailure, 503: GatewayFailure, 504: GatewayFailure} {
		if got := Classify(status); got != want {
			t.Errorf("Classify(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestConsecutiveFailuresEjectAndReturn(t *testing.T) {
	d, clk, changes := newTestDetector(Config{MaxEjectionPercent: 100})
	h := d.Add()
	// Four failures and a success: the run starts over.
	for range 4 {
		h.Record(Error5xx)
	}
	h.Record(Success)
	for range 4 {
		if h.Record(Error5xx) {
			t.Fatal("ejected before five consecutive 5xx")
		}
	}
	if !h.Record(Error5xx) || !h.Ejected() || *changes != 1 {
		t.Fatalf("fifth 5xx: ejected=%v changes=%d", h.Ejected(), *changes)
	}
	clk.advance(DefaultBaseEjectionTime - time.Second)
	if !h.Ejected() {
		t.Fatal("returned before the base ejection time")
	}
	clk.advance(time.Second)
	if h.Ejected() || *changes != 2 {
		t.Fatalf("after 30s: ejected=%v changes=%d", h.Ejected(), *changes)
	}
	if h.Ejections() != 1 {
		t.Errorf("ejections %d", h.Ejections())
	}
}

func TestGatewayFailuresHaveTheirOwnRun(t *testing.T) {
	d, _, _ := newTestDetector(Config{Consecutive5xx: -1, ConsecutiveGatewayFailure: 3, MaxEjectionPercent: 100})
	h := d.Add()
	// A 500 breaks a run of gateway failures.
	h.Record(GatewayFailure)
	h.Record(GatewayFailure)
	h.Record(Error5xx)
	h.Record(GatewayFailure)
	h.Record(GatewayFailure)
	if h.Ejected() {
		t.Fatal("ejected although the gateway run was broken")
	}
	h.Record(GatewayFailure)
	if !h.Ejected() {
		t.Fatal("three gateway failures in a row did not eject")
	}
}

func TestEjectionTimeGrowsExponentiallyAndDecays(t *testing.T) {
	d, clk, _ := newTestDetector(Config{Consecutive5xx: 1, BaseEjectionTime: 10 * time.Second, MaxEjectionTime: 60 * time.Second, MaxEjectionPercent: 100})
	h := d.Add()
	// Ejected again right after each return: 10, 20, 40, 60 (capped), 60 s.
	for i, want := range []time.Duration{10, 20, 40, 60, 60} {
		want *= time.Second
		h.Record(Error5xx)
		if !h.Ejected() {
			t.Fatalf("ejection %d did not happen", i+1)
		}
		clk.advance(want - time.Millisecond)
		if !h.Ejected() {
			t.Fatalf("ejection %d ended before %v", i+1, want)
		}
		clk.advance(time.Millisecond)
		if h.Ejected() {
			t.Fatalf("ejection %d lasted beyond %v", i+1, want)
		}
	}
	// A long healthy spell brings it back to the base time.
	clk.advance(10 * time.Minute)
	h.Record(Error5xx)
	clk.advance(10 * time.Second)
	if h.Ejected() {
		t.Error("after a long healthy period the ejection was longer than the base time")
	}
}

func TestMaxEjectionPercent(t *testing.T) {
	d, clk, _ := newTestDetector(Config{Consecutive5xx: 1, MaxEjectionPercent: 40})
	hosts := make([]*Host, 5)
	for i := range hosts {
		hosts[i] = d.Add()
	}
	for _, h := range hosts {
		h.Record(Error5xx)
	}
	out := 0
	for _, h := range hosts {
		if h.Ejected() {
			out++
		}
	}
	if out != 2 {
		t.Fatalf("%d of 5 ejected with a 40%% cap, want 2", out)
	}
	// After they return, the others can go.
	clk.advance(DefaultBaseEjectionTime)
	for _, h := range hosts[2:] {
		h.Record(Error5xx)
	}
	out = 0
	for _, h := range hosts {
		if h.Ejected() {
			out++
		}
	}
	if out != 2 {
		t.Fatalf("second round: %d ejected, want 2", out)
	}
}

func TestAtLeastOneCanBeEjected(t *testing.T) {
	d, _, _ := newTestDetector(Config{Consecutive5xx: 1}) // 10% of 3 rounds to 0
	a, b := d.Add(), d.Add()
	d.Add()
	a.Record(Error5xx)
	b.Record(Error5xx)
	if !a.Ejected() || b.Ejected() {
		t.Fatalf("a=%v b=%v, want only the first ejected", a.Ejected(), b.Ejected())
	}
}

func TestRemovedHostFreesItsSlot(t *testing.T) {
	d, clk, changes := newTestDetector(Config{Consecutive5xx: 1})
	a, b := d.Add(), d.Add()
	a.Record(Error5xx)
	d.Remove(a)
	b.Record(Error5xx)
	if !b.Ejected() {
		t.Fatal("removing an ejected host did not free the ejection slot")
	}
	before := *changes
	clk.advance(DefaultMaxEjectionTime)
	if *changes != before+1 {
		t.Errorf("changes %d → %d: the removed host's timer fired or b's did not", before, *changes)
	}
}

package outlier

import (
	"sync"
	"sync/atomic"
	"time"
)

// Outcome classifies one upstream exchange for outlier detection.
type Outcome uint8

// Outcomes.
const (
	// Success is any response below 500.
	Success Outcome = iota
	// Error5xx is a 5xx response other than a gateway failure.
	Error5xx
	// GatewayFailure is a 502, 503 or 504 response, or no response at all
	// (connect failure, reset, timeout). It counts towards both runs.
	GatewayFailure
)

// Classify returns the outcome of an exchange that ended with HTTP status
// status (0 when there was no response).
func Classify(status int) Outcome {
	switch {
	case status == 0, status == 502, status == 503, status == 504:
		return GatewayFailure
	case status >= 500:
		return Error5xx
	}
	return Success
}

// Config holds a detector's parameters; zero values take the defaults.
type Config struct {
	// Consecutive5xx is the run of 5xx responses (gateway failures
	// included) that ejects an endpoint. Default 5; negative disables.
	Consecutive5xx int
	// ConsecutiveGatewayFailure is the run of gateway failures that ejects
	// an endpoint. Default 5; negative disables.
	ConsecutiveGatewayFailure int
	// BaseEjectionTime is the first ejection's length; the k-th ejection in
	// a row lasts BaseEjectionTime·2^(k−1). Default 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's length. Default 300s.
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the share of the cluster's endpoints ejected
	// at once; at least one endpoint can always be ejected. Default 10.
	MaxEjectionPercent int
	// Now and AfterFunc replace the clock and timers in tests.
	Now       func() time.Time
	AfterFunc func(time.Duration, func()) (stop func() bool)
}

// Defaults.
const (
	DefaultConsecutive5xx            = 5
	DefaultConsecutiveGatewayFailure = 5
	DefaultBaseEjectionTime          = 30 * time.Second
	DefaultMaxEjectionTime           = 300 * time.Second
	DefaultMaxEjectionPercent        = 10
)

func (c *Config) setDefaults() {
	if c.Consecutive5xx == 0 {
		c.Consecutive5xx = DefaultConsecutive5xx
	}
	if c.ConsecutiveGatewayFailure == 0 {
		c.ConsecutiveGatewayFailure = DefaultConsecutiveGatewayFailure
	}
	if c.BaseEjectionTime <= 0 {
		c.BaseEjectionTime = DefaultBaseEjectionTime
	}
	if c.MaxEjectionTime <= 0 {
		c.MaxEjectionTime = DefaultMaxEjectionTime
	}
	if c.MaxEjectionTime < c.BaseEjectionTime {
		c.MaxEjectionTime = c.BaseEjectionTime
	}
	if c.MaxEjectionPercent <= 0 {
		c.MaxEjectionPercent = DefaultMaxEjectionPercent
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.AfterFunc == nil {
		c.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
}

// Detector watches the endpoints of one cluster. It is safe for concurrent
// use.
type Detector struct {
	cfg      Config
	onChange func()

	mu      sync.Mutex
	hosts   map[*Host]struct{}
	ejected int
}

// Host is the outlier state of one endpoint.
type Host struct {
	d        *Detector
	run5xx   atomic.Int32
	runGW    atomic.Int32
	isOut    atomic.Bool
	total    atomic.Uint64 // ejections over the host's lifetime
	removed  bool          // guarded by d.mu
	streak   int           // ejections in a row, guarded by d.mu
	returned time.Time     // last return to service, guarded by d.mu
	stop     func() bool   // pending return timer, guarded by d.mu
}

// New returns a detector. onChange, which may be nil, is called after an
// endpoint is ejected or returns, outside the detector's lock, so the
// caller can rebuild its balancer over the endpoints not ejected.
func New(cfg Config, onChange func()) *Detector {
	cfg.setDefaults()
	if onChange == nil {
		onChange = func() {}
	}
	return &Detector{cfg: cfg, onChange: onChange, hosts: map[*Host]struct{}{}}
}

// Add starts tracking a new endpoint.
func (d *Detector) Add() *Host {
	h := &Host{d: d}
	d.mu.Lock()
	d.hosts[h] = struct{}{}
	d.mu.Unlock()
	return h
}

// Remove stops tracking h, an endpoint that left the cluster.
func (d *Detector) Remove(h *Host) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h.removed {
		return
	}
	h.removed = true
	delete(d.hosts, h)
	if h.isOut.Load() {
		h.isOut.Store(false)
		d.ejected--
		if h.stop != nil {
			h.stop()
		}
	}
}

// Ejected reports whether h is out of service.
func (h *Host) Ejected() bool { return h.isOut.Load() }

// Ejections returns how many times h was ejected.
func (h *Host) Ejections() uint64 { return h.total.Load() }

// Record folds one exchange's outcome into h's runs and ejects h when a
// run reaches its threshold. It reports whether this call ejected h.
func (h *Host) Record(o Outcome) bool {
	cfg := &h.d.cfg
	if o == Success {
		// Fast path: nothing to reset.
		if h.run5xx.Load() != 0 {
			h.run5xx.Store(0)
		}
		if h.runGW.Load() != 0 {
			h.runGW.Store(0)
		}
		return false
	}
	trip := false
	if n := h.run5xx.Add(1); cfg.Consecutive5xx > 0 && int(n) >= cfg.Consecutive5xx {
		trip = true
	}
	if o == GatewayFailure {
		if n := h.runGW.Add(1); cfg.ConsecutiveGatewayFailure > 0 && int(n) >= cfg.ConsecutiveGatewayFailure {
			trip = true
		}
	} else {
		h.runGW.Store(0)
	}
	if !trip || h.isOut.Load() {
		return false
	}
	if !h.d.eject(h) {
		return false
	}
	h.d.onChange()
	return true
}

// eject takes h out of service unless it already is, it left the cluster,
// or the cluster is at its ejection limit.
func (d *Detector) eject(h *Host) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h.removed || h.isOut.Load() {
		return false
	}
	limit := len(d.hosts) * d.cfg.MaxEjectionPercent / 100
	if limit < 1 {
		limit = 1
	}
	if d.ejected >= limit {
		return false
	}
	now := d.cfg.Now()
	// The streak decays by one for every BaseEjectionTime served without
	// an ejection since the last return, so an endpoint that recovered for
	// good starts again from the base time.
	if h.streak > 0 && !h.returned.IsZero() {
		healthy := int(now.Sub(h.returned) / d.cfg.BaseEjectionTime)
		h.streak = max(0, h.streak-healthy)
	}
	h.streak++
	dur := d.ejectionTime(h.streak)
	h.isOut.Store(true)
	h.total.Add(1)
	h.run5xx.Store(0)
	h.runGW.Store(0)
	d.ejected++
	h.stop = d.cfg.AfterFunc(dur, func() { d.restore(h) })
	return true
}

// restore puts h back in service at the end of its ejection.
func (d *Detector) restore(h *Host) {
	d.mu.Lock()
	if h.removed || !h.isOut.Load() {
		d.mu.Unlock()
		return
	}
	h.isOut.Store(false)
	h.returned = d.cfg.Now()
	h.stop = nil
	d.ejected--
	d.mu.Unlock()
	d.onChange()
}

// ejectionTime is the length of the streak-th ejection in a row:
// BaseEjectionTime·2^(streak−1), at most MaxEjectionTime.
func (d *Detector) ejectionTime(streak int) time.Duration {
	dur := d.cfg.BaseEjectionTime
	for i := 1; i < streak && dur < d.cfg.MaxEjectionTime; i++ {
		dur *= 2
	}
	return min(dur, d.cfg.MaxEjectionTime)
}

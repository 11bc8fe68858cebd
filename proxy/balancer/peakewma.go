package balancer

import (
	"math"
	"sync"
	"time"
)

// PeakEWMA is the power of two choices over a latency-aware cost, as in
// Finagle's PeakEwma load metric and tower's p2c + PeakEwma balancer (the
// one Linkerd 2's proxy uses). Each endpoint keeps an estimate of its round
// trip time:
//
//   - a response slower than the estimate replaces it at once (the "peak"),
//     so a degrading endpoint is noticed on its first slow response;
//   - a faster one moves the estimate towards it with an exponentially
//     weighted moving average whose weight decays with the time since the
//     last update: estimate = estimate·w + rtt·(1−w), w = exp(−Δt/Decay);
//   - when no response arrives, the estimate decays towards zero at pick
//     time (estimate·exp(−Δt/Decay)), so an endpoint that was slow is tried
//     again eventually, as in tower.
//
// The cost of an endpoint is estimate × (requests in flight + 1). Pick draws
// two distinct endpoints at random and takes the cheaper one (the first
// drawn on a tie). The round-trip sample is DoneInfo.Latency, which the
// caller measures. A failed request (DoneInfo.Err set) counts as a response
// at the failure time, so an endpoint that fails fast does not look fast:
// its sample is at least Penalty. An endpoint seen for the first time
// starts at DefaultRTT. Estimates and in-flight counts live on the
// endpoints, so a rebuilt picker keeps them.
//
// Parameters: Decay (default 10s), DefaultRTT for endpoints without
// observations (default 30ms), Penalty for failures (default 1s), Rand
// (default math/rand/v2's IntN).
// References: Finagle's com.twitter.finagle.loadbalancer.PeakEwma, tower's
// tower::load::peak_ewma, Linkerd's "Beyond round robin" (2016).
type PeakEWMA struct {
	endpoints  []*Endpoint
	done       []func(DoneInfo) // done[i] finishes a request to endpoints[i]; built once so Pick does not allocate
	rand       func(int) int
	decay      float64 // nanoseconds
	defaultRTT float64
	penalty    float64
	now        func() time.Time
}

// PeakEWMAConfig holds PeakEWMA's parameters; zero values take defaults.
type PeakEWMAConfig struct {
	// Decay is the EWMA time constant; default DefaultEWMADecay (10s).
	Decay time.Duration
	// DefaultRTT is the estimate of an endpoint never observed; default
	// DefaultEWMARTT (30ms).
	DefaultRTT time.Duration
	// Penalty is the least sample a failed request counts as; default
	// DefaultEWMAPenalty (1s).
	Penalty time.Duration
	// Now is the clock that dates samples and decay; default time.Now.
	// Tests replace it.
	Now func() time.Time
	// Rand is the random source, as Config.Rand; nil means math/rand/v2's
	// IntN.
	Rand func(n int) int
}

// Defaults of PeakEWMA.
const (
	// DefaultEWMADecay is the default PeakEWMAConfig.Decay.
	DefaultEWMADecay = 10 * time.Second
	// DefaultEWMARTT is the default PeakEWMAConfig.DefaultRTT.
	DefaultEWMARTT = 30 * time.Millisecond
	// DefaultEWMAPenalty is the default PeakEWMAConfig.Penalty.
	DefaultEWMAPenalty = time.Second
)

// ewmaState is an endpoint's round-trip estimate; stamp is zero until the
// first use.
type ewmaState struct {
	mu       sync.Mutex
	estimate float64 // nanoseconds
	stamp    time.Time
}

// NewPeakEWMA returns a peak-EWMA picker over endpoints (not empty).
func NewPeakEWMA(endpoints []*Endpoint, cfg PeakEWMAConfig) *PeakEWMA {
	if cfg.Decay <= 0 {
		cfg.Decay = DefaultEWMADecay
	}
	if cfg.DefaultRTT <= 0 {
		cfg.DefaultRTT = DefaultEWMARTT
	}
	if cfg.Penalty <= 0 {
		cfg.Penalty = DefaultEWMAPenalty
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &PeakEWMA{endpoints: endpoints, rand: randOrDefault(cfg.Rand), decay: float64(cfg.Decay),
		defaultRTT: float64(cfg.DefaultRTT), penalty: float64(cfg.Penalty), now: cfg.Now}
	p.done = make([]func(DoneInfo), len(endpoints))
	for i, e := range endpoints {
		p.done[i] = func(d DoneInfo) { p.finish(e, d) }
	}
	return p
}

// decayed returns e's estimate at now, decaying it first. The caller holds
// e.ewma.mu.
func (p *PeakEWMA) decayed(e *Endpoint, now time.Time) float64 {
	s := &e.ewma
	if s.stamp.IsZero() {
		s.estimate = p.defaultRTT
		s.stamp = now
	} else if dt := now.Sub(s.stamp); dt > 0 {
		s.estimate *= math.Exp(-float64(dt) / p.decay)
		s.stamp = now
	}
	return s.estimate
}

// cost returns e's current cost.
func (p *PeakEWMA) cost(e *Endpoint, now time.Time) float64 {
	e.ewma.mu.Lock()
	est := p.decayed(e, now)
	e.ewma.mu.Unlock()
	return est * float64(e.inflight.Load()+1)
}

// observe folds a round trip into e's estimate.
func (p *PeakEWMA) observe(e *Endpoint, rtt float64, now time.Time) {
	s := &e.ewma
	s.mu.Lock()
	if s.stamp.IsZero() {
		s.estimate = p.defaultRTT
		s.stamp = now
	}
	if rtt > s.estimate {
		s.estimate = rtt
	} else {
		w := math.Exp(-float64(now.Sub(s.stamp)) / p.decay)
		s.estimate = s.estimate*w + rtt*(1-w)
	}
	s.stamp = now
	s.mu.Unlock()
}

// Pick returns the cheaper of two distinct random endpoints and counts the
// request in flight there until Result.Done.
func (p *PeakEWMA) Pick(PickInfo) (Result, error) {
	n := len(p.endpoints)
	best := 0
	if n > 1 {
		now := p.now()
		a := p.rand(n)
		b := p.rand(n - 1)
		if b >= a {
			b++
		}
		best = a
		if p.cost(p.endpoints[b], now) < p.cost(p.endpoints[a], now) {
			best = b
		}
	}
	p.endpoints[best].inflight.Add(1)
	return Result{Endpoint: p.endpoints[best], Done: p.done[best]}, nil
}

// finish ends a request to e: it is no longer in flight, and its latency
// (at least the penalty if it failed) is folded into e's estimate.
func (p *PeakEWMA) finish(e *Endpoint, d DoneInfo) {
	e.inflight.Add(-1)
	rtt := float64(max(d.Latency, 0))
	if d.Err != nil && rtt < p.penalty {
		rtt = p.penalty
	}
	p.observe(e, rtt, p.now())
}

// Estimate returns e's current round-trip estimate, decayed to now (for
// metrics).
func (p *PeakEWMA) Estimate(e *Endpoint) time.Duration {
	e.ewma.mu.Lock()
	defer e.ewma.mu.Unlock()
	return time.Duration(p.decayed(e, p.now()))
}

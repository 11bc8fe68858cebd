package balancer

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// Random sends each request to an endpoint chosen uniformly at random. It
// has no parameters.
type Random struct {
	endpoints []*Endpoint
}

// NewRandom returns a uniform random picker over endpoints (not empty).
func NewRandom(endpoints []*Endpoint) *Random { return &Random{endpoints: endpoints} }

// Pick returns a random endpoint.
func (p *Random) Pick(PickInfo) (Result, error) {
	return Result{Endpoint: p.endpoints[rand.IntN(len(p.endpoints))]}, nil
}

// LeastRequest sends each request to the endpoint with the fewest requests
// in flight among ChoiceCount endpoints drawn at random (the "power of two
// choices" when ChoiceCount is 2, Mitzenmacher 2001), or among all
// endpoints with FullScan. Ties go to the first drawn. In-flight counts are
// kept by the picker itself: incremented at Pick, decremented by Done.
//
// Parameters: ChoiceCount (default 2, at least 2), FullScan (default
// false).
type LeastRequest struct {
	endpoints   []*Endpoint
	choiceCount int
	fullScan    bool
}

// LeastRequestConfig holds LeastRequest's parameters.
type LeastRequestConfig struct {
	ChoiceCount int
	FullScan    bool
}

// NewLeastRequest returns a least-request picker over endpoints (not
// empty).
func NewLeastRequest(endpoints []*Endpoint, cfg LeastRequestConfig) *LeastRequest {
	if cfg.ChoiceCount < 2 {
		cfg.ChoiceCount = 2
	}
	return &LeastRequest{endpoints: endpoints, choiceCount: cfg.ChoiceCount, fullScan: cfg.FullScan}
}

// Pick returns the least loaded of the drawn endpoints.
func (p *LeastRequest) Pick(PickInfo) (Result, error) {
	var best *Endpoint
	n := len(p.endpoints)
	if p.fullScan || n <= p.choiceCount {
		start := rand.IntN(n) // rotate so ties spread
		for k := range n {
			e := p.endpoints[(start+k)%n]
			if best == nil || e.inflight.Load() < best.inflight.Load() {
				best = e
			}
		}
	} else {
		for range p.choiceCount {
			e := p.endpoints[rand.IntN(n)]
			if best == nil || e.inflight.Load() < best.inflight.Load() {
				best = e
			}
		}
	}
	best.inflight.Add(1)
	return Result{Endpoint: best, Done: best.release}, nil
}

// release ends one request counted in flight.
func (e *Endpoint) release(DoneInfo) { e.inflight.Add(-1) }

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
// two distinct endpoints at random and takes the cheaper one. A failed
// request (no response) counts as a response at the failure time, so an
// endpoint that fails fast does not look fast: its estimate is set to at
// least Penalty. An endpoint seen for the first time starts at DefaultRTT.
//
// Parameters: Decay (default 10s), DefaultRTT for endpoints without
// observations (default 30ms), Penalty for failures (default 1s).
// References: Finagle's com.twitter.finagle.loadbalancer.PeakEwma, tower's
// tower::load::peak_ewma, Linkerd's "Beyond round robin" (2016).
type PeakEWMA struct {
	endpoints  []*Endpoint
	decay      float64 // nanoseconds
	defaultRTT float64
	penalty    float64
	now        func() time.Time
}

// PeakEWMAConfig holds PeakEWMA's parameters; zero values take defaults.
type PeakEWMAConfig struct {
	Decay      time.Duration
	DefaultRTT time.Duration
	Penalty    time.Duration
	// Now replaces the clock in tests.
	Now func() time.Time
}

// Defaults of PeakEWMA.
const (
	DefaultEWMADecay   = 10 * time.Second
	DefaultEWMARTT     = 30 * time.Millisecond
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
	return &PeakEWMA{endpoints: endpoints, decay: float64(cfg.Decay), defaultRTT: float64(cfg.DefaultRTT),
		penalty: float64(cfg.Penalty), now: cfg.Now}
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

// Pick returns the cheaper of two distinct random endpoints.
func (p *PeakEWMA) Pick(PickInfo) (Result, error) {
	n := len(p.endpoints)
	best := p.endpoints[0]
	now := p.now()
	if n > 1 {
		a := rand.IntN(n)
		b := rand.IntN(n - 1)
		if b >= a {
			b++
		}
		ea, eb := p.endpoints[a], p.endpoints[b]
		best = ea
		if p.cost(eb, now) < p.cost(ea, now) {
			best = eb
		}
	}
	best.inflight.Add(1)
	sent := now
	return Result{Endpoint: best, Done: func(d DoneInfo) {
		best.inflight.Add(-1)
		end := p.now()
		rtt := float64(end.Sub(sent))
		if d.Err != nil && rtt < p.penalty {
			rtt = p.penalty
		}
		p.observe(best, rtt, end)
	}}, nil
}

// Estimate returns e's current round-trip estimate, decayed to now (for
// metrics).
func (p *PeakEWMA) Estimate(e *Endpoint) time.Duration {
	e.ewma.mu.Lock()
	defer e.ewma.mu.Unlock()
	return time.Duration(p.decayed(e, p.now()))
}

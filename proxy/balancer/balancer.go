package balancer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// ErrNoEndpoint is the error (wrapped) of New over no endpoints, and of a
// Pick when no endpoint can take the request.
var ErrNoEndpoint = errors.New("no endpoint available")

// Endpoint is one destination of a cluster. It carries the load state the
// policies observe (requests in flight, the peak-EWMA estimate), so a caller
// that rebuilds its picker when the endpoint set changes (discovery,
// outlier ejection) passes the same *Endpoint values again and keeps what
// was learned about the endpoints that remain. An Endpoint must not be
// copied after first use.
type Endpoint struct {
	// Addr is host:port.
	Addr string
	// Weight is the endpoint's relative capacity for weighted_round_robin;
	// values below 1 count as 1, values above MaxWeight as MaxWeight.
	// Other policies ignore it.
	Weight int
	// Meta is the caller's per-endpoint data; the balancer never reads it.
	Meta any

	inflight atomic.Int64 // requests picked and not yet done, for policies that count them
	ewma     ewmaState
}

// InFlight returns the requests in flight to the endpoint as counted by a
// least_request or peak_ewma picker (0 under other policies).
func (e *Endpoint) InFlight() int64 { return e.inflight.Load() }

// PickInfo describes the request being balanced.
type PickInfo struct {
	// Key is a request attribute for hashing policies (a header value or the
	// client address); empty when the policy does not need one.
	Key string
}

// DoneInfo is the outcome of a picked request.
type DoneInfo struct {
	// Err is non-nil when no response was received (connect failure,
	// reset, timeout).
	Err error
	// StatusCode is the HTTP status of the response, 0 without one.
	StatusCode int
	// Latency is the time from the pick to the end of the response (or to
	// the failure). The caller measures it; peak_ewma takes it as the
	// endpoint's round-trip sample, so it must be filled.
	Latency time.Duration
}

// Result is a pick: the endpoint, and a callback (which may be nil) to be
// called exactly once when the request ends.
type Result struct {
	// Endpoint is the chosen endpoint, one of those the picker was built
	// over.
	Endpoint *Endpoint
	// Done, when not nil, must be called exactly once with the request's
	// outcome. Policies that count requests in flight (least_request,
	// peak_ewma) set it.
	Done func(DoneInfo)
}

// Picker chooses endpoints. Implementations are safe for concurrent use
// (given a Config.Rand that is). A picker is immutable over its endpoint
// set: when the set changes (discovery, outlier ejection), build a new one
// over the same *Endpoint values, which carry the load state.
type Picker interface {
	// Pick chooses the endpoint of one request described by info.
	Pick(info PickInfo) (Result, error)
}

// Policies, the values of Config.Policy.
const (
	// PolicyRoundRobin is RoundRobin.
	PolicyRoundRobin = "round_robin"
	// PolicyWeightedRoundRobin is WeightedRoundRobin.
	PolicyWeightedRoundRobin = "weighted_round_robin"
	// PolicyRandom is Random.
	PolicyRandom = "random"
	// PolicyLeastRequest is LeastRequest.
	PolicyLeastRequest = "least_request"
	// PolicyPeakEWMA is PeakEWMA, the policy of a Config without one.
	PolicyPeakEWMA = "peak_ewma"
	// PolicyRingHash is RingHash.
	PolicyRingHash = "ring_hash"
	// PolicyMaglev is Maglev.
	PolicyMaglev = "maglev"
)

// DefaultPolicy is the policy New uses when Config.Policy is empty.
const DefaultPolicy = PolicyPeakEWMA

// Config chooses a policy and its parameters; zero values take the
// policy's defaults. The proxy fills it from a cluster's balancer block;
// endpoint weights are on the Endpoints, not here.
type Config struct {
	// Policy (YAML policy) is one of Policies(); empty means
	// DefaultPolicy, peak_ewma.
	Policy string
	// ChoiceCount (YAML choice_count) is how many endpoints least_request
	// draws per pick; default 2, at least 2.
	ChoiceCount int
	// FullScan (YAML full_scan) makes least_request compare every
	// endpoint instead of drawing; default false.
	FullScan bool
	// Decay (YAML decay) is peak_ewma's time constant; default
	// DefaultEWMADecay, 10s.
	Decay time.Duration
	// DefaultRTT (YAML default_rtt) is peak_ewma's estimate for an
	// endpoint not yet observed; default DefaultEWMARTT, 30ms.
	DefaultRTT time.Duration
	// MinRingSize (YAML min_ring_size) is ring_hash's least number of
	// points on the ring; default DefaultMinRingSize, 1024.
	MinRingSize int
	// TableSize (YAML table_size) is maglev's lookup table size, a prime
	// at least the number of endpoints; default DefaultMaglevTableSize,
	// 65537.
	TableSize int
	// Rand returns a uniform int in [0, n) for n > 0. The random,
	// least_request and peak_ewma policies draw endpoints with it, and
	// ring_hash and maglev place requests without a key with it. It must
	// be safe for concurrent use when the picker is (a seeded *rand.Rand
	// is not: use one from a single goroutine, as tests do). Default:
	// math/rand/v2's IntN. Not a YAML key.
	Rand func(n int) int
}

// randOrDefault returns r, or math/rand/v2's goroutine-safe IntN when r is
// nil.
func randOrDefault(r func(int) int) func(int) int {
	if r == nil {
		return rand.IntN
	}
	return r
}

// Policies lists every policy New accepts.
func Policies() []string {
	return []string{PolicyRoundRobin, PolicyWeightedRoundRobin, PolicyRandom, PolicyLeastRequest,
		PolicyPeakEWMA, PolicyRingHash, PolicyMaglev}
}

// NeedsKey reports whether the policy routes by PickInfo.Key.
func (c Config) NeedsKey() bool { return c.Policy == PolicyRingHash || c.Policy == PolicyMaglev }

// New returns the picker cfg describes over endpoints, which must not be
// empty. An empty cfg.Policy selects DefaultPolicy (peak_ewma).
func New(cfg Config, endpoints []*Endpoint) (Picker, error) {
	policy := cfg.Policy
	if policy == "" {
		policy = DefaultPolicy
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("creating %s balancer: %w", policy, ErrNoEndpoint)
	}
	if ps := cfg.Validate(len(endpoints)); len(ps) > 0 {
		return nil, fmt.Errorf("creating %s balancer: %s", policy, ps[0])
	}
	switch policy {
	case PolicyRoundRobin:
		return NewRoundRobin(endpoints), nil
	case PolicyWeightedRoundRobin:
		return NewWeightedRoundRobin(endpoints), nil
	case PolicyRandom:
		return NewRandom(endpoints, RandomConfig{Rand: cfg.Rand}), nil
	case PolicyLeastRequest:
		return NewLeastRequest(endpoints, LeastRequestConfig{ChoiceCount: cfg.ChoiceCount, FullScan: cfg.FullScan,
			Rand: cfg.Rand}), nil
	case PolicyPeakEWMA:
		return NewPeakEWMA(endpoints, PeakEWMAConfig{Decay: cfg.Decay, DefaultRTT: cfg.DefaultRTT, Rand: cfg.Rand}), nil
	case PolicyRingHash:
		return NewRingHash(endpoints, RingHashConfig{MinRingSize: cfg.MinRingSize, Rand: cfg.Rand}), nil
	case PolicyMaglev:
		return NewMaglev(endpoints, MaglevConfig{TableSize: cfg.TableSize, Rand: cfg.Rand})
	default:
		return nil, fmt.Errorf("creating balancer: unknown policy %q", cfg.Policy)
	}
}

// RoundRobin sends each request to the next endpoint in a fixed cyclic
// order, starting with the first. It has no parameters and observes nothing
// about outcomes; it is the baseline the other algorithms are compared with.
// Pick is one atomic add.
type RoundRobin struct {
	endpoints []*Endpoint
	next      atomic.Uint64
}

// NewRoundRobin returns a round-robin picker over endpoints, which must not
// be empty.
func NewRoundRobin(endpoints []*Endpoint) *RoundRobin {
	return &RoundRobin{endpoints: endpoints}
}

// Pick returns the next endpoint in order; Result.Done is nil.
func (p *RoundRobin) Pick(PickInfo) (Result, error) {
	n := p.next.Add(1) - 1
	return Result{Endpoint: p.endpoints[n%uint64(len(p.endpoints))]}, nil
}

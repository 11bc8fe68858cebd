package balancer

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// ErrNoEndpoint is returned by Pick when no endpoint can take the request.
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
	// values below 1 count as 1.
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
	// Latency is the time from the pick to the end of the response.
	Latency time.Duration
}

// Result is a pick: the endpoint, and a callback (which may be nil) to be
// called exactly once when the request ends.
type Result struct {
	Endpoint *Endpoint
	Done     func(DoneInfo)
}

// Picker chooses endpoints. Implementations are safe for concurrent use.
type Picker interface {
	Pick(PickInfo) (Result, error)
}

// Policies.
const (
	PolicyRoundRobin   = "round_robin"
	PolicyRandom       = "random"
	PolicyLeastRequest = "least_request"
	PolicyPeakEWMA     = "peak_ewma"
	PolicyRingHash     = "ring_hash"
	PolicyMaglev       = "maglev"
)

// Config chooses a policy and its parameters; zero parameters take the
// policy's defaults.
type Config struct {
	Policy string
	// least_request
	ChoiceCount int
	FullScan    bool
	// peak_ewma
	Decay      time.Duration
	DefaultRTT time.Duration
	// ring_hash
	MinRingSize int
	// maglev
	TableSize int
}

// Policies lists every policy New accepts.
func Policies() []string {
	return []string{PolicyRoundRobin, PolicyRandom, PolicyLeastRequest, PolicyPeakEWMA, PolicyRingHash, PolicyMaglev}
}

// NeedsKey reports whether the policy routes by PickInfo.Key.
func (c Config) NeedsKey() bool { return c.Policy == PolicyRingHash || c.Policy == PolicyMaglev }

// New returns the picker cfg describes over endpoints.
func New(cfg Config, endpoints []*Endpoint) (Picker, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("creating %s balancer: %w", cfg.Policy, ErrNoEndpoint)
	}
	switch cfg.Policy {
	case PolicyRoundRobin, "":
		return NewRoundRobin(endpoints), nil
	case PolicyRandom:
		return NewRandom(endpoints), nil
	case PolicyLeastRequest:
		return NewLeastRequest(endpoints, LeastRequestConfig{ChoiceCount: cfg.ChoiceCount, FullScan: cfg.FullScan}), nil
	case PolicyPeakEWMA:
		return NewPeakEWMA(endpoints, PeakEWMAConfig{Decay: cfg.Decay, DefaultRTT: cfg.DefaultRTT}), nil
	case PolicyRingHash:
		return NewRingHash(endpoints, cfg.MinRingSize), nil
	case PolicyMaglev:
		return NewMaglev(endpoints, cfg.TableSize)
	default:
		return nil, fmt.Errorf("creating balancer: unknown policy %q", cfg.Policy)
	}
}

// RoundRobin sends each request to the next endpoint in a fixed cyclic
// order. It has no parameters and observes nothing about outcomes; it is the
// baseline the other algorithms are compared with.
type RoundRobin struct {
	endpoints []*Endpoint
	next      atomic.Uint64
}

// NewRoundRobin returns a round-robin picker over endpoints, which must not
// be empty.
func NewRoundRobin(endpoints []*Endpoint) *RoundRobin {
	return &RoundRobin{endpoints: endpoints}
}

// Pick returns the next endpoint in order.
func (p *RoundRobin) Pick(PickInfo) (Result, error) {
	n := p.next.Add(1) - 1
	return Result{Endpoint: p.endpoints[n%uint64(len(p.endpoints))]}, nil
}

package balancer

// LeastRequest sends each request to the endpoint with the fewest requests
// in flight among ChoiceCount endpoints drawn at random, with replacement
// (the "power of two choices" when ChoiceCount is 2, Mitzenmacher 2001; as
// Envoy's least_request), or among all endpoints with FullScan or when
// there are no more endpoints than ChoiceCount. Ties go to the first drawn
// (a full scan starts at a random endpoint, so ties spread). In-flight
// counts are kept on the endpoints: incremented at Pick, decremented by
// Done, shared by every picker over the same *Endpoint values.
//
// With one endpoint of N held busy, it is picked only when all ChoiceCount
// draws hit it: a share of (1/N)^ChoiceCount.
//
// Parameters: ChoiceCount (default 2, at least 2), FullScan (default
// false), Rand (default math/rand/v2's IntN).
type LeastRequest struct {
	endpoints   []*Endpoint
	done        []func(DoneInfo) // done[i] releases endpoints[i]; built once so Pick does not allocate
	choiceCount int
	fullScan    bool
	rand        func(int) int
}

// LeastRequestConfig holds LeastRequest's parameters.
type LeastRequestConfig struct {
	// ChoiceCount is the number of endpoints drawn per pick; 0 means
	// DefaultChoiceCount, 2. Config.Validate refuses fewer than 2.
	ChoiceCount int
	// FullScan compares all endpoints instead of drawing; default false.
	FullScan bool
	// Rand is the random source, as Config.Rand; nil means math/rand/v2's
	// IntN.
	Rand func(n int) int
}

// DefaultChoiceCount is least_request's ChoiceCount when none is given.
const DefaultChoiceCount = 2

// NewLeastRequest returns a least-request picker over endpoints (not
// empty).
func NewLeastRequest(endpoints []*Endpoint, cfg LeastRequestConfig) *LeastRequest {
	if cfg.ChoiceCount == 0 {
		cfg.ChoiceCount = DefaultChoiceCount
	}
	done := make([]func(DoneInfo), len(endpoints))
	for i, e := range endpoints {
		done[i] = e.release
	}
	return &LeastRequest{endpoints: endpoints, done: done, choiceCount: cfg.ChoiceCount, fullScan: cfg.FullScan,
		rand: randOrDefault(cfg.Rand)}
}

// Pick returns the least loaded of the drawn endpoints and counts the
// request in flight there until Result.Done.
func (p *LeastRequest) Pick(PickInfo) (Result, error) {
	best := -1
	var bestLoad int64
	n := len(p.endpoints)
	if p.fullScan || n <= p.choiceCount {
		start := p.rand(n) // rotate so ties spread
		for k := range n {
			i := start + k
			if i >= n {
				i -= n
			}
			if l := p.endpoints[i].inflight.Load(); best < 0 || l < bestLoad {
				best, bestLoad = i, l
			}
		}
	} else {
		for range p.choiceCount {
			i := p.rand(n)
			if l := p.endpoints[i].inflight.Load(); best < 0 || l < bestLoad {
				best, bestLoad = i, l
			}
		}
	}
	e := p.endpoints[best]
	e.inflight.Add(1)
	return Result{Endpoint: e, Done: p.done[best]}, nil
}

// release ends one request counted in flight.
func (e *Endpoint) release(DoneInfo) { e.inflight.Add(-1) }

package balancer

// Random sends each request to an endpoint chosen uniformly at random. Its
// only parameter is the source of randomness.
type Random struct {
	endpoints []*Endpoint
	rand      func(int) int
}

// RandomConfig holds Random's parameters.
type RandomConfig struct {
	// Rand is the random source, as Config.Rand; nil means math/rand/v2's
	// IntN.
	Rand func(n int) int
}

// NewRandom returns a uniform random picker over endpoints (not empty).
func NewRandom(endpoints []*Endpoint, cfg RandomConfig) *Random {
	return &Random{endpoints: endpoints, rand: randOrDefault(cfg.Rand)}
}

// Pick returns a random endpoint; Result.Done is nil.
func (p *Random) Pick(PickInfo) (Result, error) {
	return Result{Endpoint: p.endpoints[p.rand(len(p.endpoints))]}, nil
}

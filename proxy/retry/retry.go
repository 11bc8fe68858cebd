package retry

import (
	"math/rand/v2"
	"time"
)

// Conditions name the failures a route retries.
type Conditions struct {
	// ConnectFailure: the endpoint could not be reached.
	ConnectFailure bool
	// Reset: the connection or stream failed before a response arrived,
	// or the attempt's per-try timeout expired.
	Reset bool
	// Status503: the endpoint answered 503.
	Status503 bool
	// Unavailable: the endpoint answered gRPC status UNAVAILABLE (14) in a
	// trailers-only response.
	Unavailable bool
}

// Condition names as written in the proxy configuration.
const (
	OnConnectFailure = "connect-failure"
	OnReset          = "reset"
	On503            = "503"
	OnUnavailable    = "unavailable"
)

// ParseConditions turns configuration names into Conditions; it returns
// the first unknown name, if any.
func ParseConditions(names []string) (Conditions, string) {
	var c Conditions
	for _, n := range names {
		switch n {
		case OnConnectFailure:
			c.ConnectFailure = true
		case OnReset:
			c.Reset = true
		case On503:
			c.Status503 = true
		case OnUnavailable:
			c.Unavailable = true
		default:
			return c, n
		}
	}
	return c, ""
}

// Policy is a route's retry policy.
type Policy struct {
	// Attempts is the most attempts a request gets, the first included;
	// 1 means no retries.
	Attempts int
	On       Conditions
	// PerTryTimeout bounds each attempt; 0 leaves only the route timeout.
	PerTryTimeout time.Duration
	// BackoffBase and BackoffMax shape the wait before each retry (see
	// Backoff). Defaults 25ms and 10×BackoffBase.
	BackoffBase, BackoffMax time.Duration
	// BufferLimit is how many request body bytes are kept for replay; a
	// request whose body grew past it is not retried. Default 64 KiB.
	BufferLimit int
}

// Defaults.
const (
	DefaultBackoffBase = 25 * time.Millisecond
	DefaultBufferLimit = 64 << 10
)

// WithDefaults returns p with zero parameters set to their defaults.
func (p Policy) WithDefaults() Policy {
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	if p.BackoffBase <= 0 {
		p.BackoffBase = DefaultBackoffBase
	}
	if p.BackoffMax <= 0 {
		p.BackoffMax = 10 * p.BackoffBase
	}
	if p.BufferLimit <= 0 {
		p.BufferLimit = DefaultBufferLimit
	}
	return p
}

// Backoff returns the wait before retry number n (1 for the first retry):
// "full jitter" exponential backoff as Envoy and the AWS architecture
// guidance define it, uniform in [0, min(BackoffMax, BackoffBase·(2^n − 1))].
// rnd draws uniformly in [0, n); nil uses math/rand/v2.
func (p Policy) Backoff(n int, rnd func(int64) int64) time.Duration {
	if rnd == nil {
		rnd = rand.Int64N
	}
	ceiling := p.BackoffMax
	if n < 32 {
		if c := p.BackoffBase * time.Duration(1<<n-1); c > 0 && c < ceiling {
			ceiling = c
		}
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(ceiling) + 1))
}

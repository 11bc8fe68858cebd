package loadgen

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Protocols a Spec can use.
const (
	HTTP1 = "http1"
	H2C   = "h2c"
	H2    = "h2"
	GRPC  = "grpc"
)

// Arrival processes of open-loop load.
const (
	Uniform = "uniform"
	Poisson = "poisson"
)

// gRPC call shapes.
const (
	// GRPCUnary makes one TestService.UnaryCall per request.
	GRPCUnary = "unary"
	// GRPCStream keeps one TestService.FullDuplexCall per worker open and
	// counts one message round trip as a request.
	GRPCStream = "stream"
)

// Spec describes one load run.
type Spec struct {
	// Target is a URL (http:// or https://) for HTTP protocols, or
	// host:port (optionally with a scheme) for gRPC.
	Target string
	// Targets, when set, spreads the connections round robin over several
	// targets, as a client without a proxy spreads over a service's pods:
	// connection i goes to Targets[i % len(Targets)]. Target must then be
	// empty or equal Targets[0]. All targets share the protocol, the
	// Authority and the TLS options, and Connections must be at least
	// len(Targets).
	Targets  []string
	Protocol string // http1 (default), h2c, h2 or grpc
	// Rate is the total requests per second; 0 means closed loop, as fast
	// as the connections allow.
	Rate    float64
	Arrival string // uniform (default) or poisson
	// Connections is the number of connections (default 1). For h2c, h2
	// and gRPC, Streams requests run concurrently on each (default 1).
	Connections int
	Streams     int
	// Duration bounds the measured part of the run; Requests bounds its
	// request count. At least one must be set; the run ends at the first
	// bound reached.
	Duration time.Duration
	Requests int64
	// Warmup runs load that is not recorded before the measured part.
	Warmup time.Duration
	// Timeout bounds one request (default 10s).
	Timeout time.Duration

	Method    string      // default GET, or POST with a body
	BodySize  int         // request body bytes (HTTP) or payload bytes (gRPC)
	Header    http.Header // extra request headers / gRPC metadata
	Authority string      // Host header / :authority override
	// ResponseSize asks a gRPC TestService for this many payload bytes.
	ResponseSize int
	GRPCMode     string // unary (default) or stream

	TLS TLSOptions
	// Labels are copied into the result.
	Labels map[string]string
	// SpinWindow is how long before a request's send time a waiting
	// worker stops sleeping and spins (default AutoSpin(Rate), negative
	// for none). Timers on virtual machines often fire late by half a
	// millisecond or more; spinning the last stretch keeps sends on time
	// at the cost of CPU: about Rate × SpinWindow of a core.
	SpinWindow time.Duration
	// Seed seeds Poisson arrivals; 0 picks a random seed.
	Seed uint64
	// Progress, when set, is called about once a second with the last
	// second's figures.
	Progress func(Second)

	// Mix, when set, runs these streams at the same time instead of one
	// load of Target and Protocol (which stay empty): each stream its
	// own protocol, targets and rate, all on the same schedule. Rate is
	// then the total that streams with a Share divide.
	Mix []Stream
	// Search, when set, looks for the highest rate meeting its objective
	// instead of running at Rate.
	Search *SearchSpec
	// MaxSendLag bounds the generator's own lateness: a run whose p99
	// SendLag is above it is invalid (default DefaultMaxSendLag; negative
	// for no bound).
	MaxSendLag time.Duration
	// MaxConnectionWaits is the highest fraction of requests that may wait
	// for a busy connection before the run is invalid: too few
	// connections for the rate (default DefaultMaxConnectionWaits).
	MaxConnectionWaits float64
	// NewConnectionPerRequest opens a new connection (and, over TLS, does
	// a full handshake) for every request: HTTP/1.1 and h2 only.
	NewConnectionPerRequest bool
	// Start, when set, is when the run begins (its warm-up, then the
	// measured part), so that several generators share one schedule.
	Start time.Time
}

// TLSOptions configure TLS towards the target.
type TLSOptions struct {
	CAFile     string // trust these roots instead of the system's
	CertFile   string // client certificate (mTLS)
	KeyFile    string
	ServerName string // SNI and verification name; default the target host
	Insecure   bool   // skip verification
}

// Defaults for zero Spec fields.
const (
	DefaultTimeout    = 10 * time.Second
	DefaultSpinWindow = 1500 * time.Microsecond
	// SpinBudget is the share of a core that spinning may cost at most
	// (AutoSpin).
	SpinBudget = 0.25
	// DefaultMaxSendLag and DefaultMaxConnectionWaits bound a valid run
	// (Result.Invalid); docs/loadgen.md says how they were chosen.
	DefaultMaxSendLag         = 5 * time.Millisecond
	DefaultMaxConnectionWaits = 0.01
)

// normalize fills defaults and validates.
func (s *Spec) normalize() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Protocol == "" {
		s.Protocol = HTTP1
	}
	if s.Arrival == "" {
		s.Arrival = Uniform
	}
	if s.Connections == 0 {
		s.Connections = 1
	}
	if s.Streams == 0 {
		s.Streams = 1
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	switch {
	case s.SpinWindow == 0:
		s.SpinWindow = AutoSpin(s.Rate)
	case s.SpinWindow < 0:
		s.SpinWindow = 0
	}
	if s.GRPCMode == "" {
		s.GRPCMode = GRPCUnary
	}
	switch {
	case s.MaxSendLag == 0:
		s.MaxSendLag = DefaultMaxSendLag
	case s.MaxSendLag < 0:
		s.MaxSendLag = 0
	}
	switch {
	case s.MaxConnectionWaits == 0:
		s.MaxConnectionWaits = DefaultMaxConnectionWaits
	case s.MaxConnectionWaits < 0:
		s.MaxConnectionWaits = 1 // no bound
	}
	if s.NewConnectionPerRequest && s.Protocol != HTTP1 {
		bad("new connection per request: HTTP/1.1 only (over TCP or TLS); %s multiplexes requests on a connection", s.Protocol)
	}
	if s.Method == "" {
		s.Method = http.MethodGet
		if s.BodySize > 0 {
			s.Method = http.MethodPost
		}
	}
	switch s.Protocol {
	case HTTP1, H2C, H2, GRPC:
	default:
		bad("protocol %q: must be http1, h2c, h2 or grpc", s.Protocol)
	}
	switch s.Arrival {
	case Uniform, Poisson:
	default:
		bad("arrival %q: must be uniform or poisson", s.Arrival)
	}
	switch s.GRPCMode {
	case GRPCUnary, GRPCStream:
	default:
		bad("grpc mode %q: must be unary or stream", s.GRPCMode)
	}
	if s.Rate < 0 {
		bad("rate %v: must be positive, or 0 for max", s.Rate)
	}
	if s.Connections < 0 || s.Streams < 0 {
		bad("connections and streams must be positive")
	}
	if s.Protocol == HTTP1 && s.Streams > 1 {
		bad("streams %d: HTTP/1.1 carries one request at a time per connection; use more connections", s.Streams)
	}
	if s.Duration < 0 || s.Warmup < 0 || s.Timeout < 0 || s.Requests < 0 || s.BodySize < 0 || s.ResponseSize < 0 {
		bad("durations, counts and sizes must not be negative")
	}
	if s.Duration == 0 && s.Requests == 0 {
		bad("set a duration, a request count, or both: a run must end by itself")
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		bad("a client certificate needs both its certificate and key files")
	}
	if len(s.Targets) > 0 {
		switch {
		case s.Target == "":
			s.Target = s.Targets[0]
		case s.Target != s.Targets[0]:
			bad("target %q: with several targets, target must be empty or the first of them (%q)", s.Target, s.Targets[0])
		}
		if s.Connections > 0 && s.Connections < len(s.Targets) {
			bad("connections %d: fewer than the %d targets; every target needs a connection", s.Connections, len(s.Targets))
		}
	}
	switch {
	case len(s.Targets) > 0:
		for i, t := range s.Targets {
			if t == "" {
				bad("targets[%d]: empty", i)
			} else if err := s.checkTarget(t); err != nil {
				errs = append(errs, err)
			}
		}
	case s.Target == "":
		bad("target is required")
	default:
		if err := s.checkTarget(s.Target); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// targets is the list connections are spread over: Targets, or Target
// alone.
func (s *Spec) targets() []string {
	if len(s.Targets) > 0 {
		return s.Targets
	}
	return []string{s.Target}
}

// target is the target of connection i.
func (s *Spec) target(i int) string {
	ts := s.targets()
	return ts[i%len(ts)]
}

func (s *Spec) checkTarget(target string) error {
	if s.Protocol == GRPC {
		t := target
		if strings.Contains(t, "://") {
			u, err := url.Parse(t)
			if err != nil || u.Host == "" {
				return fmt.Errorf("target %q: want host:port", t)
			}
			t = u.Host
		}
		if !strings.Contains(t, ":") {
			return fmt.Errorf("target %q: want host:port", target)
		}
		return nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("target %q: %w", target, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("target %q: want an http:// or https:// URL", target)
	case u.Host == "":
		return fmt.Errorf("target %q: no host", target)
	case s.Protocol == H2 && u.Scheme != "https":
		return fmt.Errorf("target %q: h2 is HTTP/2 over TLS and needs https://", target)
	case s.Protocol == H2C && u.Scheme != "http":
		return fmt.Errorf("target %q: h2c is cleartext HTTP/2 and needs http://", target)
	}
	return nil
}

// workers is how many requests may be in flight at once.
func (s *Spec) workers() int {
	if s.Protocol == HTTP1 {
		return s.Connections
	}
	return s.Connections * s.Streams
}

// AutoSpin is the default spin window at a total rate: DefaultSpinWindow,
// shortened so that spinning costs at most SpinBudget of a core (at 400
// req/s 625 µs, at 2,000 req/s 125 µs). A generator that spins a whole
// core at a high rate takes the CPU its own sends need on a small machine.
func AutoSpin(rate float64) time.Duration {
	if rate <= 0 {
		return DefaultSpinWindow
	}
	return min(DefaultSpinWindow, time.Duration(SpinBudget/rate*float64(time.Second)))
}

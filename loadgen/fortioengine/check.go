package fortioengine

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/meshbench/meshbench/loadgen"
)

// checkSpec refuses, before defaults are filled in, the spec fields
// fortio cannot honour.
func checkSpec(s *loadgen.Spec) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("fortio engine: %s: %s: %w", field, fmt.Sprintf(format, args...), ErrUnsupported))
	}
	if len(s.Mix) > 0 {
		bad("Mix", "fortio runs one load at a time; measure each stream on its own")
	}
	if s.Search != nil {
		bad("Search", "the rate search is meshbench's; run fortio at the rate it found")
	}
	if s.Arrival == loadgen.Poisson {
		bad("Arrival", "fortio paces every thread at even intervals (uniform); it has no Poisson arrivals")
	}
	if s.Seed != 0 {
		bad("Seed", "fortio's uniform pacing has nothing random to seed")
	}
	if s.SpinWindow > 0 {
		bad("SpinWindow", "fortio's runner waits on timers and cannot spin; leave it 0 (or negative, no spinning, which is what fortio does)")
	}
	if s.MaxSendLag > 0 {
		bad("MaxSendLag", "fortio does not say when it meant to send a request, so its send lag cannot be bounded")
	}
	if s.MaxConnectionWaits > 0 {
		bad("MaxConnectionWaits", "fortio does not say which requests waited for a busy connection")
	}
	if s.Duration > 0 && s.Requests > 0 {
		bad("Requests", "fortio runs for a duration or for exactly a number of requests, not until the first of both; set one")
	}
	if s.ResponseSize > 0 {
		bad("ResponseSize", "fortio's clients cannot ask for a response size (its gRPC health check has no payload); set the size on the backend")
	}
	if s.NewConnectionPerRequest && s.Protocol != "" && s.Protocol != loadgen.HTTP1 {
		bad("NewConnectionPerRequest", "only fortio's HTTP/1.1 client opens a connection per request (its -keepalive=false)")
	}
	if s.GRPCMode == loadgen.GRPCStream {
		bad("GRPCMode", "fortio's gRPC runner makes one unary call per request; it has no streaming mode")
	}
	return errors.Join(errs...)
}

// checkNormalized refuses what depends on the protocol, once the spec's
// defaults are filled in.
func checkNormalized(s *loadgen.Spec) error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("fortio engine: %s: %s: %w", field, fmt.Sprintf(format, args...), ErrUnsupported))
	}
	switch s.Protocol {
	case loadgen.HTTP1, loadgen.H2C, loadgen.H2:
		if s.Streams > 1 {
			bad("Streams", "fortio's HTTP clients carry one request at a time, one client and connection per thread; use more connections")
		}
		targets := s.Targets
		if len(targets) == 0 {
			targets = []string{s.Target}
		}
		for _, t := range targets {
			if err := checkHTTPTarget(s, t); err != nil {
				errs = append(errs, err)
			}
		}
	case loadgen.GRPC:
		if s.BodySize > 0 {
			bad("BodySize", "fortio's gRPC runner calls %s, whose request has no payload", grpcCall)
		}
		if s.Method != "GET" { // Normalize's default, which gRPC ignores
			bad("Method", "a gRPC call has no HTTP method")
		}
	default:
		errs = append(errs, fmt.Errorf("fortio engine: protocol %s is not supported by fortio's HTTP client: %w", s.Protocol, ErrUnsupported))
	}
	return errors.Join(errs...)
}

// checkHTTPTarget refuses what fortio's HTTP clients cannot do with a
// target.
func checkHTTPTarget(s *loadgen.Spec, target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("fortio engine: target %q: %w", target, err)
	}
	if s.TLS.ServerName != "" && u.Scheme == "https" && s.TLS.ServerName != u.Hostname() {
		return fmt.Errorf("fortio engine: TLS.ServerName: %q: fortio's HTTP clients verify and send as SNI the target's host name (%s) and have no option for another: %w",
			s.TLS.ServerName, u.Hostname(), ErrUnsupported)
	}
	return nil
}

// Check says whether fortio can run spec, without sending anything: the
// error of Run's own checks (wrapping ErrUnsupported for what fortio
// cannot do), or nil. A scenario runner uses it to mark a cell n/a before
// it deploys anything.
func Check(spec loadgen.Spec) error {
	if err := checkSpec(&spec); err != nil {
		return err
	}
	if err := spec.Normalize(); err != nil {
		return fmt.Errorf("fortio engine: load spec: %w", err)
	}
	return checkNormalized(&spec)
}

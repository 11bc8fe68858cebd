package peers

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/meshbench/meshbench/proxy/config"
)

// Names of the peers; "reference" (meshproxy) is not one of them.
const (
	NameNginx   = "nginx"
	NameHAProxy = "haproxy"
	NameCaddy   = "caddy"
	NameEnvoy   = "envoy"
)

// Downstream protocols a cell sends through a proxy (Options.Traffic):
// the names of the scenarios' load protocols.
const (
	TrafficHTTP1 = "http1" // HTTP/1.1, cleartext
	TrafficH2C   = "h2c"   // HTTP/2 with prior knowledge, not gRPC
	TrafficGRPC  = "grpc"  // gRPC over h2c
)

// Adapter is one peer proxy.
type Adapter interface {
	// Name is the peer's name in scenario files and results.
	Name() string
	// Binary is the executable looked up on PATH; Package is the Debian
	// package that installs it ("" when none does on these machines).
	Binary() string
	Package() string
	// Capabilities say what the peer can do, for the docs and for Check.
	Capabilities() Capabilities
	// Render translates c, with its defaults applied and every address
	// resolved, into the peer's native configuration. It returns a
	// *NotApplicable error when c or the traffic needs what the peer
	// lacks.
	Render(c *config.Config, o Options) (*Instance, error)
	// Version asks the binary at path for its version.
	Version(ctx context.Context, path string) (string, error)
}

// Options are what Render needs besides the configuration.
type Options struct {
	// Name is the proxy instance's name (sidecar-echo-0, node-1).
	Name string
	// Dir is the absolute directory the peer runs in and its files go
	// to; the configuration's relative certificate paths resolve there.
	Dir string
	// SocketDir is a directory with a short path (unix socket paths are
	// limited to 107 bytes) for the sockets a peer listens on internally.
	SocketDir string
	// Traffic lists the downstream protocols the cell sends (TrafficHTTP1,
	// TrafficH2C, TrafficGRPC).
	Traffic []string
	// User is the user a peer's worker processes run as, when it is
	// started as root and would otherwise switch (nginx); empty leaves
	// the peer's default.
	User string
	// Workers is the number of worker processes or threads; 0 means 1,
	// the reference proxy's GOMAXPROCS=1.
	Workers int
}

func (o Options) workers() int { return max(1, o.Workers) }

func (o Options) sends(proto string) bool { return slices.Contains(o.Traffic, proto) }

// Instance is a rendered peer: what to write, what to run, how to know it
// is ready.
type Instance struct {
	// Files are written below Options.Dir before the peer starts.
	Files []File
	// Args is the command line after the binary.
	Args []string
	// Ready is the URL that answers 200 once the peer serves.
	Ready string
	// Metrics is the URL of a Prometheus endpoint, or "" when the peer has
	// none.
	Metrics string
	// Drain is the signal that makes the peer stop accepting and finish
	// what it has (graceful stop).
	Drain syscall.Signal
	// MultiProcess is set when the peer forks workers (nginx): its CPU and
	// memory are those of its whole process group.
	MultiProcess bool
	// Notes are the parity choices the adapter made for this instance,
	// for the cell's record.
	Notes []string
}

// File is one file of an instance.
type File struct {
	Path string // relative to Options.Dir
	Data []byte
}

// Capabilities a peer may lack besides the balancer policies, by the
// keys of Capabilities.Missing; conformance checks name them in their
// Needs.
const (
	// CapAuto is HTTP/1.1 and h2c served on one cleartext port.
	CapAuto = "auto"
	// CapMTLS is mTLS with SPIFFE identities (URI SANs), client and
	// upstream, and authorization by identity.
	CapMTLS = "mtls"
	// CapRetry is retries counted in attempts, on connection failures,
	// resets and 503.
	CapRetry = "retry"
	// CapRetryUnavailable is a retry on gRPC status UNAVAILABLE.
	CapRetryUnavailable = "retry-unavailable"
	// CapRetryBudget caps a cluster's concurrent retries at a share of its
	// active requests (Envoy's retry_budget).
	CapRetryBudget = "retry-budget"
	// CapOutlier is passive health: an endpoint that fails is taken out
	// for a while, then tried again.
	CapOutlier = "outlier"
	// CapOutlierStatus is passive health that counts 5xx answers without
	// retrying them.
	CapOutlierStatus = "outlier-status"
	// CapH2CUpstreamHTTP is plain HTTP/2 (not gRPC) forwarded as h2c.
	CapH2CUpstreamHTTP = "h2c-upstream-http"
	// CapHopByHop is the removal of hop-by-hop headers in both
	// directions: those the Connection header names, Keep-Alive,
	// Proxy-Connection, TE other than trailers, Upgrade (RFC 9110 §7.6.1).
	CapHopByHop = "hop-by-hop"
)

// Capabilities is what a peer supports, by the neutral configuration's
// names.
type Capabilities struct {
	// Balancers are the neutral policies the peer has natively, each
	// mapped to the peer's own name.
	Balancers map[string]string
	// Missing explains each neutral feature the peer lacks.
	Missing map[string]string
	// Metrics says where the peer's metrics are.
	Metrics string
}

// NotApplicable is the error of a cell a peer cannot run.
type NotApplicable struct {
	Peer   string
	Reason string
}

func (e *NotApplicable) Error() string { return e.Peer + ": " + e.Reason }

// IsNotApplicable reports whether err is, or wraps, a NotApplicable.
func IsNotApplicable(err error) bool {
	var na *NotApplicable
	return errors.As(err, &na)
}

func notApplicable(peer, format string, args ...any) error {
	return &NotApplicable{Peer: peer, Reason: fmt.Sprintf(format, args...)}
}

// Render renders c for the peer a after applying the defaults the
// reference proxy would apply (config.WithDefaults): adapters translate
// the configuration the reference proxy would run, timeouts, pools and
// policies included. Platforms render peers through it.
func Render(a Adapter, c *config.Config, o Options) (*Instance, error) {
	full, err := c.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name(), err)
	}
	return a.Render(full, o)
}

// AddNotes appends to notes each of more it does not hold yet.
func AddNotes(notes []string, more ...string) []string {
	for _, n := range more {
		if !slices.Contains(notes, n) {
			notes = append(notes, n)
		}
	}
	return notes
}

// All returns every adapter, in the order reports list them.
func All() []Adapter {
	return []Adapter{Nginx{}, HAProxy{}, Caddy{}, Envoy{}}
}

// Names returns the peers' names.
func Names() []string {
	var out []string
	for _, a := range All() {
		out = append(out, a.Name())
	}
	return out
}

// Lookup returns the adapter of a peer.
func Lookup(name string) (Adapter, bool) {
	for _, a := range All() {
		if a.Name() == name {
			return a, true
		}
	}
	return nil, false
}

// Find looks the peer's binary up on PATH; the error names the package
// that installs it.
func Find(a Adapter) (string, error) {
	p, err := exec.LookPath(a.Binary())
	if err == nil {
		return p, nil
	}
	if a.Package() != "" {
		return "", fmt.Errorf("%s: %s not found on PATH: install the Debian package %s (apt-get install %s)", a.Name(), a.Binary(), a.Package(), a.Package())
	}
	return "", fmt.Errorf("%s: %s not found on PATH: no package provides it on this machine; put an %s binary on PATH", a.Name(), a.Binary(), a.Binary())
}

// versionOf runs bin with args and returns the first line of its output
// that contains marker, trimmed.
func versionOf(ctx context.Context, bin string, marker string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("asking %s for its version: %w: %s", bin, err, strings.TrimSpace(string(out)))
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, marker) {
			return strings.TrimSpace(l), nil
		}
	}
	return strings.TrimSpace(string(out)), nil
}

package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
)

// Env is what a check runs in: its target, a working directory, loopback
// addresses, backends and proxies it starts (all stopped when it ends),
// and the figures it measures.
type Env struct {
	ctx      context.Context
	target   *Target
	dir      string
	log      *slog.Logger
	sabotage *Sabotage
	tools    Tools
	figures  []Figure
	cleanups []func()
	n        int
	addrs    map[string]bool // returned by Addr
}

// Figure is one measured value of a check.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit,omitempty"`
}

// Tools are the outside programs some checks run; "" where missing.
type Tools struct {
	// Prometheus is the prometheus server binary (Debian: prometheus).
	Prometheus string
	// H2Spec is the h2spec binary.
	H2Spec string
	// Self re-executes this program as a conformance child
	// (ChildEnv selects the child's job): the gRPC interop cases run
	// there, since grpc-go's interop functions exit the process on a
	// failure.
	Self string
}

// ChildEnv is the environment variable that makes a program started as
// Tools.Self run a conformance child job instead of its main program.
const ChildEnv = "MESHBENCH_CONFORM_CHILD"

// Sabotage breaks a setup on purpose, to show a check can fail: it edits
// each proxy configuration before it is rendered and each backend's
// options before it starts.
type Sabotage struct {
	Config  func(*config.Config)
	Backend func(*BackendOptions)
}

// Context is the check's context: cancelled at its deadline or on
// interrupt.
func (e *Env) Context() context.Context { return e.ctx }

// Target is the proxy under test.
func (e *Env) Target() *Target { return e.target }

// Tools are the outside programs available.
func (e *Env) Tools() Tools { return e.tools }

// Log is the check's logger: its records go to the run's log.
func (e *Env) Log() *slog.Logger { return e.log }

// Dir returns a new directory for the check's files.
func (e *Env) Dir() (string, error) {
	e.n++
	d := filepath.Join(e.dir, fmt.Sprintf("d%d", e.n))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", d, err)
	}
	return d, nil
}

// Figure records a measured value for the report.
func (e *Env) Figure(name string, value float64, unit string) {
	e.figures = append(e.figures, Figure{Name: name, Value: value, Unit: unit})
}

// Cleanup registers f to run when the check ends, last registered first.
func (e *Env) Cleanup(f func()) { e.cleanups = append(e.cleanups, f) }

// Addr returns a free loopback address (127.0.0.1:port), never one it
// returned before in this check: the port is free when Addr returns, and
// the kernel may offer a port it just handed out again.
func (e *Env) Addr() (string, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("finding a free port: %w", err)
		}
		a := l.Addr().String()
		l.Close()
		if !e.addrs[a] {
			if e.addrs == nil {
				e.addrs = map[string]bool{}
			}
			e.addrs[a] = true
			return a, nil
		}
	}
	return "", errors.New("finding a free port: the kernel offered only ports this check already holds")
}

// listen listens on a loopback port no Addr of this check returned, and
// keeps Addr from returning it: a proxy's listener chosen by Addr cannot
// collide with a backend's.
func (e *Env) listen() (net.Listener, error) {
	for range 10 {
		a, err := e.Addr()
		if err != nil {
			return nil, err
		}
		l, err := net.Listen("tcp", a)
		if err == nil {
			return l, nil
		}
	}
	return nil, errors.New("listening on loopback: every port Addr offered was taken")
}

// Require ends the check unsupported when the target lacks one of the
// capabilities (by the adapters' Capabilities names).
func (e *Env) Require(capabilities ...string) error {
	for _, c := range capabilities {
		if r, ok := e.target.Lacks(c); ok {
			return Unsupported("%s", r)
		}
	}
	return nil
}

// StartProxy starts the target with configuration c (defaults applied
// here) for the downstream traffic (peers.TrafficHTTP1, TrafficH2C,
// TrafficGRPC; HTTP/1.1 when none), waits until it is ready and stops it
// when the check ends. An admin address is chosen when c has none. It
// returns an Unsupported error when the target's adapter cannot translate
// c, and a config-only one on a config-only target.
func (e *Env) StartProxy(c *config.Config, traffic ...string) (*Proxy, error) {
	c = clone(c)
	if e.sabotage != nil && e.sabotage.Config != nil {
		e.sabotage.Config(c)
	}
	if c.Admin == "" {
		a, err := e.Addr()
		if err != nil {
			return nil, err
		}
		c.Admin = a
	}
	if len(traffic) == 0 {
		traffic = []string{peers.TrafficHTTP1}
	}
	full, err := c.WithDefaults()
	if err != nil {
		return nil, fmt.Errorf("the check's proxy configuration: %w", err)
	}
	dir, err := e.Dir()
	if err != nil {
		return nil, err
	}
	sockets, err := os.MkdirTemp("", "mbconf-")
	if err != nil {
		return nil, fmt.Errorf("creating a socket directory: %w", err)
	}
	e.Cleanup(func() { os.RemoveAll(sockets) })
	p, err := e.target.start(e.ctx, full, traffic, dir, sockets)
	if err != nil {
		return nil, err
	}
	e.Cleanup(p.Stop)
	return p, nil
}

// clone deep-copies a configuration through its JSON form, so that a
// sabotage or the defaults never edit the check's own value.
func clone(c *config.Config) *config.Config {
	b, err := c.JSON()
	if err != nil {
		panic(fmt.Sprintf("conformance: configuration does not encode: %v", err))
	}
	var out config.Config
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("conformance: configuration does not decode: %v", err))
	}
	return &out
}

// Problems joins what a check found wrong into one failure, or nil when
// it found nothing.
func Problems(problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%s", strings.Join(slices.Compact(problems), "; "))
}

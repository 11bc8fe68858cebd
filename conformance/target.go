package conformance

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"time"

	"github.com/meshbench/meshbench/peers"
)

// NameReference is the reference proxy's name as a target.
const NameReference = "reference"

// Target is a proxy the checks run against.
type Target struct {
	// Name is "reference" or a peer's name.
	Name string
	// Adapter is the peer's adapter; nil for the reference proxy.
	Adapter peers.Adapter
	// Binary is the proxy's executable; "" for a config-only target.
	Binary string
	// Version is what the binary says of itself.
	Version string
	// ConfigOnly is set when the proxy cannot be run here (no binary):
	// checks render its configuration and end config-only.
	ConfigOnly bool
	// starter replaces the process start of a deliberately broken target
	// (tests of the checks only).
	starter starter
}

// Capabilities are the target's: the adapter's, or, for the reference
// proxy, none missing.
func (t *Target) Capabilities() peers.Capabilities {
	if t.Adapter == nil {
		return peers.Capabilities{Metrics: "Prometheus at /metrics on the admin address"}
	}
	return t.Adapter.Capabilities()
}

// Lacks returns the adapter's reason when the target lacks capability.
func (t *Target) Lacks(capability string) (string, bool) {
	r, ok := t.Capabilities().Missing[capability]
	return r, ok
}

// Reference returns the reference proxy as a target; meshproxy is its
// binary, whose build information gives the version.
func Reference(meshproxy string) (*Target, error) {
	bi, err := buildinfo.ReadFile(meshproxy)
	if err != nil {
		return nil, fmt.Errorf("reading the build information of %s: %w", meshproxy, err)
	}
	v := "meshproxy " + bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return &Target{Name: NameReference, Binary: meshproxy, Version: v + ", " + bi.GoVersion}, nil
}

// Peer returns a peer as a target: its binary from PATH and its version,
// or, when the binary is missing, an error naming the package (and
// config-only for a peer no package provides, such as Envoy here).
func Peer(ctx context.Context, a peers.Adapter) (*Target, error) {
	bin, err := peers.Find(a)
	if err != nil {
		if a.Package() == "" {
			return &Target{Name: a.Name(), Adapter: a, ConfigOnly: true, Version: "not installed (configuration-level checks only)"}, nil
		}
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := a.Version(ctx, bin)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.Name(), err)
	}
	return &Target{Name: a.Name(), Adapter: a, Binary: bin, Version: v}, nil
}

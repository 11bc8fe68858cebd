package local

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/platform"
)

// proxyBinary returns the binary the plan's proxies run and, for a peer,
// its adapter. A peer whose binary is missing is an error naming the
// package to install; Envoy, which no package provides here, is not
// applicable instead, so that its cells say plainly it was not run.
func (p *Platform) proxyBinary(ctx context.Context, impl string) (string, peers.Adapter, error) {
	if impl == "" || impl == scenarios.None {
		return p.opts.Meshproxy, nil, nil
	}
	if build, ok := scenarios.ReferenceBuild(impl); ok {
		if build == "" {
			return p.opts.Meshproxy, nil, nil
		}
		bin, ok := p.opts.Builds[build]
		if !ok {
			return "", nil, fmt.Errorf("deploying: proxy %s: no binary for build %q (meshbench run --proxy-binary %s=PATH)", impl, build, build)
		}
		return bin, nil, nil
	}
	a, ok := peers.Lookup(impl)
	if !ok {
		return "", nil, fmt.Errorf("deploying: proxy %q: not a peer (known: %v)", impl, peers.Names())
	}
	bin, err := peers.Find(a)
	if err != nil {
		if a.Package() == "" {
			return "", nil, &peers.NotApplicable{Peer: a.Name(), Reason: "not run: no " + a.Binary() + " binary on PATH (no package provides it on this machine)"}
		}
		return "", nil, fmt.Errorf("deploying: %w", err)
	}
	if _, ok := p.peerVers[impl]; !ok {
		v, err := a.Version(ctx, bin)
		if err != nil {
			return "", nil, fmt.Errorf("deploying: %w", err)
		}
		if p.peerVers == nil {
			p.peerVers = map[string]string{}
		}
		p.peerVers[impl] = v
	}
	return bin, a, nil
}

// renderPeer renders one proxy of the plan for a peer and writes its
// files into dir/proxies/<name>; its internal sockets go to sockets.
func renderPeer(a peers.Adapter, plan *scenarios.Plan, name, dir, sockets string, c *config.Config) (*peers.Instance, error) {
	own := filepath.Join(dir, "proxies", name)
	inst, err := peers.Render(a, c, peers.Options{Name: name, Dir: own, SocketDir: sockets, User: workerUser(), Traffic: plan.Load.Protocols(), Workers: platform.ProxyWorkers})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(own, 0o755); err != nil {
		return nil, fmt.Errorf("writing the %s configuration: %w", a.Name(), err)
	}
	for _, f := range inst.Files {
		if err := os.WriteFile(filepath.Join(own, f.Path), f.Data, 0o644); err != nil {
			return nil, fmt.Errorf("writing the %s configuration: %w", a.Name(), err)
		}
	}
	return inst, nil
}

// workerUser is the user peers' workers keep: the platform's own, when it
// runs as root (nginx would switch its workers to nobody, who cannot reach
// the master's internal sockets).
func workerUser() string {
	if os.Geteuid() != 0 {
		return ""
	}
	return "root"
}

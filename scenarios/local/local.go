package local

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/platform"
)

// Defaults of Options.
const (
	DefaultSampleInterval = 200 * time.Millisecond
	DefaultReadyTimeout   = 10 * time.Second
	DefaultStopGrace      = 3 * time.Second
)

// Options configure the local platform.
type Options struct {
	// Meshbench and Meshproxy are the paths of the two binaries: backends
	// and the load generator are `meshbench backend` and `meshbench load`.
	Meshbench, Meshproxy string
	// Builds are further meshproxy binaries by build name: the cells of
	// proxy reference@NAME run Builds[NAME] (an A/B run of two builds).
	Builds map[string]string
	// Log receives the platform's progress; nil discards it.
	Log *slog.Logger
	// SampleInterval is how often each proxy's CPU and memory are read
	// from /proc during the measured part. Default 200ms.
	SampleInterval time.Duration
	// ReadyTimeout bounds how long Deploy waits for every process to be
	// ready. Default 10s.
	ReadyTimeout time.Duration
	// StopGrace is how long Teardown waits after SIGTERM before it sends
	// SIGKILL. Default 3s.
	StopGrace time.Duration
	// NetworkBase is the first two octets of the plans' loopback
	// addresses (see Loopback); empty means DefaultNetworkBase.
	NetworkBase string
}

// Platform runs plans as local processes. It holds one deployment at a
// time: Deploy, Run, Resources, Teardown, then the next Deploy. Its methods
// must not be called concurrently.
type Platform struct {
	opts   Options
	log    *slog.Logger
	client *http.Client

	mu    sync.Mutex // guards procs against Teardown from another goroutine
	procs []*process

	plan      *scenarios.Plan
	addrs     *Addresses                 // of the plan
	configs   map[string]*config.Config  // the proxies' rendered configurations, by name
	instances map[string]*peers.Instance // a peer's rendered instances, by proxy name
	peerVers  map[string]string          // versions of the peers deployed so far, by peer
	tempDirs  []string                   // removed at teardown
	nodes     int                        // of the last plan deployed
	dir       string
	backends  map[string]*process // by pod name
	proxies   map[string]*process // by proxy name
	last      *measurement        // of the last Run
}

var _ platform.Platform = (*Platform)(nil)

// New returns a local platform.
func New(o Options) *Platform {
	if o.SampleInterval <= 0 {
		o.SampleInterval = DefaultSampleInterval
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Platform{
		opts: o,
		log:  log,
		client: &http.Client{
			Timeout: 5 * time.Second,
			// Fresh connections each time: the platform's own requests
			// must not keep connections open to the processes under test.
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		},
	}
}

// Name is "local".
func (p *Platform) Name() string { return "local" }

// Facts records the node count of the last plan, the network base, the
// kernel and the cores every process shares.
func (p *Platform) Facts() map[string]any {
	f := map[string]any{
		"platform":     "local",
		"cores":        runtime.NumCPU(),
		"kernel":       kernel(),
		"network_base": cmp.Or(p.opts.NetworkBase, DefaultNetworkBase),
	}
	if p.nodes > 0 {
		f["nodes"] = p.nodes
	}
	if len(p.peerVers) > 0 {
		f["peers"] = p.peerVers
	}
	f["proxy_workers"] = platform.ProxyWorkers
	return f
}

// kernel returns the kernel's name and release, e.g. "Linux 6.1.0".
func kernel() string {
	read := func(f string) string {
		b, err := os.ReadFile(f)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	return strings.TrimSpace(read("/proc/sys/kernel/ostype") + " " + read("/proc/sys/kernel/osrelease"))
}

// listenAddrs returns every address the plan's processes will listen on,
// each with who listens there.
func (p *Platform) listenAddrs(plan *scenarios.Plan) ([]string, map[string]string, error) {
	var addrs []string
	owner := map[string]string{}
	add := func(addr, who string) error {
		if addr == "" {
			return nil
		}
		if o, ok := owner[addr]; ok {
			return fmt.Errorf("plan: %s and %s both listen on %s", o, who, addr)
		}
		owner[addr] = who
		addrs = append(addrs, addr)
		return nil
	}
	for _, pod := range plan.Pods {
		if pod.Backend == nil {
			continue
		}
		if err := add(platform.HostPort(p.addrs.Pod(pod.Name), scenarios.PortHTTP), pod.Name); err != nil {
			return nil, nil, err
		}
		if err := add(platform.HostPort(p.addrs.Pod(pod.Name), scenarios.PortGRPC), pod.Name); err != nil {
			return nil, nil, err
		}
	}
	for _, px := range plan.Proxies {
		c := p.configs[px.Name]
		if err := add(c.Admin, px.Name); err != nil {
			return nil, nil, err
		}
		for _, l := range c.Listeners {
			if err := add(l.Address, px.Name+" listener "+l.Name); err != nil {
				return nil, nil, err
			}
		}
	}
	return addrs, owner, nil
}

// checkFree tries to listen on every address, so that a port another run
// holds fails Deploy with its name instead of a process dying later.
func checkFree(addrs []string, owner map[string]string) error {
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%s (for %s) is already in use: another run on the same network base?", a, owner[a])
			}
			return fmt.Errorf("checking %s (for %s) is free: %w", a, owner[a], err)
		}
		l.Close()
	}
	return nil
}

// Deploy places the plan's pods and nodes on loopback addresses (see
// Loopback), issues the plan's certificates into dir/certs when it has
// identities (mTLS), renders every proxy's configuration into dir/proxies,
// checks that every address the plan listens on is free, starts the
// backends and the proxies (in dir, so that the configurations' relative
// certificate paths resolve), and waits until all of them answer. On
// error, whatever it started is stopped again.
func (p *Platform) Deploy(ctx context.Context, plan *scenarios.Plan, dir string) (err error) {
	if p.plan != nil {
		return errors.New("deploying: a plan is already deployed; tear it down first")
	}
	// The proxies run in dir: every path handed to them must be absolute.
	dir, err = filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	p.plan, p.dir, p.nodes = plan, dir, len(plan.Nodes)
	p.backends, p.proxies, p.last = map[string]*process{}, map[string]*process{}, nil
	p.configs = map[string]*config.Config{}
	defer func() {
		if err != nil {
			if terr := p.Teardown(context.WithoutCancel(ctx)); terr != nil {
				p.log.Warn("teardown after failed deploy", "err", terr)
			}
		}
	}()
	bin, adapter, err := p.proxyBinary(ctx, plan.ProxyImpl)
	if err != nil {
		return err
	}
	if p.addrs, err = (Loopback{Base: p.opts.NetworkBase}).Addresses(plan); err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	for _, px := range plan.Proxies {
		if px.Config == nil {
			return fmt.Errorf("deploying: plan: proxy %s has no configuration", px.Name)
		}
		c, err := scenarios.RenderConfig(px.Config, p.addrs)
		if err != nil {
			return fmt.Errorf("deploying proxy %s: %w", px.Name, err)
		}
		p.configs[px.Name] = c
	}
	addrs, owner, err := p.listenAddrs(plan)
	if err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	if err := platform.WriteCertificates(plan, dir, 0); err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	args := map[string][]string{}
	p.instances = map[string]*peers.Instance{}
	for _, px := range plan.Proxies {
		if adapter != nil {
			sockets, err := os.MkdirTemp("", "meshbench-"+px.Name+"-")
			if err != nil {
				return fmt.Errorf("deploying proxy %s: %w", px.Name, err)
			}
			p.tempDirs = append(p.tempDirs, sockets)
			inst, err := renderPeer(adapter, plan, px.Name, dir, sockets, p.configs[px.Name])
			if err != nil {
				return fmt.Errorf("deploying proxy %s: %w", px.Name, err)
			}
			p.instances[px.Name] = inst
			args[px.Name] = inst.Args
			continue
		}
		f := filepath.Join(dir, "proxies", px.Name+".yaml")
		if err := writeProxyConfig(ctx, bin, dir, f, p.configs[px.Name]); err != nil {
			return fmt.Errorf("deploying proxy %s: %w", px.Name, err)
		}
		args[px.Name] = []string{"--config", f}
	}
	if err := checkFree(addrs, owner); err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	logs := filepath.Join(dir, "logs")
	for _, pod := range plan.Pods {
		if pod.Backend == nil {
			continue
		}
		b := pod.Backend
		latency := b.Latency
		if latency == "" {
			latency = "none"
		}
		host := p.addrs.Pod(pod.Name)
		bargs := platform.BackendArgs(&pod, platform.HostPort(host, scenarios.PortHTTP), platform.HostPort(host, scenarios.PortGRPC))
		proc, err := p.start(pod.Name, filepath.Join(logs, pod.Name+".log"), "", nil, p.opts.Meshbench, bargs...)
		if err != nil {
			return fmt.Errorf("deploying: %w", err)
		}
		p.backends[pod.Name] = proc
	}
	for _, px := range plan.Proxies {
		// Every proxy gets one worker, whatever it is: GOMAXPROCS=1 for
		// the Go proxies, one worker process or thread for the others.
		proc, err := p.start(px.Name, filepath.Join(logs, px.Name+".log"), dir, []string{"GOMAXPROCS=" + strconv.Itoa(platform.ProxyWorkers)}, bin, args[px.Name]...)
		if err != nil {
			return fmt.Errorf("deploying: %w", err)
		}
		p.proxies[px.Name] = proc
	}
	p.log.Debug("started", "backends", len(p.backends), "proxies", len(p.proxies))
	return p.waitReady(ctx)
}

// start starts a process of the deployment in the working directory wd
// (empty: the current one); a relative binary path is taken from the
// current directory, not from wd.
func (p *Platform) start(name, logPath, wd string, env []string, bin string, args ...string) (*process, error) {
	if wd != "" && !filepath.IsAbs(bin) && strings.ContainsRune(bin, filepath.Separator) {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return nil, fmt.Errorf("starting %s: %w", name, err)
		}
		bin = abs
	}
	proc, err := startProcess(name, logPath, wd, env, bin, args...)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.procs = append(p.procs, proc)
	p.mu.Unlock()
	p.log.Debug("process started", "name", name, "pid", proc.pid())
	return proc, nil
}

// waitReady polls every backend's admin endpoint and every proxy's /ready
// until all answer 200, a process exits, or the ready timeout passes.
func (p *Platform) waitReady(ctx context.Context) error {
	type check struct {
		proc *process
		url  string
	}
	var pending []check
	for _, pod := range p.plan.Pods {
		if proc := p.backends[pod.Name]; proc != nil {
			pending = append(pending, check{proc, "http://" + platform.HostPort(p.addrs.Pod(pod.Name), scenarios.PortHTTP) + "/_backend/config"})
		}
	}
	for _, px := range p.plan.Proxies {
		admin := p.configs[px.Name].Admin
		if admin == "" {
			return fmt.Errorf("deploying proxy %s: it has no admin address to check readiness on", px.Name)
		}
		url := "http://" + admin + "/ready"
		if inst := p.instances[px.Name]; inst != nil {
			url = inst.Ready
		}
		pending = append(pending, check{p.proxies[px.Name], url})
	}
	deadline := time.Now().Add(p.opts.ReadyTimeout)
	for {
		var still []check
		for _, c := range pending {
			if c.proc.exited() {
				return fmt.Errorf("deploying: %w", c.proc.exitError())
			}
			if !p.answers(ctx, c.url) {
				still = append(still, c)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("deploying: %s not ready after %v (%s); last lines of %s:\n%s",
				pending[0].proc.name, p.opts.ReadyTimeout, pending[0].url, pending[0].proc.log, tail(pending[0].proc.log, 20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deploying: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// answers reports whether GET url answers 200.
func (p *Platform) answers(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Teardown stops every process Deploy and Run started: SIGTERM to each
// process group, SIGKILL to the groups still there after the grace period,
// and waits until each process is reaped. It is safe to call more than
// once, and from another goroutine than Run's.
func (p *Platform) Teardown(ctx context.Context) error {
	p.mu.Lock()
	procs := p.procs
	p.procs = nil
	p.mu.Unlock()
	if len(procs) > 0 {
		p.log.Debug("stopping", "processes", len(procs))
		stopAll(ctx, procs, p.opts.StopGrace)
	}
	for _, d := range p.tempDirs {
		if err := os.RemoveAll(d); err != nil {
			p.log.Warn("removing a temporary directory", "dir", d, "err", err)
		}
	}
	p.tempDirs = nil
	p.plan = nil
	p.backends, p.proxies, p.instances = nil, nil, nil
	return nil
}

// pids returns the process ids of the processes running now.
func (p *Platform) pids() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for _, proc := range p.procs {
		out = append(out, proc.pid())
	}
	return out
}

// Resources returns what the last Run measured: each proxy's CPU and memory
// over the measured part, and each proxy's /metrics increase over it.
func (p *Platform) Resources(ctx context.Context) (result.Resources, []result.ProxyMetrics, error) {
	m := p.last
	if m == nil {
		return result.Resources{}, nil, errors.New("resources: no run measured")
	}
	samples := make([]platform.ProxySample, len(m.proxies))
	for i, px := range m.proxies {
		samples[i] = platform.ProxySample{Name: px.name, Kind: px.kind, Node: px.node, Usage: px.usage(m.requests),
			SampleErr: px.sampleErr, ScrapeErr: px.scrapeErr, Start: px.start, End: px.end, NoMetrics: px.admin == ""}
	}
	return platform.Summarize(p.opts.SampleInterval, m.requests, samples)
}

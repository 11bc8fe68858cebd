package scenarios

import (
	"github.com/meshbench/meshbench/internal/names"

	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/meshbench/meshbench/backends"
	"github.com/meshbench/meshbench/internal/yamlstrict"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/balancer"
)

// Limits of the addressing scheme (see Network).
const (
	// MaxNodes is the most nodes a scenario may have.
	MaxNodes = 253
	// MaxPodsPerNode is the most pods (the client's included) on one node.
	MaxPodsPerNode = 245
	// MaxStreams bounds load.streams: the proxies' listeners accept 1000
	// concurrent streams per connection.
	MaxStreams = 1000
	// MaxGenerators bounds load.generators.
	MaxGenerators = 16
)

// Topologies returns every topology, in the order the documentation
// presents them.
func Topologies() []string {
	return []string{Baseline, Sidecar, DaemonSet, ClientSidecar, ServerSidecar}
}

// Protocols returns the load protocols a scenario may use.
func Protocols() []string { return []string{ProtoHTTP1, ProtoH2C, ProtoGRPC} }

// Proxies returns the proxy implementations a scenario may use: the
// reference proxy and the peers.
func Proxies() []string { return append([]string{ProxyReference}, peers.Names()...) }

// validator collects every problem of a scenario, each with the file, the
// line and the field path.
type validator struct {
	file string
	pos  yamlstrict.Positions
	errs yamlstrict.Errors
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, v.pos.Errorf(v.file, path, format, args...))
}

func (v *validator) scenario(s *Scenario, order []string) {
	if !names.Safe(s.Name) {
		v.fail("name", "%q: use lower-case letters, digits, '-' and '_', starting with a letter or digit", s.Name)
	}
	if s.Repeats < 1 {
		v.fail("repeats", "%d: must be at least 1", s.Repeats)
	}
	if s.Nodes < 1 || s.Nodes > MaxNodes {
		v.fail("nodes", "%d: must be 1 to %d", s.Nodes, MaxNodes)
	}
	v.services(s)
	v.degradations(s)
	v.load(s)
	v.quick(s)
	v.matrix(s, order)
	v.proxyConfig(s.ProxyConfig)
	v.kubernetes(s.Kubernetes)
	if len(v.errs) == 0 {
		v.expansion(s)
	}
}

func (v *validator) services(s *Scenario) {
	if len(s.Services) == 0 {
		v.fail("services", "at least one service is required")
	}
	seen := map[string]bool{}
	perNode := make([]int, min(max(s.Nodes, 0), MaxNodes))
	for i, svc := range s.Services {
		p := fmt.Sprintf("services[%d]", i)
		switch {
		case !names.DNSLabel(svc.Name):
			v.fail(p+".name", "%q: a DNS label is required (lower-case letters, digits and '-')", svc.Name)
		case svc.Name == "client":
			v.fail(p+".name", "%q: reserved for the load generator's pod", svc.Name)
		case seen[svc.Name]:
			v.fail(p+".name", "%q: service name used twice", svc.Name)
		}
		seen[svc.Name] = true
		if svc.Replicas < 1 {
			v.fail(p+".replicas", "%d: must be at least 1", svc.Replicas)
		}
		v.backend(p+".backend", svc.Backend)
		for _, k := range slices.Sorted(maps.Keys(svc.ReplicaOverrides)) {
			op := p + ".replica_overrides." + k
			if r, err := strconv.Atoi(k); err != nil || r < 0 || r >= svc.Replicas {
				v.fail(op, "not a replica index (0 to %d)", svc.Replicas-1)
			}
			v.backend(op, svc.ReplicaOverrides[k])
		}
		placed := len(perNode) > 0
		for j, n := range svc.Nodes {
			if n < 0 || n >= s.Nodes {
				v.fail(fmt.Sprintf("%s.nodes[%d]", p, j), "%d: no such node (nodes are 0 to %d)", n, s.Nodes-1)
				placed = false
			}
		}
		if placed {
			for r := range svc.Replicas {
				perNode[svc.nodeOf(r, s.Nodes)]++
			}
		}
	}
	for n, c := range perNode {
		if c+1 > MaxPodsPerNode {
			v.fail("services", "node %d has %d pods with the client's; at most %d fit a node", n, c+1, MaxPodsPerNode)
		}
	}
}

// backend checks the fields of a backend spec that are set.
func (v *validator) backend(p string, b BackendSpec) {
	if b.Latency != "" {
		if _, err := backends.ParseLatency(b.Latency); err != nil {
			v.fail(p+".latency", "%q: %v", b.Latency, err)
		}
	}
	if !(b.ErrorRate >= 0 && b.ErrorRate <= 1) {
		v.fail(p+".error_rate", "%v: must be in [0, 1]", b.ErrorRate)
	}
	if b.ResponseSize < 0 || b.ResponseSize > backends.MaxResponseSize {
		v.fail(p+".response_size", "%d: must be 0 to %d bytes", b.ResponseSize, backends.MaxResponseSize)
	}
	if b.Concurrency < 0 {
		v.fail(p+".concurrency", "%d: must be 0 (unlimited) or more", b.Concurrency)
	}
}

func (v *validator) degradations(s *Scenario) {
	for _, name := range slices.Sorted(maps.Keys(s.Degradations)) {
		p := "degradations." + name
		switch {
		case name == None:
			v.fail(p, "%q is built in (no change) and cannot be redefined", None)
		case !names.Safe(name):
			v.fail(p, "%q: use lower-case letters, digits, '-' and '_'", name)
		}
		events := s.Degradations[name]
		if len(events) == 0 {
			v.fail(p, "at least one change is required")
		}
		for i, ev := range events {
			ep := fmt.Sprintf("%s[%d]", p, i)
			svc := s.service(ev.Service)
			if svc == nil {
				v.fail(ep+".service", "%q: no service has this name", ev.Service)
			} else if ev.Replica != nil && (*ev.Replica < 0 || *ev.Replica >= svc.Replicas) {
				v.fail(ep+".replica", "%d: %s has replicas 0 to %d", *ev.Replica, svc.Name, svc.Replicas-1)
			}
			if ev.At < 0 {
				v.fail(ep+".at", "must not be negative")
			} else if ev.At >= s.Load.Duration {
				v.fail(ep+".at", "%v: must be within load.duration (%v)", ev.At, s.Load.Duration)
			}
			if ev.Backend == (BackendSpec{}) {
				v.fail(ep+".backend", "nothing changes: set latency, concurrency, error_rate or response_size")
			}
			v.backend(ep+".backend", ev.Backend)
		}
	}
}

func (v *validator) load(s *Scenario) {
	l := s.Load
	if l.Service == "" {
		v.fail("load.service", "required when there are several services")
	} else if s.service(l.Service) == nil {
		v.fail("load.service", "%q: no service has this name", l.Service)
	}
	if l.ClientNode < 0 || l.ClientNode >= s.Nodes {
		v.fail("load.client_node", "%d: no such node (nodes are 0 to %d)", l.ClientNode, s.Nodes-1)
	}
	if !slices.Contains(Protocols(), l.Protocol) {
		v.fail("load.protocol", "%q: must be one of %s", l.Protocol, strings.Join(Protocols(), ", "))
	}
	if rs := l.RateSpec; rs != nil {
		switch {
		case rs.Rates != nil && l.Rates != nil:
			v.fail("load.rates", "load.rate already lists the rates of a sweep: give one of them")
		case rs.Rates != nil:
			l.Rates = rs.Rates
		case rs.Search != nil && l.Rates != nil:
			v.fail("load.rates", "a search and a sweep are exclusive")
		case rs.Search != nil:
			l.Search = rs.Search
		default:
			l.Rate = rs.Rate
		}
		s.Load = l
	}
	ownRates := slices.ContainsFunc(l.Mix, func(st StreamSettings) bool { return st.Rate > 0 })
	switch {
	case l.Rates != nil && l.Rate != 0:
		v.fail("load.rates", "rate and rates are exclusive")
	case l.Rates != nil:
		v.rates("load.rates", l.Rates)
	case l.Search != nil, ownRates:
	case l.Rate == 0:
		v.fail("load.rate", "required (requests/s), a list of rates for a sweep, or {search: {...}}")
	case !(l.Rate > 0):
		v.fail("load.rate", "must be > 0")
	}
	v.mixLoad(s)
	switch {
	case l.Generators < 1 || l.Generators > MaxGenerators:
		v.fail("load.generators", "%d: must be 1 to %d", l.Generators, MaxGenerators)
	case l.Generators > 1 && l.Search != nil:
		v.fail("load.generators", "a rate search runs in one generator: its probes cannot be shared")
	case l.Generators > 1 && slices.Contains(s.Matrix.MTLS, MTLSOn) && slices.Contains(s.Matrix.Topology, DaemonSet):
		v.fail("load.generators", "with mTLS on, only the client's node proxy is a client in daemonset cells: several generators need mtls off")
	}
	if l.NewConnectionPerRequest {
		protocols := []string{l.Protocol}
		if len(l.Mix) > 0 {
			protocols = nil
			for _, st := range l.Mix {
				protocols = append(protocols, st.Protocol)
			}
		}
		for _, pr := range append(protocols, s.Matrix.Protocol...) {
			if pr != ProtoHTTP1 {
				v.fail("load.new_connection_per_request", "HTTP/1.1 only: %s multiplexes its requests on a connection", pr)
				break
			}
		}
	}
	if l.Connections < 1 {
		v.fail("load.connections", "%d: must be at least 1", l.Connections)
	}
	if l.Streams < 1 || l.Streams > MaxStreams {
		v.fail("load.streams", "%d: must be 1 to %d", l.Streams, MaxStreams)
	}
	if l.Duration < 0 {
		v.fail("load.duration", "must be > 0")
	}
	if l.Warmup < 0 {
		v.fail("load.warmup", "must not be negative")
	}
	if l.Timeout < 0 {
		v.fail("load.timeout", "must be > 0")
	}
}

func (v *validator) rates(p string, rs []float64) {
	if len(rs) == 0 {
		v.fail(p, "at least one rate is required")
	}
	for i, r := range rs {
		if !(r > 0) {
			v.fail(fmt.Sprintf("%s[%d]", p, i), "must be > 0")
		} else if slices.Index(rs, r) < i {
			v.fail(fmt.Sprintf("%s[%d]", p, i), "%v: rate listed twice", r)
		}
	}
}

func (v *validator) quick(s *Scenario) {
	q := s.Quick
	if q.Service != "" && s.service(q.Service) == nil {
		v.fail("quick.service", "%q: no service has this name", q.Service)
	}
	if q.ClientNode != nil && (*q.ClientNode < 0 || *q.ClientNode >= s.Nodes) {
		v.fail("quick.client_node", "%d: no such node (nodes are 0 to %d)", *q.ClientNode, s.Nodes-1)
	}
	if q.Protocol != "" && !slices.Contains(Protocols(), q.Protocol) {
		v.fail("quick.protocol", "%q: must be one of %s", q.Protocol, strings.Join(Protocols(), ", "))
	}
	sweep := s.Load.Rates != nil
	if q.Rate != nil {
		switch {
		case q.Rate.Rates != nil:
			v.fail("quick.rate", "a quick run's sweep is quick.rates")
		case sweep:
			v.fail("quick.rate", "the load sweeps rates: set quick.rates instead")
		case q.Rate.Search == nil && !(q.Rate.Rate > 0):
			v.fail("quick.rate", "must be > 0")
		}
	}
	if q.Rates != nil {
		if !sweep {
			v.fail("quick.rates", "the load has one rate: set quick.rate instead")
		} else {
			v.rates("quick.rates", q.Rates)
		}
	}
	if q.Connections != nil && *q.Connections < 1 {
		v.fail("quick.connections", "%d: must be at least 1", *q.Connections)
	}
	if q.Streams != nil && (*q.Streams < 1 || *q.Streams > MaxStreams) {
		v.fail("quick.streams", "%d: must be 1 to %d", *q.Streams, MaxStreams)
	}
	if q.Duration != nil && *q.Duration <= 0 {
		v.fail("quick.duration", "must be > 0")
	}
	if q.Warmup != nil && *q.Warmup < 0 {
		v.fail("quick.warmup", "must not be negative")
	}
	if q.Timeout != nil && *q.Timeout <= 0 {
		v.fail("quick.timeout", "must be > 0")
	}
	if q.Repeats != nil && *q.Repeats < 1 {
		v.fail("quick.repeats", "%d: must be at least 1", *q.Repeats)
	}
}

// matrix checks the matrix block and records the run's dimensions.
func (v *validator) matrix(s *Scenario, order []string) {
	lists := map[string][]string{
		DimTopology: s.Matrix.Topology, DimProxy: s.Matrix.Proxy, DimBalancer: s.Matrix.Balancer,
		DimProtocol: s.Matrix.Protocol, DimDegradation: s.Matrix.Degradation, DimMTLS: s.Matrix.MTLS,
		DimMix: s.Matrix.Mix,
	}
	s.dims = nil
	for _, name := range order {
		values := lists[name]
		p := "matrix." + name
		if len(values) == 0 {
			v.fail(p, "at least one value is required (leave the dimension out for its default)")
			continue
		}
		for i, val := range values {
			vp := fmt.Sprintf("%s[%d]", p, i)
			if slices.Index(values, val) < i {
				v.fail(vp, "%q: value listed twice", val)
				continue
			}
			v.dimValue(s, name, val, vp, false)
		}
		s.dims = append(s.dims, dimension{name: name, values: slices.Clone(values)})
	}
	if s.Load.Rates != nil {
		s.dims = append(s.dims, dimension{name: DimRate, values: rateLabels(s.Load.Rates)})
	}
	names := s.Dimensions()
	for _, kind := range []string{"include", "exclude"} {
		rules := s.Matrix.Include
		if kind == "exclude" {
			rules = s.Matrix.Exclude
		}
		for i, rule := range rules {
			p := fmt.Sprintf("matrix.%s[%d]", kind, i)
			if len(rule) == 0 {
				v.fail(p, "empty: name at least one dimension")
			}
			for _, k := range slices.Sorted(maps.Keys(rule)) {
				kp := p + "." + k
				if !slices.Contains(names, k) {
					v.fail(kp, "unknown key: not a dimension of this matrix (dimensions: %s)", strings.Join(names, ", "))
					continue
				}
				v.dimValue(s, k, rule[k], kp, kind == "exclude")
			}
		}
	}
}

// dimValue checks one value of a dimension. In an exclude rule, "none" is
// also a proxy and balancer value (that of baseline cells).
func (v *validator) dimValue(s *Scenario, dim, val, p string, exclude bool) {
	if exclude && val == None && (dim == DimProxy || dim == DimBalancer) {
		return
	}
	switch dim {
	case DimTopology:
		if !slices.Contains(Topologies(), val) {
			v.fail(p, "%q: unknown topology (known: %s)", val, strings.Join(Topologies(), ", "))
		}
	case DimProxy:
		if _, ref := ReferenceBuild(val); !ref && !slices.Contains(Proxies(), val) {
			v.fail(p, "%q: unknown proxy (known: %s, or reference%sBUILD for a build named at run time)", val, strings.Join(Proxies(), ", "), BuildSep)
		}
	case DimBalancer:
		if !slices.Contains(balancer.Policies(), val) {
			v.fail(p, "%q: unknown balancer policy (known: %s)", val, strings.Join(balancer.Policies(), ", "))
		}
	case DimProtocol:
		if !slices.Contains(Protocols(), val) {
			v.fail(p, "%q: unknown protocol (known: %s)", val, strings.Join(Protocols(), ", "))
		}
	case DimDegradation:
		if _, ok := s.Degradations[val]; !ok && val != None {
			known := append([]string{None}, slices.Sorted(maps.Keys(s.Degradations))...)
			v.fail(p, "%q: no degradation has this name (known: %s)", val, strings.Join(known, ", "))
		}
	case DimMTLS:
		switch val {
		case MTLSOff, MTLSOn:
		default:
			v.fail(p, "%q: must be off or on", val)
		}
	case DimMix:
		if _, ok := s.Load.Shares[val]; !ok {
			v.fail(p, "%q: not one of load.shares (%s)", val, strings.Join(slices.Sorted(maps.Keys(s.Load.Shares)), ", "))
		}
	case DimRate:
		if r, err := parseRate(val); err != nil {
			v.fail(p, "%v", err)
		} else if !slices.Contains(s.Load.Rates, r) {
			v.fail(p, "%v: not one of load.rates", r)
		}
	}
}

// expansion expands the matrix of a normal and a quick run, and checks
// what only the variants show: an empty matrix, clashing IDs, and too few
// connections for a client without a proxy.
func (v *validator) expansion(s *Scenario) {
	for _, quick := range []bool{false, true} {
		vs, err := s.variants(quick)
		if err != nil {
			p := "matrix"
			if quick {
				p = "quick"
			}
			v.fail(p, "%v", err)
			return
		}
		l := s.effectiveLoad(quick)
		type need struct {
			path, service string
			connections   int
		}
		needs := []need{{"load.connections", l.Service, l.Connections}}
		if quick && s.Quick.Connections != nil {
			needs[0].path = "quick.connections"
		}
		if len(l.Mix) > 0 {
			needs = nil
			for i, st := range l.Mix {
				needs = append(needs, need{fmt.Sprintf("load.mix[%d].connections", i), st.Service, st.Connections})
			}
		}
	variants:
		for _, va := range vs {
			topo := s.setting(va.labels, DimTopology)
			if topo != Baseline && topo != ServerSidecar {
				continue
			}
			for _, n := range needs {
				if svc := s.service(n.service); n.connections < svc.Replicas {
					v.fail(n.path, "%d: topology %s spreads the connections over the %d pods of %s; at least %d are needed",
						n.connections, topo, svc.Replicas, svc.Name, svc.Replicas)
					break variants
				}
			}
		}
	}
}

// kubernetes checks the Kubernetes settings' quantities.
func (v *validator) kubernetes(k KubernetesSettings) {
	for _, c := range []struct {
		path string
		r    ContainerResources
	}{{"kubernetes.proxy_resources", k.ProxyResources}, {"kubernetes.app_resources", k.AppResources}} {
		for _, l := range []struct {
			path string
			list ResourceList
		}{{c.path + ".requests", c.r.Requests}, {c.path + ".limits", c.r.Limits}} {
			for _, q := range []struct{ path, value string }{{l.path + ".cpu", l.list.CPU}, {l.path + ".memory", l.list.Memory}} {
				if q.value == "" {
					continue
				}
				if _, err := resource.ParseQuantity(q.value); err != nil {
					v.fail(q.path, "%q: not a Kubernetes quantity (such as 250m, 1, 64Mi)", q.value)
				}
			}
		}
	}
}

// proxyConfig checks the resilience settings with the proxy
// configuration's own rules.
func (v *validator) proxyConfig(pc ProxyConfig) {
	var errs []error
	if pc.Retry != nil {
		errs = append(errs, pc.Retry.Validate("retry"))
	}
	if pc.OutlierDetection != nil {
		errs = append(errs, pc.OutlierDetection.Validate("outlier_detection"))
	}
	for _, err := range errs {
		var es yamlstrict.Errors
		switch {
		case errors.As(err, &es):
			for _, e := range es {
				v.fail("proxy_config."+e.Path, "%s", e.Msg)
			}
		case err != nil:
			v.fail("proxy_config", "%v", err)
		}
	}
}

package scenarios

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/reports/result"
)

// DefaultNetworkBase is the address block of a Network left empty.
const DefaultNetworkBase = "127.77"

// ClientPod is the name of the load generator's pod.
const ClientPod = "client-0"

// grpcContentType matches the content type of gRPC requests in a route's
// header condition (the match is anchored).
const grpcContentType = "application/grpc([+;].*)?"

// Network is the address space of a plan: node n (0-based) owns the block
// Base.(n+1).0/24; its node proxy listens on Base.(n+1).1 and its pods get
// Base.(n+1).10, .11, ... On Linux all of 127.0.0.0/8 is loopback, so the
// local platform uses the addresses as they are.
type Network struct {
	// Base is the first two octets, e.g. "127.77"; empty means
	// DefaultNetworkBase.
	Base string
}

// base returns the checked base.
func (n Network) base() (string, error) {
	b := cmp.Or(n.Base, DefaultNetworkBase)
	parts := strings.Split(b, ".")
	ok := len(parts) == 2
	for _, p := range parts {
		if v, err := strconv.Atoi(p); err != nil || v < 0 || v > 255 || strconv.Itoa(v) != p {
			ok = false
		}
	}
	if !ok {
		return "", fmt.Errorf("network base %q: want two octets such as %s", n.Base, DefaultNetworkBase)
	}
	return b, nil
}

// PlanOptions choose how a cell becomes a plan.
type PlanOptions struct {
	// Quick applies the scenario's quick overrides.
	Quick   bool
	Network Network
}

// cellSettings are a cell's choices: its labels, with defaults for the
// dimensions the run does not have, and the load.
type cellSettings struct {
	topology, proxy, balancer, protocol, degradation, mtls string
	load                                                   LoadSettings
}

// setting returns the value of dim for a variant's labels, or the value a
// run without that dimension uses.
func (s *Scenario) setting(labels map[string]string, dim string) string {
	if v, ok := labels[dim]; ok {
		return v
	}
	topo := labels[DimTopology]
	if topo == "" {
		topo = Sidecar
	}
	switch dim {
	case DimTopology:
		return topo
	case DimProxy:
		if topo == Baseline {
			return None
		}
		return ProxyReference
	case DimBalancer:
		if topo == Baseline {
			return None
		}
		return balancer.DefaultPolicy
	case DimProtocol:
		return s.Load.Protocol
	case DimDegradation:
		return None
	case DimMTLS:
		return MTLSOff
	}
	return ""
}

// resolve checks a cell's labels against the scenario and returns its
// settings.
func (s *Scenario) resolve(c result.Cell, quick bool) (cellSettings, error) {
	v := &validator{file: "cell " + cmp.Or(c.ID, c.Variant)}
	dims := s.Dimensions()
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		if !slices.Contains(dims, k) {
			v.fail(k, "not a dimension of scenario %s (dimensions: %s)", s.Name, strings.Join(dims, ", "))
		}
	}
	l := s.effectiveLoad(quick)
	for _, d := range dims {
		val, ok := c.Labels[d]
		switch {
		case !ok:
			v.fail(d, "label missing")
		case d == DimRate:
			r, err := parseRate(val)
			if err != nil {
				v.fail(d, "%v", err)
			}
			l.Rate = r
		default:
			v.dimValue(s, d, val, d, true)
		}
	}
	cs := cellSettings{
		topology:    s.setting(c.Labels, DimTopology),
		proxy:       s.setting(c.Labels, DimProxy),
		balancer:    s.setting(c.Labels, DimBalancer),
		protocol:    s.setting(c.Labels, DimProtocol),
		degradation: s.setting(c.Labels, DimDegradation),
		mtls:        s.setting(c.Labels, DimMTLS),
	}
	if cs.topology != Baseline && (cs.proxy == None || cs.balancer == None) {
		v.fail(DimTopology, "%s has proxies: its proxy and balancer cannot be none", cs.topology)
	}
	if cs.mtls == MTLSOn && !slices.Contains([]string{Sidecar, DaemonSet}, cs.topology) {
		v.fail(DimMTLS, "%s has no proxy on both ends of the path: mtls must be off", cs.topology)
	}
	l.Protocol = cs.protocol
	if l.Protocol == ProtoHTTP1 {
		l.Streams = 1 // one request at a time per HTTP/1.1 connection
	}
	cs.load = l
	if len(v.errs) > 0 {
		return cs, v.errs
	}
	return cs, nil
}

// Plan turns a cell into a platform-neutral plan: nodes, pods with their
// backends, proxies with their configurations, the load and the events.
func (s *Scenario) Plan(c result.Cell, o PlanOptions) (*Plan, error) {
	cs, err := s.resolve(c, o.Quick)
	if err != nil {
		return nil, fmt.Errorf("planning cell %s: %w", c.ID, err)
	}
	base, err := o.Network.base()
	if err != nil {
		return nil, fmt.Errorf("planning cell %s: %w", c.ID, err)
	}
	b := &planner{s: s, cs: cs, base: base}
	b.layout()
	b.backends(o.Quick)
	b.proxies()
	b.loadPlan()
	b.plan.Scenario = s.Name
	b.plan.Cell = c
	b.plan.Topology = cs.topology
	b.plan.ProxyImpl = cs.proxy
	b.plan.MTLS = cs.mtls
	b.plan.Kubernetes = s.Kubernetes
	if b.mtls() {
		b.plan.TrustDomain, b.plan.Namespace = TrustDomain, Namespace
		b.plan.Identities = append([]string{ClientService}, s.serviceNames()...)
	}
	return &b.plan, nil
}

// planner builds one plan.
type planner struct {
	s    *Scenario
	cs   cellSettings
	base string
	plan Plan
	// nodeOf holds the node index of each pod of plan.Pods.
	nodeOf []int
}

func (b *planner) nodeAddr(n int) string { return fmt.Sprintf("%s.%d.1", b.base, n+1) }

// mtls reports whether the cell's proxies speak mTLS to each other.
func (b *planner) mtls() bool { return b.cs.mtls == MTLSOn }

// serviceNames returns the names of the scenario's services in file order.
func (s *Scenario) serviceNames() []string {
	names := make([]string, len(s.Services))
	for i, svc := range s.Services {
		names[i] = svc.Name
	}
	return names
}

// layout places the nodes and the pods: the client first, then every
// service's replicas in file order; each node numbers its pods from .10 in
// that order.
func (b *planner) layout() {
	for n := range b.s.Nodes {
		b.plan.Nodes = append(b.plan.Nodes, Node{Name: nodeName(n), Addr: b.nodeAddr(n)})
	}
	next := make([]int, b.s.Nodes)
	place := func(p Pod, n int) {
		p.Node = nodeName(n)
		p.Addr = fmt.Sprintf("%s.%d.%d", b.base, n+1, 10+next[n])
		next[n]++
		b.plan.Pods = append(b.plan.Pods, p)
		b.nodeOf = append(b.nodeOf, n)
	}
	place(Pod{Name: ClientPod, Service: "client"}, b.cs.load.ClientNode)
	for _, svc := range b.s.Services {
		for r := range svc.Replicas {
			place(Pod{Name: podName(svc.Name, r), Service: svc.Name, Replica: r}, svc.nodeOf(r, b.s.Nodes))
		}
	}
}

// backends gives every server pod its backend at the start (the service's
// spec, the replica's override, the degradation's changes at 0) and turns
// the degradation's later changes into events, each carrying the whole
// backend spec from then on. Under --quick the changes' times scale with
// the duration.
func (b *planner) backends(quick bool) {
	state := map[string]BackendSpec{}
	for _, p := range b.plan.Pods {
		if svc := b.s.service(p.Service); svc != nil {
			state[p.Name] = svc.Backend.merge(svc.ReplicaOverrides[strconv.Itoa(p.Replica)])
		}
	}
	changes := slices.Clone(b.s.Degradations[b.cs.degradation])
	slices.SortStableFunc(changes, func(x, y Change) int { return cmp.Compare(x.At, y.At) })
	started := false
	start := func() {
		for i := range b.plan.Pods {
			if spec, ok := state[b.plan.Pods[i].Name]; ok {
				b.plan.Pods[i].Backend = &spec
			}
		}
		started = true
	}
	for _, ch := range changes {
		if ch.At > 0 && !started {
			start()
		}
		svc := b.s.service(ch.Service)
		for r := range svc.Replicas {
			if ch.Replica != nil && *ch.Replica != r {
				continue
			}
			pod := podName(svc.Name, r)
			state[pod] = state[pod].merge(ch.Backend)
			if ch.At > 0 {
				b.plan.Events = append(b.plan.Events, Event{At: b.eventTime(ch.At, quick), Pod: pod, Backend: state[pod]})
			} else {
				b.plan.Initial = append(b.plan.Initial, Event{Pod: pod, Backend: state[pod]})
			}
		}
	}
	if !started {
		start()
	}
}

// eventTime scales a change's offset to a quick run's duration.
func (b *planner) eventTime(at time.Duration, quick bool) time.Duration {
	full := b.s.Load.Duration
	if !quick || full <= 0 || b.cs.load.Duration == full {
		return at
	}
	scaled := time.Duration(float64(at) * float64(b.cs.load.Duration) / float64(full))
	return max(scaled.Round(time.Millisecond), time.Millisecond)
}

// merge returns b with the fields that o sets replaced.
func (b BackendSpec) merge(o BackendSpec) BackendSpec {
	if o.Latency != "" {
		b.Latency = o.Latency
	}
	if o.ErrorRate != 0 {
		b.ErrorRate = o.ErrorRate
	}
	if o.ResponseSize != 0 {
		b.ResponseSize = o.ResponseSize
	}
	if o.Concurrency != 0 {
		b.Concurrency = o.Concurrency
	}
	return b
}

// proxies adds the proxies of the cell's topology.
func (b *planner) proxies() {
	switch b.cs.topology {
	case Sidecar:
		b.clientSidecar(func(i int, _ int) string { return hostPort(b.plan.Pods[i].Addr, PortInbound) })
		b.serverSidecars()
	case ClientSidecar:
		b.clientSidecar(func(i int, appPort int) string { return hostPort(b.plan.Pods[i].Addr, appPort) })
	case ServerSidecar:
		b.serverSidecars()
	case DaemonSet:
		for n := range b.plan.Nodes {
			b.nodeProxy(n)
		}
	}
}

// clientSidecar adds the client pod's sidecar: an outbound listener that
// balances over the server pods at the addresses ep gives (pod index, app
// port).
func (b *planner) clientSidecar(ep func(pod, appPort int) string) {
	client := &b.plan.Pods[0]
	name := "sidecar-" + client.Name
	client.Sidecar = name
	l, clusters := b.outbound(client.Addr, ep, nil)
	if b.mtls() {
		for i := range clusters {
			b.secure(&clusters[i], ServiceID(b.clusterService(clusters[i].Name)), nil, client.Service, false)
		}
	}
	b.addProxy(Proxy{Name: name, Kind: KindSidecar, Node: client.Node, Pod: client.Name, Addr: client.Addr},
		[]config.Listener{l}, clusters)
}

// serverSidecars adds a sidecar to every server pod: an inbound listener
// that delivers gRPC to the app's gRPC port and everything else to its
// HTTP port.
func (b *planner) serverSidecars() {
	for i := range b.plan.Pods {
		p := &b.plan.Pods[i]
		if p.Backend == nil {
			continue
		}
		p.Sidecar = "sidecar-" + p.Name
		timeout := config.Duration(b.cs.load.Timeout)
		l := config.Listener{
			Name: "inbound", Address: hostPort(p.Addr, PortInbound), Direction: config.Inbound, Protocol: config.ProtoAuto,
			Routes: []config.Route{
				{Name: "local.grpc", Match: grpcMatch(""), Cluster: "local.grpc", Timeout: timeout},
				{Name: "local", Cluster: "local", Timeout: timeout},
			},
		}
		if b.mtls() {
			l.TLS, l.Authz = inboundTLS(p.Service)
		}
		clusters := []config.Cluster{
			b.localCluster("local", config.UpstreamSame, hostPort(p.Addr, PortHTTP)),
			b.localCluster("local.grpc", config.UpstreamH2C, hostPort(p.Addr, PortGRPC)),
		}
		b.addProxy(Proxy{Name: p.Sidecar, Kind: KindSidecar, Node: p.Node, Pod: p.Name, Addr: p.Addr},
			[]config.Listener{l}, clusters)
	}
}

// nodeProxy adds node n's proxy. Its outbound listener balances over every
// server pod's app ports; pods on other nodes are reached through their
// node's proxy (via), pods on this node directly. Its inbound listener
// delivers to the pods of its node, at the address the sending proxy chose
// (original_dst); a node without server pods has no inbound listener.
//
// With mTLS on, the hop between node proxies is mTLS: the outbound listener
// carries the client pod's traffic (source_service) and its clusters present
// the client's certificate; the inbound listener presents the certificate
// of the service its node serves (nodeService) and admits only the client.
// Only the client's node has an outbound listener then (no other pod is a
// client), unless a node would otherwise have no listener at all. Pods on
// the proxy's own node are delivered to directly, in cleartext, as without
// mTLS: the clusters' tls covers only the hops to other nodes' proxies
// (tls.gateways_only), since traffic that stays on a node never crosses
// the network.
func (b *planner) nodeProxy(n int) {
	node := b.plan.Nodes[n]
	gateway := func(i int) string {
		if b.nodeOf[i] == n {
			return ""
		}
		return hostPort(b.nodeAddr(b.nodeOf[i]), PortInbound)
	}
	out, clusters := b.outbound(node.Addr,
		func(i, appPort int) string { return hostPort(b.plan.Pods[i].Addr, appPort) }, gateway)
	var allowed []string
	for i, p := range b.plan.Pods {
		if p.Backend != nil && b.nodeOf[i] == n {
			allowed = append(allowed, hostPort(p.Addr, PortHTTP), hostPort(p.Addr, PortGRPC))
		}
	}
	var listeners []config.Listener
	switch {
	case !b.mtls():
		listeners = append(listeners, out)
	case b.nodeOf[0] == n:
		client := b.plan.Pods[0].Service
		out.SourceService = client
		for i := range clusters {
			if clusters[i].Via == nil {
				continue // every pod on this node: no hop to secure
			}
			svc := b.clusterService(clusters[i].Name)
			b.secure(&clusters[i], ServiceID(svc), b.gatewayIDs(svc), client, true)
			clusters[i].TLS.GatewaysOnly = true
		}
		listeners = append(listeners, out)
	case len(allowed) == 0:
		// Neither a client nor a server here: keep the listener so that
		// the proxy has one, without mTLS (it carries no traffic).
		listeners = append(listeners, out)
	default:
		clusters = nil
	}
	if len(allowed) > 0 {
		in := config.Listener{
			Name: "inbound", Address: hostPort(node.Addr, PortInbound), Direction: config.Inbound, Protocol: config.ProtoAuto,
			Routes: []config.Route{{Name: "deliver", Cluster: "local", Timeout: config.Duration(b.cs.load.Timeout)}},
		}
		if b.mtls() {
			in.TLS, in.Authz = inboundTLS(b.nodeService(n))
		}
		listeners = append(listeners, in)
		clusters = append(clusters, config.Cluster{
			Name: "local", Protocol: config.UpstreamSame,
			OriginalDst: &config.OriginalDst{Header: config.DefaultDstHeader, Allowed: allowed},
			Pool:        b.pool(),
		})
	}
	b.addProxy(Proxy{Name: node.Name, Kind: KindNode, Node: node.Name, Addr: node.Addr}, listeners, clusters)
}

// nodeService is the service whose certificate node n's inbound listener
// presents with mTLS on: the load's destination when the node runs one of
// its pods, else the first service (in file order) with a pod on the node,
// or "" when it runs none. A listener presents one certificate; the load
// only ever calls the load's destination.
func (b *planner) nodeService(n int) string {
	first := ""
	for i, p := range b.plan.Pods {
		if p.Backend == nil || b.nodeOf[i] != n {
			continue
		}
		if p.Service == b.cs.load.Service {
			return p.Service
		}
		if first == "" {
			first = p.Service
		}
	}
	return first
}

// gatewayIDs returns, for the clusters of service svc in a node proxy, the
// identity each gateway presents when one of them presents another
// service's (a node that also runs the load's destination), else nil: then
// every gateway presents svc's own identity.
func (b *planner) gatewayIDs(svc string) map[string]string {
	ids := map[string]string{}
	differs := false
	for i, p := range b.plan.Pods {
		if p.Service != svc {
			continue
		}
		n := b.nodeOf[i]
		other := b.nodeService(n)
		ids[hostPort(b.nodeAddr(n), PortInbound)] = ServiceID(other)
		differs = differs || other != svc
	}
	if !differs {
		return nil
	}
	return ids
}

// clusterService returns the service of an outbound cluster: its name
// without the ".grpc" suffix.
func (b *planner) clusterService(cluster string) string {
	return strings.TrimSuffix(cluster, ".grpc")
}

// secure turns on mTLS in an outbound cluster: the servers must present
// serverID (or, per address dialed, ids), and the proxy presents source's
// certificate (in certs, by service, when perSource). A gRPC cluster
// speaks h2 instead of h2c: h2c is cleartext.
func (b *planner) secure(c *config.Cluster, serverID string, ids map[string]string, source string, perSource bool) {
	if c.Protocol == config.UpstreamH2C {
		c.Protocol = config.UpstreamH2
	}
	c.TLS = upstreamTLS(source, perSource)
	if ids != nil {
		c.TLS.ServerIdentities = ids
	} else {
		c.TLS.ServerIdentity = serverID
	}
}

// outbound returns an outbound listener on addr:4140 with, for every
// service, a gRPC route and an HTTP route on the service's authority, and
// their clusters over the service's pods: ep gives a pod's endpoint for an
// app port, gateway (when not nil) the node proxy that reaches it, or ""
// for a pod reached directly.
func (b *planner) outbound(addr string, ep func(pod, appPort int) string, gateway func(pod int) string) (config.Listener, []config.Cluster) {
	l := config.Listener{Name: "outbound", Address: hostPort(addr, PortOutbound), Direction: config.Outbound, Protocol: config.ProtoAuto}
	var clusters []config.Cluster
	timeout := config.Duration(b.cs.load.Timeout)
	for _, svc := range b.s.Services {
		httpC := config.Cluster{Name: svc.Name, Protocol: config.UpstreamSame}
		grpcC := config.Cluster{Name: svc.Name + ".grpc", Protocol: config.UpstreamH2C}
		for i, p := range b.plan.Pods {
			if p.Service != svc.Name {
				continue
			}
			for _, c := range []struct {
				cl   *config.Cluster
				port int
			}{{&httpC, PortHTTP}, {&grpcC, PortGRPC}} {
				e := ep(i, c.port)
				c.cl.Endpoints = append(c.cl.Endpoints, e)
				if gateway == nil {
					continue
				}
				if gw := gateway(i); gw != "" {
					if c.cl.Via == nil {
						c.cl.Via = &config.Via{Header: config.DefaultDstHeader, Gateways: map[string]string{}}
					}
					c.cl.Via.Gateways[e] = gw
				}
			}
		}
		for _, c := range []*config.Cluster{&grpcC, &httpC} {
			c.Balancer = config.Balancer{Policy: b.cs.balancer}
			c.Pool = b.pool()
			c.OutlierDetection = b.outlier()
			clusters = append(clusters, *c)
		}
		l.Routes = append(l.Routes,
			config.Route{Name: svc.Name + ".grpc", Match: grpcMatch(svc.Name), Cluster: grpcC.Name, Timeout: timeout, Retry: b.retry()},
			config.Route{Name: svc.Name, Match: config.Match{Authority: svc.Name}, Cluster: httpC.Name, Timeout: timeout, Retry: b.retry()},
		)
	}
	return l, clusters
}

// localCluster is a sidecar's cluster of its own app's port.
func (b *planner) localCluster(name, protocol, endpoint string) config.Cluster {
	return config.Cluster{
		Name: name, Protocol: protocol, Balancer: config.Balancer{Policy: balancer.PolicyRoundRobin},
		Endpoints: []string{endpoint}, Pool: b.pool(),
	}
}

// pool keeps enough idle connections per endpoint for every request the
// load can have in flight.
func (b *planner) pool() config.Pool {
	return config.Pool{MaxIdlePerEndpoint: max(config.DefaultMaxIdlePerHost, b.cs.load.Connections*b.cs.load.Streams)}
}

// retry returns a copy of the scenario's retry policy, or nil.
func (b *planner) retry() *config.Retry {
	r := b.s.ProxyConfig.Retry
	if r == nil {
		return nil
	}
	c := *r
	c.On = slices.Clone(r.On)
	return &c
}

// outlier returns a copy of the scenario's outlier detection, or nil.
func (b *planner) outlier() *config.OutlierDetection {
	od := b.s.ProxyConfig.OutlierDetection
	if od == nil {
		return nil
	}
	c := *od
	return &c
}

// addProxy completes a proxy with its admin address and configuration.
func (b *planner) addProxy(p Proxy, listeners []config.Listener, clusters []config.Cluster) {
	p.Admin = hostPort(p.Addr, PortAdmin)
	p.Config = &config.Config{Admin: p.Admin, Listeners: listeners, Clusters: clusters}
	b.plan.Proxies = append(b.plan.Proxies, p)
}

// loadPlan fills the load: through the client's outbound proxy when it has
// one (its sidecar, or its node's proxy), else straight to every pod of the
// destination service (their inbound sidecars in server-sidecar).
func (b *planner) loadPlan() {
	l := b.cs.load
	lp := LoadPlan{
		ClientPod: ClientPod, Protocol: l.Protocol, Authority: l.Service, Rate: l.Rate,
		Connections: l.Connections, Streams: l.Streams, Duration: l.Duration, Warmup: l.Warmup, Timeout: l.Timeout,
	}
	target := func(addr string, port int) string {
		if l.Protocol == ProtoGRPC {
			return hostPort(addr, port)
		}
		return "http://" + hostPort(addr, port) + "/"
	}
	switch b.cs.topology {
	case Sidecar, ClientSidecar:
		lp.Targets = []string{target(b.plan.Pods[0].Addr, PortOutbound)}
	case DaemonSet:
		lp.Targets = []string{target(b.nodeAddr(b.nodeOf[0]), PortOutbound)}
	default:
		port := PortInbound
		if b.cs.topology == Baseline {
			port = PortHTTP
			if l.Protocol == ProtoGRPC {
				port = PortGRPC
			}
		}
		for _, p := range b.plan.Pods {
			if p.Service == l.Service {
				lp.Targets = append(lp.Targets, target(p.Addr, port))
			}
		}
	}
	b.plan.Load = lp
}

// grpcMatch matches gRPC requests, for authority when it is not empty.
func grpcMatch(authority string) config.Match {
	return config.Match{Authority: authority, Headers: []config.HeaderMatch{{Name: "content-type", Regex: grpcContentType}}}
}

// nodeOf returns the node of replica r on a cluster of n nodes.
func (svc *Service) nodeOf(r, n int) int {
	if len(svc.Nodes) > 0 {
		return svc.Nodes[r%len(svc.Nodes)]
	}
	return r % n
}

func nodeName(n int) string            { return "node-" + strconv.Itoa(n) }
func podName(svc string, r int) string { return svc + "-" + strconv.Itoa(r) }
func hostPort(addr string, port int) string {
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

package scenarios

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/reports/result"
)

// ClientPod is the name of the load generator's pod.
const ClientPod = "client-0"

// grpcContentType matches the content type of gRPC requests in a route's
// header condition (the match is anchored).
const grpcContentType = "application/grpc([+;].*)?"

// PlanOptions choose how a cell becomes a plan.
type PlanOptions struct {
	// Quick applies the scenario's quick overrides.
	Quick bool
	// Engine is the load engine (LoadPlan.Engine); empty is meshbench's.
	Engine string
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
	case DimMix:
		return ""
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
	l.Mix = s.mixOf(s.setting(c.Labels, DimMix))
	if len(s.Load.Mix) > 0 && len(l.Mix) == 0 {
		v.fail(DimMix, "no stream has a share")
	}
	if cs.mtls == MTLSOn {
		for _, st := range l.Mix {
			if st.Service != l.Service {
				v.fail(DimMTLS, "stream %s goes to %s: with mTLS on, every stream must go to load.service (%s), whose certificate the proxies present", st.Name, st.Service, l.Service)
			}
		}
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
	b := &planner{s: s, cs: cs}
	b.layout()
	b.backends(o.Quick)
	b.proxies()
	b.loadPlan()
	b.plan.Load.Engine = o.Engine
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
	plan Plan
	// nodeOf holds the node index of each pod of plan.Pods.
	nodeOf []int
}

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
// service's replicas in file order.
func (b *planner) layout() {
	for n := range b.s.Nodes {
		b.plan.Nodes = append(b.plan.Nodes, Node{Name: nodeName(n)})
	}
	place := func(p Pod, n int) {
		p.Node = nodeName(n)
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
		b.clientSidecar(func(string) string { return PortNameInbound })
		b.serverSidecars()
	case ClientSidecar:
		b.clientSidecar(func(appPort string) string { return appPort })
	case ServerSidecar:
		b.serverSidecars()
	case DaemonSet:
		for n := range b.plan.Nodes {
			b.nodeProxy(n)
		}
	}
}

// clientSidecar adds the client pod's sidecar: an outbound listener that
// balances over the server pods, on the port port gives for an app port.
func (b *planner) clientSidecar(port func(appPort string) string) {
	client := &b.plan.Pods[0]
	name := "sidecar-" + client.Name
	client.Sidecar = name
	l, clusters := b.outbound(PodRef(client.Name, PortNameOutbound), port, nil)
	if b.mtls() {
		for i := range clusters {
			b.secure(&clusters[i], ServiceID(b.clusterService(clusters[i].Name)), nil, client.Service, false)
		}
	}
	b.addProxy(Proxy{Name: name, Kind: KindSidecar, Node: client.Node, Pod: client.Name},
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
			Name: "inbound", Address: PodRef(p.Name, PortNameInbound), Direction: config.Inbound, Protocol: config.ProtoAuto,
			Routes: []config.Route{
				{Name: "local.grpc", Match: grpcMatch(""), Cluster: "local.grpc", Timeout: timeout},
				{Name: "local", Cluster: "local", Timeout: timeout},
			},
		}
		if b.mtls() {
			l.TLS, l.Authz = inboundTLS(p.Service)
		}
		clusters := []config.Cluster{
			b.localCluster("local", config.UpstreamSame, PodRef(p.Name, PortNameHTTP)),
			b.localCluster("local.grpc", config.UpstreamH2C, PodRef(p.Name, PortNameGRPC)),
		}
		b.addProxy(Proxy{Name: p.Sidecar, Kind: KindSidecar, Node: p.Node, Pod: p.Name},
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
		return NodeRef(nodeName(b.nodeOf[i]), PortNameInbound)
	}
	out, clusters := b.outbound(NodeRef(node.Name, PortNameOutbound), func(appPort string) string { return appPort }, gateway)
	var allowed []string
	for i, p := range b.plan.Pods {
		if p.Backend != nil && b.nodeOf[i] == n {
			allowed = append(allowed, PodRef(p.Name, PortNameHTTP), PodRef(p.Name, PortNameGRPC))
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
			Name: "inbound", Address: NodeRef(node.Name, PortNameInbound), Direction: config.Inbound, Protocol: config.ProtoAuto,
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
	b.addProxy(Proxy{Name: node.Name, Kind: KindNode, Node: node.Name}, listeners, clusters)
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
		ids[NodeRef(nodeName(n), PortNameInbound)] = ServiceID(other)
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

// outbound returns an outbound listener on listen with, for every
// service, a gRPC route and an HTTP route on the service's authority, and
// their clusters over all the service's pods: port gives the port the
// cluster reaches for an app port, gateway (when not nil) the node proxy
// that reaches a pod (by index), or "" for a pod reached directly.
func (b *planner) outbound(listen string, port func(appPort string) string, gateway func(pod int) string) (config.Listener, []config.Cluster) {
	l := config.Listener{Name: "outbound", Address: listen, Direction: config.Outbound, Protocol: config.ProtoAuto}
	var clusters []config.Cluster
	timeout := config.Duration(b.cs.load.Timeout)
	for _, svc := range b.s.Services {
		httpC := config.Cluster{Name: svc.Name, Protocol: config.UpstreamSame}
		grpcC := config.Cluster{Name: svc.Name + ".grpc", Protocol: config.UpstreamH2C}
		for _, c := range []struct {
			cl      *config.Cluster
			appPort string
		}{{&httpC, PortNameHTTP}, {&grpcC, PortNameGRPC}} {
			c.cl.Endpoints = []string{ServiceRef(svc.Name, port(c.appPort))}
			if gateway == nil {
				continue
			}
			for i, p := range b.plan.Pods {
				if p.Service != svc.Name {
					continue
				}
				if gw := gateway(i); gw != "" {
					if c.cl.Via == nil {
						c.cl.Via = &config.Via{Header: config.DefaultDstHeader, Gateways: map[string]string{}}
					}
					c.cl.Via.Gateways[PodRef(p.Name, port(c.appPort))] = gw
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
	return config.Pool{MaxIdlePerEndpoint: max(config.DefaultMaxIdlePerHost, b.cs.load.inFlight())}
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

// addProxy completes a proxy with its configuration: the admin server on
// the proxy's own pod or node.
func (b *planner) addProxy(p Proxy, listeners []config.Listener, clusters []config.Cluster) {
	admin := NodeRef(p.Node, PortNameAdmin)
	if p.Pod != "" {
		admin = PodRef(p.Pod, PortNameAdmin)
	}
	p.Config = &config.Config{Admin: admin, Listeners: listeners, Clusters: clusters}
	b.plan.Proxies = append(b.plan.Proxies, p)
}

// loadPlan fills the load: through the client's outbound proxy when it has
// one (its sidecar, or its node's proxy), else straight to every pod of the
// destination service (their inbound sidecars in server-sidecar). A mixed
// load has the targets of each stream's protocol and service.
func (b *planner) loadPlan() {
	l := b.cs.load
	lp := LoadPlan{
		ClientPod: ClientPod, Protocol: l.Protocol, Authority: l.Service, Rate: l.Rate, Search: l.Search,
		Connections: l.Connections, Streams: l.Streams, Duration: l.Duration, Warmup: l.Warmup, Timeout: l.Timeout,
		NewConnectionPerRequest: l.NewConnectionPerRequest,
	}
	client := b.nodeOf[0]
	for _, st := range l.Mix {
		sp := StreamPlan{
			Name: st.Name, Protocol: st.Protocol, GRPCMode: st.GRPCMode, Targets: b.targets(st.Protocol, st.Service, client),
			Authority: st.Service, Rate: st.Rate, Connections: st.Connections, Streams: st.Streams,
			BodySize: st.RequestSize, ResponseSize: st.ResponseSize,
		}
		if st.Share != nil {
			sp.Share = float64(*st.Share)
		}
		lp.Mix = append(lp.Mix, sp)
	}
	if len(lp.Mix) == 0 {
		lp.Targets = b.targets(l.Protocol, l.Service, client)
	} else {
		lp.Protocol, lp.Connections, lp.Streams = loadgen.ProtocolMix, 0, 0
	}
	for i := 0; l.Generators > 1 && i < l.Generators; i++ {
		n := (client + i) % len(b.plan.Nodes)
		g := GeneratorPlan{Name: "g" + strconv.Itoa(i), Node: nodeName(n)}
		if len(l.Mix) == 0 {
			g.Targets = b.targets(l.Protocol, l.Service, n)
		}
		for _, st := range l.Mix {
			g.StreamTargets = append(g.StreamTargets, b.targets(st.Protocol, st.Service, n))
		}
		lp.Generators = append(lp.Generators, g)
	}
	b.plan.Load = lp
}

// targets are where a load generator on node n sends protocol's
// requests to service.
func (b *planner) targets(protocol, service string, n int) []string {
	target := func(ref string) string {
		if protocol == ProtoGRPC {
			return ref
		}
		return "http://" + ref + "/"
	}
	switch b.cs.topology {
	case Sidecar, ClientSidecar:
		return []string{target(PodRef(ClientPod, PortNameOutbound))}
	case DaemonSet:
		return []string{target(NodeRef(nodeName(n), PortNameOutbound))}
	}
	port := PortNameInbound
	if b.cs.topology == Baseline {
		port = PortNameHTTP
		if protocol == ProtoGRPC {
			port = PortNameGRPC
		}
	}
	var out []string
	for _, p := range b.plan.Pods {
		if p.Service == service {
			out = append(out, target(PodRef(p.Name, port)))
		}
	}
	return out
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

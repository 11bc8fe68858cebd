package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/discovery"
	"github.com/meshbench/meshbench/proxy/discovery/remote"
	"github.com/meshbench/meshbench/proxy/h1client"
	"github.com/meshbench/meshbench/proxy/metrics"
	"github.com/meshbench/meshbench/proxy/outlier"
	"github.com/meshbench/meshbench/proxy/retry"
)

// cluster is a set of endpoints that can change at run time (discovery,
// outlier ejection), the picker over those in service, and one connection
// pool per upstream protocol.
type cluster struct {
	name     string
	protocol string
	log      *slog.Logger
	bcfg     balancer.Config
	// hashed pickers route by a key: the hashHeader value, or the client's
	// address when hashHeader is empty.
	hashed     bool
	hashHeader string
	h1         *h1client.Client // HTTP/1.1 pool (over TLS with tls)
	h2c        *http.Transport  // HTTP/2 pool: cleartext, or h2 over TLS with tls
	detector   *outlier.Detector
	budget     *retry.Budget
	source     discovery.Source // nil for static endpoints
	// bySource holds one pair of pools per source service when the
	// cluster's mTLS presents a certificate per source (a node proxy);
	// h1 and h2c are then nil. scheme is "https" with tls, else "http".
	bySource map[string]*pools
	scheme   string
	// plain holds the cleartext pools of endpoints reached directly when
	// the cluster's mTLS covers only its via gateways (tls.gateways_only);
	// nil otherwise.
	plain *pools
	// via: viaHeader (canonical) names the picked endpoint to the gateway
	// it is reached through; gateways maps endpoints to those gateways.
	// Empty without via.
	viaHeader string
	gateways  map[string]string
	// original_dst: dstHeader (canonical) names each request's endpoint,
	// which must be one of allowed. Empty for balanced clusters; allowed is
	// fixed once the cluster is built.
	dstHeader string
	allowed   map[string]*host

	mu    sync.Mutex // serializes endpoint-set changes and picker rebuilds
	hosts map[string]*host
	order []string // addresses in the order the source gave them
	state atomic.Pointer[pickState]
}

// pickState is an immutable snapshot: the picker over the endpoints in
// service (nil when there are none) and every endpoint, for metrics.
type pickState struct {
	picker balancer.Picker
	peak   *balancer.PeakEWMA // the picker, when it keeps RTT estimates
	all    []*host
}

// host is one endpoint of a cluster and what the proxy counts about it. Its
// balancer.Endpoint (whose Meta points back here) carries the balancer's
// load state, so it survives picker rebuilds.
type host struct {
	ep *balancer.Endpoint
	// dial is the address connections go to: the endpoint's own, or its
	// gateway's when viaGateway is set. Pools are keyed by it.
	dial       string
	viaGateway bool
	od         *outlier.Host // nil without outlier detection
	active     atomic.Int64
	requests   atomic.Uint64
	retries    atomic.Uint64
	listed     bool // scratch for setEndpoints, guarded by cluster.mu
}

// newCluster builds a cluster; discoveryServer is where a cluster that
// follows a Kubernetes Service asks for its endpoints.
func newCluster(cc *config.Cluster, log *slog.Logger, discoveryServer string) (*cluster, error) {
	b := cc.Balancer
	c := &cluster{
		name:       cc.Name,
		protocol:   cc.Protocol,
		log:        log.With("cluster", cc.Name),
		bcfg:       b.Picker(),
		hashHeader: http.CanonicalHeaderKey(b.HashHeader),
		budget:     retry.NewBudget(cc.RetryBudget.Ratio, cc.RetryBudget.MinConcurrency),
		hosts:      map[string]*host{},
		scheme:     "http",
	}
	c.hashed = c.bcfg.NeedsKey()
	c.state.Store(&pickState{})
	if v := cc.Via; v != nil {
		c.viaHeader = http.CanonicalHeaderKey(v.Header)
		c.gateways = v.Gateways
	}
	if od := cc.OutlierDetection; od != nil {
		c.detector = outlier.New(outlier.Config{
			Consecutive5xx:            od.Consecutive5xx,
			ConsecutiveGatewayFailure: od.ConsecutiveGatewayFailure,
			BaseEjectionTime:          od.BaseEjectionTime.D(),
			MaxEjectionTime:           od.MaxEjectionTime.D(),
			MaxEjectionPercent:        od.MaxEjectionPercent,
		}, c.rebuild)
	}
	if cc.Protocol != config.UpstreamH2C {
		c.h1 = h1client.New(h1client.Options{
			Dial:            (&net.Dialer{Timeout: cc.ConnectTimeout.D(), KeepAlive: 30 * time.Second}).DialContext,
			MaxIdlePerHost:  cc.Pool.MaxIdlePerEndpoint,
			MaxConnsPerHost: cc.Pool.MaxConnsPerEndpoint,
			IdleTimeout:     cc.Pool.IdleTimeout.D(),
		})
	}
	if cc.Protocol != config.UpstreamHTTP1 {
		c.h2c = newH2CTransport(cc)
	}
	switch {
	case cc.OriginalDst != nil:
		// The allowed destinations are the endpoints, for metrics and the
		// per-endpoint state; requests name theirs and nothing is picked.
		c.dstHeader = http.CanonicalHeaderKey(cc.OriginalDst.Header)
		eps := make([]discovery.Endpoint, len(cc.OriginalDst.Allowed))
		for i, addr := range cc.OriginalDst.Allowed {
			eps[i] = discovery.Endpoint{Addr: addr, Weight: 1}
		}
		if err := c.setEndpoints(eps); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
		c.allowed = maps.Clone(c.hosts)
	case cc.EndpointsFile != nil:
		// Read the file now, so a proxy started with a missing or broken
		// file fails at once; the source then follows its changes.
		path := cc.EndpointsFile.Path
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: reading endpoints file: %w", cc.Name, err)
		}
		eps, err := discovery.ParseFile(path, data)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
		if err := c.setEndpoints(eps); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
		c.source = discovery.File(discovery.FileConfig{Path: filepath.Clean(path), PollInterval: cc.EndpointsFile.PollInterval.D(), Log: c.log})
	case cc.Kubernetes != nil:
		// Endpoints arrive once the source runs (Server.Start) and the
		// discovery server has answered; until then the cluster answers
		// 503.
		if discoveryServer == "" {
			return nil, fmt.Errorf("cluster %s: a kubernetes source needs discovery_server", cc.Name)
		}
		k := cc.Kubernetes
		c.source = remote.Follow(remote.Config{Server: discoveryServer,
			Key: remote.Key{Namespace: k.Namespace, Service: k.Service, Port: k.Port}, Log: c.log})
	default:
		eps := make([]discovery.Endpoint, len(cc.Endpoints))
		for i, addr := range cc.Endpoints {
			eps[i] = discovery.Endpoint{Addr: addr, Weight: max(1, cc.Weights[addr])}
		}
		if err := c.setEndpoints(eps); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", cc.Name, err)
		}
	}
	return c, nil
}

// run follows the cluster's discovery source until ctx ends.
func (c *cluster) run(ctx context.Context) {
	if c.source == nil {
		return
	}
	err := c.source.Run(ctx, func(eps []discovery.Endpoint) {
		if err := c.setEndpoints(eps); err != nil {
			c.log.Error("endpoint update not applied", "err", err)
			return
		}
		c.log.Info("endpoints updated", "count", len(eps))
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		c.log.Error("endpoint discovery stopped", "err", err)
	}
}

// setEndpoints makes eps the cluster's endpoint set. Endpoints that remain
// keep their load state, outlier state, counters and pooled connections;
// requests in flight to endpoints that left finish normally, and their idle
// connections are closed.
//
// A set equal to the current one (the same addresses in the same order,
// with the same weights) changes nothing: the balancer keeps its state,
// such as round robin's position. A source delivers its set when it
// starts, which is usually the set the cluster was built with.
func (c *cluster) setEndpoints(eps []discovery.Endpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sameEndpointsLocked(eps) {
		return nil
	}
	next := make(map[string]*host, len(eps))
	for _, e := range eps {
		w := max(1, e.Weight)
		if h := c.hosts[e.Addr]; h != nil && h.ep.Weight == w {
			next[e.Addr] = h
			continue
		}
		// New, or a new weight: the balancer reads weights only when it
		// builds a picker, so a reweighted endpoint is a new Endpoint.
		h := &host{ep: &balancer.Endpoint{Addr: e.Addr, Weight: w}, dial: e.Addr}
		if gw, ok := c.gateways[e.Addr]; ok {
			h.dial, h.viaGateway = gw, true
		}
		h.ep.Meta = h
		if old := c.hosts[e.Addr]; old != nil {
			h.requests.Store(old.requests.Load())
			h.retries.Store(old.retries.Load())
			h.od = old.od
		} else if c.detector != nil {
			h.od = c.detector.Add()
		}
		next[e.Addr] = h
	}
	prev, prevOrder := c.hosts, c.order
	c.hosts = next
	c.order = make([]string, 0, len(next))
	for _, e := range eps {
		if h := next[e.Addr]; h != nil && !h.listed {
			h.listed = true
			c.order = append(c.order, e.Addr)
		}
	}
	for _, h := range next {
		h.listed = false
	}
	if err := c.rebuildLocked(); err != nil {
		c.hosts, c.order = prev, prevOrder
		return err
	}
	dialed := make(map[string]bool, len(next))
	for _, h := range next {
		dialed[h.dial] = true
	}
	for addr, h := range prev {
		if _, ok := next[addr]; ok {
			continue
		}
		if h.od != nil {
			c.detector.Remove(h.od)
		}
		// A gateway's connections stay while other endpoints use them.
		if !dialed[h.dial] {
			for _, p := range c.allPools() {
				if p.h1 != nil {
					p.h1.CloseIdleFor(h.dial)
				}
			}
		}
	}
	return nil
}

// sameEndpointsLocked reports whether eps lists the cluster's endpoints
// in their order, with their weights (a repeated address counts once, as
// setEndpoints counts it).
func (c *cluster) sameEndpointsLocked(eps []discovery.Endpoint) bool {
	if c.state.Load() == nil {
		return false // nothing published yet
	}
	i := 0
	seen := make(map[string]bool, len(eps))
	for _, e := range eps {
		if seen[e.Addr] {
			continue
		}
		seen[e.Addr] = true
		h := c.hosts[e.Addr]
		if i >= len(c.order) || c.order[i] != e.Addr || h == nil || h.ep.Weight != max(1, e.Weight) {
			return false
		}
		i++
	}
	return i == len(c.order)
}

// rebuild builds a new picker after an ejection or a return to service.
func (c *cluster) rebuild() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.rebuildLocked(); err != nil {
		c.log.Error("rebuilding the balancer", "err", err)
	}
}

// rebuildLocked publishes a picker over the endpoints in service, in the
// order the source lists them. When every endpoint is ejected it balances
// over all of them rather than fail every request (Envoy's panic mode).
func (c *cluster) rebuildLocked() error {
	all := make([]*host, len(c.order))
	for i, addr := range c.order {
		all[i] = c.hosts[addr]
	}
	in := make([]*balancer.Endpoint, 0, len(all))
	for _, h := range all {
		if h.od == nil || !h.od.Ejected() {
			in = append(in, h.ep)
		}
	}
	if len(in) == 0 {
		for _, h := range all {
			in = append(in, h.ep)
		}
	}
	st := &pickState{all: all}
	if len(in) > 0 && c.dstHeader == "" {
		p, err := balancer.New(c.bcfg, in)
		if err != nil {
			return fmt.Errorf("building the %s balancer over %d endpoints: %w", c.bcfg.Policy, len(in), err)
		}
		st.picker = p
		st.peak, _ = p.(*balancer.PeakEWMA)
	}
	c.state.Store(st)
	return nil
}

// pick chooses the endpoint of one attempt: dst when the request named it
// (original_dst), else the balancer's choice.
func (c *cluster) pick(info balancer.PickInfo, dst *host) (balancer.Result, *host, error) {
	if dst != nil {
		dst.active.Add(1)
		dst.requests.Add(1)
		return balancer.Result{Endpoint: dst.ep}, dst, nil
	}
	p := c.state.Load().picker
	if p == nil {
		return balancer.Result{}, nil, balancer.ErrNoEndpoint
	}
	res, err := p.Pick(info)
	if err != nil {
		return res, nil, err
	}
	h := res.Endpoint.Meta.(*host)
	h.active.Add(1)
	h.requests.Add(1)
	return res, h, nil
}

// destination returns the endpoint an original_dst request names in
// header. When there is none it returns nil and the answer to give: 400
// (INVALID_ARGUMENT) for a missing or repeated header, 403
// (PERMISSION_DENIED) for a destination that is not allowed.
func (c *cluster) destination(header http.Header) (dst *host, status, grpcCode int, msg string) {
	v := header[c.dstHeader]
	switch {
	case len(v) == 0 || v[0] == "":
		return nil, http.StatusBadRequest, grpcInvalidArgument, "missing " + c.dstHeader + " header"
	case len(v) > 1:
		return nil, http.StatusBadRequest, grpcInvalidArgument, "more than one " + c.dstHeader + " header"
	}
	if h := c.allowed[v[0]]; h != nil {
		return h, 0, 0, ""
	}
	return nil, http.StatusForbidden, grpcPermissionDenied, "destination not allowed"
}

// setDst rewrites the destination headers of a forwarded request: the
// original_dst header is consumed; under via, the client's value is
// dropped and, for an endpoint reached through a gateway, the endpoint
// address set in its place.
func (c *cluster) setDst(hdr http.Header, h *host) {
	if c.dstHeader != "" {
		delete(hdr, c.dstHeader)
	}
	if c.viaHeader != "" {
		delete(hdr, c.viaHeader)
		if h.viaGateway {
			hdr[c.viaHeader] = []string{h.ep.Addr}
		}
	}
}

// finish records how an attempt on h ended: for the balancer, for outlier
// detection (unless the client went away, which says nothing about the
// endpoint) and for the in-flight count. status is 0 without a response.
func (c *cluster) finish(pick balancer.Result, h *host, err error, status int, start time.Time, clientGone bool) {
	h.active.Add(-1)
	if pick.Done != nil {
		pick.Done(balancer.DoneInfo{Err: err, StatusCode: status, Latency: time.Since(start)})
	}
	if h.od != nil && !clientGone {
		h.od.Record(outlier.Classify(status))
	}
}

// metricsState reports the cluster's per-endpoint series.
func (c *cluster) metricsState() metrics.ClusterState {
	st := c.state.Load()
	cs := metrics.ClusterState{Cluster: c.name, RetryBudgetExhausted: c.budget.Exhausted(),
		Endpoints: make([]metrics.EndpointState, len(st.all))}
	for i, h := range st.all {
		e := metrics.EndpointState{Addr: h.ep.Addr, Requests: h.requests.Load(), Retries: h.retries.Load(),
			Active: h.active.Load(), RTTEstimate: -1}
		if h.od != nil {
			e.Ejections, e.Ejected = h.od.Ejections(), h.od.Ejected()
		}
		if st.peak != nil {
			e.RTTEstimate = st.peak.Estimate(h.ep)
		}
		cs.Endpoints[i] = e
	}
	return cs
}

// Receive windows of upstream HTTP/2 connections. An upstream connection
// carries the streams of many downstream clients, and a stream's data is
// taken off the connection window only as its client reads it: a
// connection window smaller than the streams' windows together lets one
// client that stops reading (five streams of 1 MiB filled a 4 MiB window)
// stall every other stream on the connection. The connection window is
// therefore not a bound of its own (1 GiB, as net/http's default): what
// one stopped stream can hold is its stream window, and how many streams
// one client opens is its listener's max_concurrent_streams. See
// docs/security.md.
const (
	h2UpstreamStreamWindow = 1 << 20
	h2UpstreamConnWindow   = 1 << 30
)

// newH2CTransport is the cleartext HTTP/2 pool: net/http's Transport, one
// multiplexed connection per endpoint.
func newH2CTransport(cc *config.Cluster) *http.Transport {
	d := &net.Dialer{Timeout: cc.ConnectTimeout.D(), KeepAlive: 30 * time.Second}
	t := &http.Transport{
		// Cleartext HTTP/2 connections gather their writes (coalescer):
		// the Transport flushes every request's HEADERS on its own.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return newCoalescer(c), nil
		},
		MaxIdleConnsPerHost: cc.Pool.MaxIdlePerEndpoint,
		MaxConnsPerHost:     cc.Pool.MaxConnsPerEndpoint,
		IdleConnTimeout:     cc.Pool.IdleTimeout.D(),
		// A proxy forwards what it got: it neither asks for nor undoes
		// compression.
		DisableCompression: true,
		WriteBufferSize:    16 << 10,
		ReadBufferSize:     16 << 10,
		HTTP2: &http.HTTP2Config{
			MaxReceiveBufferPerStream:     h2UpstreamStreamWindow,
			MaxReceiveBufferPerConnection: h2UpstreamConnWindow,
		},
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	t.Protocols = &p
	return t
}

// pools are the upstream connection pools one route uses: HTTP/1.1 and
// HTTP/2, either nil when the cluster's protocol does not use it.
type pools struct {
	h1 *h1client.Client
	h2 *http.Transport
}

// poolsFor returns the pools of requests from source (a listener's
// source_service): its own under mTLS with a certificate per source, else
// the cluster's.
func (c *cluster) poolsFor(source string) pools {
	if p := c.bySource[source]; p != nil {
		return *p
	}
	return pools{h1: c.h1, h2: c.h2c}
}

// allPools returns every pool pair of the cluster.
func (c *cluster) allPools() []pools {
	out := []pools{{h1: c.h1, h2: c.h2c}}
	if c.plain != nil {
		out = append(out, *c.plain)
	}
	for _, p := range c.bySource {
		out = append(out, *p)
	}
	return out
}

// h1ForMajor returns the HTTP/1.1 client for a request that arrived with
// HTTP major version major, or nil when it goes upstream as HTTP/2.
func (rs *routeState) h1ForMajor(major int) *h1client.Client {
	switch rs.cluster.protocol {
	case config.UpstreamHTTP1:
		return rs.pools.h1
	case config.UpstreamH2C, config.UpstreamH2:
		return nil
	}
	if major == 2 {
		return nil
	}
	return rs.pools.h1
}

func (c *cluster) closeIdle() {
	for _, p := range c.allPools() {
		if p.h1 != nil {
			p.h1.CloseIdleConnections()
		}
		if p.h2 != nil {
			p.h2.CloseIdleConnections()
		}
	}
}

package config

import (
	"github.com/meshbench/meshbench/internal/names"

	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/meshbench/meshbench/internal/yamlstrict"
	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/discovery"
	"github.com/meshbench/meshbench/proxy/outlier"
	"github.com/meshbench/meshbench/proxy/retry"
)

var errNotDuration = errors.New("not a duration (examples: 250ms, 2s, 1m30s)")

// Load reads, decodes, defaults and validates the configuration in file.
// The error, if any, lists every problem found, each naming the file, line
// and field.
func Load(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading proxy config: %w", err)
	}
	return Parse(file, data)
}

// Parse is Load for a document already in memory; name is used in errors
// and to resolve nothing else.
func Parse(name string, data []byte) (*Config, error) {
	var c Config
	pos, err := yamlstrict.Decode(name, data, &c)
	if err != nil {
		return nil, err
	}
	zeros := explicitZeros(reflect.ValueOf(&c).Elem(), "", pos)
	c.setDefaults()
	c.setIdentityDefaults()
	v := validator{file: name, pos: pos}
	v.zeroDefaults(&c, zeros)
	v.config(&c)
	v.identity(&c)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &c, nil
}

// WithDefaults returns a copy of c with every default Load applies set,
// without validating it: for the peer adapters, which translate a
// configuration the reference proxy would load and must see the same
// timeouts, pools and policies it would use.
func (c *Config) WithDefaults() (*Config, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("copying the proxy config: %w", err)
	}
	var out Config
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("copying the proxy config: %w", err)
	}
	out.setDefaults()
	out.setIdentityDefaults()
	return &out, nil
}

func (c *Config) setDefaults() {
	if c.DrainTimeout == 0 {
		c.DrainTimeout = Duration(DefaultDrainTimeout)
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Name == "" {
			l.Name = "listener-" + strconv.Itoa(i)
		}
		if l.Direction == "" {
			l.Direction = Outbound
		}
		if l.Protocol == "" {
			l.Protocol = ProtoAuto
		}
		if l.EscapedSlashes == "" {
			l.EscapedSlashes = SlashesReject
		}
		if l.Limits.ReadHeaderTimeout == 0 {
			l.Limits.ReadHeaderTimeout = Duration(10e9)
		}
		if l.Limits.IdleTimeout == 0 {
			l.Limits.IdleTimeout = Duration(120e9)
		}
		if l.Limits.MaxHeaderBytes == 0 {
			l.Limits.MaxHeaderBytes = 64 << 10
		}
		if l.Limits.MaxConcurrentStreams == 0 {
			l.Limits.MaxConcurrentStreams = 1000
		}
		if l.Limits.MaxConnections == 0 {
			l.Limits.MaxConnections = DefaultMaxConnections
		}
		for j := range l.Routes {
			r := &l.Routes[j]
			if r.Name == "" {
				r.Name = l.Name + "/" + strconv.Itoa(j)
			}
			if r.Timeout == 0 {
				r.Timeout = Duration(DefaultRouteTimeout)
			}
			if rt := r.Retry; rt != nil {
				rt.setDefaults()
			}
		}
	}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		if cl.Protocol == "" {
			cl.Protocol = UpstreamSame
		}
		if cl.Balancer.Policy == "" {
			cl.Balancer.Policy = balancer.PolicyPeakEWMA
		}
		if cl.ConnectTimeout == 0 {
			cl.ConnectTimeout = Duration(DefaultConnectTimeout)
		}
		if cl.Pool.MaxConnsPerEndpoint == 0 {
			cl.Pool.MaxConnsPerEndpoint = DefaultMaxConnsPerEndpoint
		}
		if cl.Pool.MaxIdlePerEndpoint == 0 {
			cl.Pool.MaxIdlePerEndpoint = DefaultMaxIdlePerHost
		}
		if cl.Pool.IdleTimeout == 0 {
			cl.Pool.IdleTimeout = Duration(DefaultIdleConnTimeout)
		}
		if f := cl.EndpointsFile; f != nil && f.PollInterval == 0 {
			f.PollInterval = Duration(DefaultPollInterval)
		}
		if cl.Via != nil && cl.Via.Header == "" {
			cl.Via.Header = DefaultDstHeader
		}
		if cl.OriginalDst != nil && cl.OriginalDst.Header == "" {
			cl.OriginalDst.Header = DefaultDstHeader
		}
		if od := cl.OutlierDetection; od != nil {
			od.setDefaults()
		}
		if cl.RetryBudget.Ratio == 0 {
			cl.RetryBudget.Ratio = retry.DefaultBudgetRatio
		}
		if cl.RetryBudget.MinConcurrency == 0 {
			cl.RetryBudget.MinConcurrency = retry.DefaultBudgetMinConcurrency
		}
	}
}

func (rt *Retry) setDefaults() {
	if rt.Attempts == 0 {
		rt.Attempts = DefaultRetryAttempts
	}
	if rt.On == nil {
		rt.On = []string{retry.OnConnectFailure, retry.OnReset, retry.OnUnavailable}
	}
	if rt.Backoff.Base == 0 {
		rt.Backoff.Base = Duration(retry.DefaultBackoffBase)
	}
	if rt.Backoff.Max == 0 {
		rt.Backoff.Max = 10 * rt.Backoff.Base
	}
	if rt.BufferLimit == 0 {
		rt.BufferLimit = retry.DefaultBufferLimit
	}
}

func (od *OutlierDetection) setDefaults() {
	if od.Consecutive5xx == 0 {
		od.Consecutive5xx = outlier.DefaultConsecutive5xx
	}
	if od.ConsecutiveGatewayFailure == 0 {
		od.ConsecutiveGatewayFailure = outlier.DefaultConsecutiveGatewayFailure
	}
	if od.BaseEjectionTime == 0 {
		od.BaseEjectionTime = Duration(outlier.DefaultBaseEjectionTime)
	}
	if od.MaxEjectionTime == 0 {
		od.MaxEjectionTime = Duration(max(outlier.DefaultMaxEjectionTime, od.BaseEjectionTime.D()))
	}
	if od.MaxEjectionPercent == 0 {
		od.MaxEjectionPercent = outlier.DefaultMaxEjectionPercent
	}
}

// Validate checks a retry block on its own, with the defaults a route's
// would get, as a configuration's validation does (a scenario's
// proxy_config holds one for every route). The errors are
// yamlstrict.Errors whose paths start with prefix.
func (rt Retry) Validate(prefix string) error {
	rt.On = slices.Clone(rt.On)
	rt.setDefaults()
	v := validator{}
	v.retry(prefix, &rt)
	return v.err()
}

// Validate checks an outlier_detection block on its own, with the
// defaults a cluster's would get, as a configuration's validation does.
// The errors are yamlstrict.Errors whose paths start with prefix.
func (od OutlierDetection) Validate(prefix string) error {
	od.setDefaults()
	v := validator{}
	v.outlier(prefix, &od)
	return v.err()
}

// explicitZeros returns the paths of the numeric fields (durations among
// them) that the document sets to zero.
func explicitZeros(v reflect.Value, path string, pos yamlstrict.Positions) map[string]bool {
	out := map[string]bool{}
	numericLeaves(v, path, func(p string, f reflect.Value) {
		if _, set := pos[p]; set && f.IsZero() {
			out[p] = true
		}
	})
	return out
}

// zeroDefaults fails every field the document set to zero that defaulting
// then changed: a zero that would silently mean the default.
func (v *validator) zeroDefaults(c *Config, zeros map[string]bool) {
	numericLeaves(reflect.ValueOf(c).Elem(), "", func(p string, f reflect.Value) {
		if zeros[p] && !f.IsZero() {
			def := fmt.Sprint(f.Interface())
			if d, ok := f.Interface().(Duration); ok {
				def = d.D().String()
			}
			v.fail(p, "0 would mean the default (%s): leave the field out for the default", def)
		}
	})
}

// numericLeaves calls fn with the YAML path of every integer and float field
// reachable from v through structs, pointers and lists (the paths
// yamlstrict.Positions records).
func numericLeaves(v reflect.Value, path string, fn func(string, reflect.Value)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			numericLeaves(v.Elem(), path, fn)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			p := name
			if path != "" {
				p = path + "." + name
			}
			numericLeaves(v.Field(i), p, fn)
		}
	case reflect.Slice:
		for i := range v.Len() {
			numericLeaves(v.Index(i), fmt.Sprintf("%s[%d]", path, i), fn)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		fn(path, v)
	}
}

type validator struct {
	file string
	pos  yamlstrict.Positions
	errs yamlstrict.Errors
	// discoveryServer is the config's, for its clusters' checks.
	discoveryServer string
}

// err returns the problems found, or nil.
func (v *validator) err() error {
	if len(v.errs) > 0 {
		return v.errs
	}
	return nil
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, v.pos.Errorf(v.file, path, format, args...))
}

// ParseDiscoveryServer checks a discovery server's address: http://host:port,
// nothing else (no path beyond "/", no query, no user).
func ParseDiscoveryServer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	switch {
	case u.Scheme != "http":
		return nil, fmt.Errorf("%q: the scheme must be http (http://host:port)", s)
	case u.Hostname() == "" || u.Port() == "":
		return nil, fmt.Errorf("%q: a host and a port are required (http://host:port)", s)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "":
		return nil, fmt.Errorf("%q: only http://host:port", s)
	}
	if n, err := strconv.Atoi(u.Port()); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("%q: port %q is not in 1..65535", s, u.Port())
	}
	return u, nil
}

func (v *validator) config(c *Config) {
	v.discoveryServer = c.DiscoveryServer
	addrs := map[string]string{}
	if c.Admin != "" {
		if msg := checkHostPort(c.Admin); msg != "" {
			v.fail("admin", "%q: %s", c.Admin, msg)
		} else {
			addrs[c.Admin] = "admin"
		}
	}
	if c.DrainTimeout < 0 {
		v.fail("drain_timeout", "must not be negative")
	}
	if c.DiscoveryServer != "" {
		if _, err := ParseDiscoveryServer(c.DiscoveryServer); err != nil {
			v.fail("discovery_server", "%v", err)
		}
	}
	if len(c.Listeners) == 0 {
		v.fail("listeners", "at least one listener is required")
	}
	clusters := map[string]bool{}
	for i, cl := range c.Clusters {
		p := fmt.Sprintf("clusters[%d]", i)
		if cl.Name == "" {
			v.fail(p+".name", "required")
		} else if clusters[cl.Name] {
			v.fail(p+".name", "%q: cluster name used twice", cl.Name)
		}
		clusters[cl.Name] = true
		v.cluster(p, &cl)
	}
	names := map[string]bool{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		if names[l.Name] {
			v.fail(p+".name", "%q: listener name used twice", l.Name)
		}
		names[l.Name] = true
		if l.Address == "" {
			v.fail(p+".address", "required")
		} else if msg := checkHostPort(l.Address); msg != "" {
			v.fail(p+".address", "%q: %s", l.Address, msg)
		} else if other, dup := addrs[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
			v.fail(p+".address", "%q: already used by %s", l.Address, other)
		} else if a, other := overlapping(addrs, l.Address); other != "" {
			v.fail(p+".address", "%q overlaps %q of %s: a wildcard and a specific address on one port (the kernel gives a connection to one of them)", l.Address, a, other)
		} else {
			addrs[l.Address] = "listener " + l.Name
		}
		v.listener(p, l, clusters)
	}
}

func (v *validator) listener(p string, l *Listener, clusters map[string]bool) {
	switch l.Direction {
	case Inbound, Outbound:
	default:
		v.fail(p+".direction", "%q: must be inbound or outbound", l.Direction)
	}
	switch l.Protocol {
	case ProtoAuto, ProtoHTTP1:
	case ProtoH2C:
		if l.TLS != nil {
			v.fail(p+".protocol", "h2c is cleartext HTTP/2; with tls use h2 or auto")
		}
	case ProtoH2:
		if l.TLS == nil {
			v.fail(p+".protocol", "h2 needs tls (cert_file and key_file); for cleartext HTTP/2 use h2c")
		}
	default:
		v.fail(p+".protocol", "%q: must be one of auto, http1, h2c, h2", l.Protocol)
	}
	if l.TLS != nil {
		v.tls(p+".tls", l.TLS)
	}
	switch l.EscapedSlashes {
	case SlashesReject, SlashesUnescape:
	default:
		v.fail(p+".escaped_slashes", "%q: must be reject or unescape", l.EscapedSlashes)
	}
	lim := l.Limits
	if lim.ReadHeaderTimeout < 0 {
		v.fail(p+".limits.read_header_timeout", "must be positive")
	}
	if lim.IdleTimeout < 0 {
		v.fail(p+".limits.idle_timeout", "must be positive")
	}
	if lim.MaxHeaderBytes < 0 || lim.MaxHeaderBytes > MaxHeaderBytesLimit {
		v.fail(p+".limits.max_header_bytes", "%d: must be positive, at most %d", lim.MaxHeaderBytes, MaxHeaderBytesLimit)
	}
	if lim.MaxConcurrentStreams < 0 || lim.MaxConcurrentStreams > math.MaxUint32 {
		v.fail(p+".limits.max_concurrent_streams", "%d: must be positive, at most %d", lim.MaxConcurrentStreams, uint32(math.MaxUint32))
	}
	if lim.MaxConnections < 0 {
		v.fail(p+".limits.max_connections", "must be positive")
	}
	if lim.MaxConnectionsPerSource < 0 {
		v.fail(p+".limits.max_connections_per_source", "must be positive")
	}
	if lim.BodyIdleTimeout < 0 {
		v.fail(p+".limits.body_idle_timeout", "must be positive")
	}
	if len(l.Routes) == 0 {
		v.fail(p+".routes", "at least one route is required")
	}
	for j := range l.Routes {
		v.route(fmt.Sprintf("%s.routes[%d]", p, j), &l.Routes[j], clusters)
	}
}

func (v *validator) tls(p string, t *TLS) {
	if t.CertFile == "" {
		v.fail(p+".cert_file", "required")
	}
	if t.KeyFile == "" {
		v.fail(p+".key_file", "required")
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		v.fail(p, "loading certificate and key: %v", err)
	}
}

func (v *validator) route(p string, r *Route, clusters map[string]bool) {
	if r.Cluster == "" {
		v.fail(p+".cluster", "required")
	} else if !clusters[r.Cluster] {
		v.fail(p+".cluster", "%q: no cluster has this name", r.Cluster)
	}
	v.retry(p+".retry", r.Retry)
	m := r.Match
	if a := m.Authority; a != "" && a != "*" {
		host := strings.TrimPrefix(a, "*.")
		if strings.Contains(host, "*") {
			v.fail(p+".match.authority", "%q: a wildcard is allowed only as a leading \"*.\"", a)
		} else if strings.ContainsAny(host, "/ ") || host == "" {
			v.fail(p+".match.authority", "%q: not a host name", a)
		}
	}
	if m.Path != "" && m.PathPrefix != "" {
		v.fail(p+".match", "path and path_prefix are exclusive")
	}
	if m.Path != "" && !strings.HasPrefix(m.Path, "/") {
		v.fail(p+".match.path", "%q: must start with /", m.Path)
	}
	if m.PathPrefix != "" && !strings.HasPrefix(m.PathPrefix, "/") {
		v.fail(p+".match.path_prefix", "%q: must start with /", m.PathPrefix)
	}
	if m.GRPCMethod != "" && m.GRPCService == "" {
		v.fail(p+".match.grpc_method", "needs grpc_service")
	}
	if strings.ContainsAny(m.GRPCService, "/ ") {
		v.fail(p+".match.grpc_service", "%q: a fully qualified service name such as pkg.Service", m.GRPCService)
	}
	if strings.ContainsAny(m.GRPCMethod, "/ ") {
		v.fail(p+".match.grpc_method", "%q: a method name such as UnaryCall", m.GRPCMethod)
	}
	for k, h := range m.Headers {
		hp := fmt.Sprintf("%s.match.headers[%d]", p, k)
		if !validHeaderName(h.Name) {
			v.fail(hp+".name", "%q: not a header name", h.Name)
		}
		n := 0
		if h.Exact != "" {
			n++
		}
		if h.Regex != "" {
			n++
			if _, err := regexp.Compile(h.Regex); err != nil {
				v.fail(hp+".regex", "%q: %v", h.Regex, err)
			}
		}
		if h.Present != nil {
			n++
		}
		if n != 1 {
			v.fail(hp, "exactly one of exact, regex and present must be set")
		}
	}
	for name := range r.RequestHeaders.Add {
		if !validHeaderName(name) {
			v.fail(p+".request_headers.add."+name, "%q: not a header name", name)
		}
	}
	for k, name := range r.RequestHeaders.Remove {
		if !validHeaderName(name) {
			v.fail(fmt.Sprintf("%s.request_headers.remove[%d]", p, k), "%q: not a header name", name)
		}
	}
}

func (v *validator) cluster(p string, c *Cluster) {
	switch c.Protocol {
	case UpstreamHTTP1, UpstreamH2C, UpstreamH2, UpstreamSame:
	default:
		v.fail(p+".protocol", "%q: must be one of http1, h2c, h2, same", c.Protocol)
	}
	b := c.Balancer
	bc := b.Picker()
	for _, pr := range bc.Validate(len(c.Endpoints)) {
		path := p + ".balancer"
		if pr.Param != "" {
			path += "." + pr.Param
		}
		v.fail(path, "%s", pr.Msg)
	}
	if b.HashHeader != "" && !bc.NeedsKey() {
		v.fail(p+".balancer.hash_header", "applies to ring_hash and maglev only")
	} else if b.HashHeader != "" && !validHeaderName(b.HashHeader) {
		v.fail(p+".balancer.hash_header", "%q: not a header name", b.HashHeader)
	}
	v.endpoints(p, c)
	v.via(p, c)
	v.originalDst(p, c)
	v.outlier(p+".outlier_detection", c.OutlierDetection)
	if rb := c.RetryBudget; rb.Ratio < 0 || rb.Ratio > 1 {
		v.fail(p+".retry_budget.ratio", "%v: must be in (0, 1]", rb.Ratio)
	}
	if c.RetryBudget.MinConcurrency < 0 {
		v.fail(p+".retry_budget.min_concurrency", "must not be negative")
	}
	if c.ConnectTimeout < 0 {
		v.fail(p+".connect_timeout", "must be positive")
	}
	if c.Pool.MaxConnsPerEndpoint < -1 {
		v.fail(p+".pool.max_conns_per_endpoint", "%d: must be positive, or -1 for no cap", c.Pool.MaxConnsPerEndpoint)
	}
	if c.Pool.MaxIdlePerEndpoint < 0 {
		v.fail(p+".pool.max_idle_per_endpoint", "must not be negative")
	}
	if c.Pool.IdleTimeout < 0 {
		v.fail(p+".pool.idle_timeout", "must be positive")
	}
}

// endpoints checks that a cluster has exactly one endpoint source and that
// the source is well formed.
func (v *validator) endpoints(p string, c *Cluster) {
	sources := 0
	if c.Endpoints != nil {
		sources++
	}
	if c.EndpointsFile != nil {
		sources++
	}
	if c.Kubernetes != nil {
		sources++
	}
	if c.OriginalDst != nil {
		sources++
	}
	if sources != 1 {
		v.fail(p, "exactly one of endpoints, endpoints_file, kubernetes and original_dst is required")
	}
	if c.Endpoints != nil && len(c.Endpoints) == 0 {
		v.fail(p+".endpoints", "at least one endpoint is required")
	}
	seen := map[string]bool{}
	for k, e := range c.Endpoints {
		ep := fmt.Sprintf("%s.endpoints[%d]", p, k)
		if msg := checkHostPort(e); msg != "" {
			v.fail(ep, "%q: %s", e, msg)
		} else if strings.HasSuffix(e, ":0") {
			v.fail(ep, "%q: port 0 is not a destination", e)
		} else if seen[e] {
			v.fail(ep, "%q: endpoint listed twice", e)
		}
		seen[e] = true
	}
	if len(c.Weights) > 0 {
		if c.Balancer.Policy != balancer.PolicyWeightedRoundRobin {
			v.fail(p+".weights", "apply to weighted_round_robin only")
		}
		if c.Endpoints == nil {
			v.fail(p+".weights", "apply to static endpoints; an endpoints file carries its own")
		}
		for _, addr := range slices.Sorted(maps.Keys(c.Weights)) {
			if w := c.Weights[addr]; w < 1 {
				v.fail(p+".weights."+addr, "%d: a weight is at least 1", w)
			}
			if c.Endpoints != nil && !seen[addr] {
				v.fail(p+".weights."+addr, "not one of the cluster's endpoints")
			}
		}
	}
	if f := c.EndpointsFile; f != nil {
		if f.Path == "" {
			v.fail(p+".endpoints_file.path", "required")
		} else if data, err := os.ReadFile(f.Path); err != nil {
			v.fail(p+".endpoints_file.path", "%v", err)
		} else if _, err := discovery.ParseFile(f.Path, data); err != nil {
			v.fail(p+".endpoints_file.path", "%v", err)
		}
		if f.PollInterval < 0 {
			v.fail(p+".endpoints_file.poll_interval", "must be positive")
		}
	}
	if k := c.Kubernetes; k != nil {
		if v.discoveryServer == "" {
			v.fail(p+".kubernetes", "needs discovery_server: the proxy asks a discovery server (meshbench discovery) for a Service's endpoints")
		}
		if !names.DNSLabel(k.Namespace) {
			v.fail(p+".kubernetes.namespace", "%q: a namespace name (DNS label) is required", k.Namespace)
		}
		if !names.DNSLabel(k.Service) {
			v.fail(p+".kubernetes.service", "%q: a service name (DNS label) is required", k.Service)
		}
	}
}

// via checks a via block: it needs an endpoint source whose endpoints it
// maps to gateways, and both sides of each mapping are destinations.
func (v *validator) via(p string, c *Cluster) {
	vi := c.Via
	if vi == nil {
		return
	}
	p += ".via"
	if c.OriginalDst != nil {
		v.fail(p, "does not combine with original_dst: a cluster either picks its endpoints (and may reach them through gateways) or is told them")
	} else if c.Endpoints == nil && c.EndpointsFile == nil && c.Kubernetes == nil {
		v.fail(p, "needs an endpoint source (endpoints, endpoints_file or kubernetes) whose endpoints the balancer picks")
	}
	if !validHeaderName(vi.Header) {
		v.fail(p+".header", "%q: not a header name", vi.Header)
	}
	static := map[string]bool{}
	for _, e := range c.Endpoints {
		static[e] = true
	}
	for _, ep := range slices.Sorted(maps.Keys(vi.Gateways)) {
		gw := vi.Gateways[ep]
		gp := p + ".gateways." + ep
		if msg := checkDestination(ep); msg != "" {
			v.fail(gp, "endpoint %q: %s", ep, msg)
		} else if c.Endpoints != nil && !static[ep] {
			v.fail(gp, "not one of the cluster's endpoints")
		}
		if msg := checkDestination(gw); msg != "" {
			v.fail(gp, "gateway %q: %s", gw, msg)
		}
	}
}

// originalDst checks an original_dst block: the destinations it may
// deliver to, its header, and that nothing meant for a balancer is set.
func (v *validator) originalDst(p string, c *Cluster) {
	od := c.OriginalDst
	if od == nil {
		return
	}
	if !validHeaderName(od.Header) {
		v.fail(p+".original_dst.header", "%q: not a header name", od.Header)
	}
	if len(od.Allowed) == 0 {
		v.fail(p+".original_dst.allowed", "at least one destination is required: the endpoints this proxy may deliver to")
	}
	seen := map[string]bool{}
	for k, a := range od.Allowed {
		ap := fmt.Sprintf("%s.original_dst.allowed[%d]", p, k)
		if msg := checkDestination(a); msg != "" {
			v.fail(ap, "%q: %s", a, msg)
		} else if seen[a] {
			v.fail(ap, "%q: destination listed twice", a)
		}
		seen[a] = true
	}
	if c.Balancer != (Balancer{Policy: balancer.PolicyPeakEWMA}) {
		v.fail(p+".balancer", "does not apply to original_dst: each request names its endpoint, nothing is balanced")
	}
	if c.OutlierDetection != nil {
		v.fail(p+".outlier_detection", "does not apply to original_dst: each request names its endpoint, no endpoint can be ejected")
	}
}

// checkDestination is checkHostPort for an address to connect to: port 0
// is not one.
func checkDestination(s string) string {
	if msg := checkHostPort(s); msg != "" {
		return msg
	}
	if strings.HasSuffix(s, ":0") {
		return "port 0 is not a destination"
	}
	return ""
}

// outlier checks an outlier_detection block.
func (v *validator) outlier(p string, od *OutlierDetection) {
	if od == nil {
		return
	}
	if od.Consecutive5xx < -1 {
		v.fail(p+".consecutive_5xx", "%d: a count, or -1 to disable", od.Consecutive5xx)
	}
	if od.ConsecutiveGatewayFailure < -1 {
		v.fail(p+".consecutive_gateway_failure", "%d: a count, or -1 to disable", od.ConsecutiveGatewayFailure)
	}
	if od.BaseEjectionTime < 0 {
		v.fail(p+".base_ejection_time", "must be positive")
	}
	if od.MaxEjectionTime < od.BaseEjectionTime {
		v.fail(p+".max_ejection_time", "must be at least base_ejection_time")
	}
	if od.MaxEjectionPercent < 0 || od.MaxEjectionPercent > 100 {
		v.fail(p+".max_ejection_percent", "%d: a percentage, 1 to 100", od.MaxEjectionPercent)
	}
}

// retry checks a route's retry block.
func (v *validator) retry(p string, r *Retry) {
	if r == nil {
		return
	}
	if r.Attempts < 1 || r.Attempts > MaxRetryAttempts {
		v.fail(p+".attempts", "%d: between 1 and %d", r.Attempts, MaxRetryAttempts)
	}
	if _, bad := retry.ParseConditions(r.On); bad != "" {
		v.fail(p+".on", "%q: unknown condition (known: %s, %s, %s, %s)", bad, retry.OnConnectFailure, retry.OnReset, retry.On503, retry.OnUnavailable)
	}
	if r.PerTryTimeout < 0 {
		v.fail(p+".per_try_timeout", "must be positive")
	}
	if r.Backoff.Base < 0 || r.Backoff.Max < r.Backoff.Base {
		v.fail(p+".backoff", "base must be positive and max at least base")
	}
	if r.BufferLimit < 0 {
		v.fail(p+".buffer_limit", "must not be negative")
	}
}

// checkHostPort returns "" when s is host:port with a valid port and a host
// that is an IP address or a DNS name, else what is wrong.
func checkHostPort(s string) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return ae.Err
		}
		return err.Error()
	}
	if port == "" {
		return "missing port"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("invalid port %q", port)
	}
	if host == "" {
		return "missing host (use 0.0.0.0 or [::] for every address)"
	}
	if strings.Trim(host, "0123456789.") == "" || strings.Contains(host, ":") {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Sprintf("invalid IP address %q", host)
		}
		return ""
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") != "" {
			return fmt.Sprintf("invalid host name %q", host)
		}
	}
	return ""
}

// overlapping returns an address of addrs (and its owner) on the same port
// as addr where one of the two is a wildcard (0.0.0.0, [::]), or "", "".
// Port 0 asks the kernel for a free port and never overlaps.
func overlapping(addrs map[string]string, addr string) (string, string) {
	host, port, _ := net.SplitHostPort(addr)
	if port == "0" {
		return "", ""
	}
	for _, a := range slices.Sorted(maps.Keys(addrs)) {
		h, p, err := net.SplitHostPort(a)
		if err != nil || p != port {
			continue
		}
		if wildcard(h) || wildcard(host) {
			return a, addrs[a]
		}
	}
	return "", ""
}

func wildcard(host string) bool {
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsUnspecified()
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

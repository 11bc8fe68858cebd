package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/meshbench/meshbench/internal/yamlstrict"
	"github.com/meshbench/meshbench/proxy/balancer"
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
	c.setDefaults()
	v := validator{file: name, pos: pos}
	v.config(&c)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &c, nil
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
		for j := range l.Routes {
			r := &l.Routes[j]
			if r.Name == "" {
				r.Name = l.Name + "/" + strconv.Itoa(j)
			}
			if r.Timeout == 0 {
				r.Timeout = Duration(DefaultRouteTimeout)
			}
		}
	}
	for i := range c.Clusters {
		cl := &c.Clusters[i]
		if cl.Protocol == "" {
			cl.Protocol = UpstreamSame
		}
		if cl.Balancer.Policy == "" {
			cl.Balancer.Policy = balancer.PolicyRoundRobin
		}
		if cl.ConnectTimeout == 0 {
			cl.ConnectTimeout = Duration(DefaultConnectTimeout)
		}
		if cl.Pool.MaxIdlePerEndpoint == 0 {
			cl.Pool.MaxIdlePerEndpoint = DefaultMaxIdlePerHost
		}
		if cl.Pool.IdleTimeout == 0 {
			cl.Pool.IdleTimeout = Duration(DefaultIdleConnTimeout)
		}
	}
}

type validator struct {
	file string
	pos  yamlstrict.Positions
	errs yamlstrict.Errors
}

func (v *validator) fail(path, format string, args ...any) {
	v.errs = append(v.errs, v.pos.Errorf(v.file, path, format, args...))
}

func (v *validator) config(c *Config) {
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
	lim := l.Limits
	if lim.ReadHeaderTimeout < 0 {
		v.fail(p+".limits.read_header_timeout", "must be positive")
	}
	if lim.IdleTimeout < 0 {
		v.fail(p+".limits.idle_timeout", "must be positive")
	}
	if lim.MaxHeaderBytes < 0 {
		v.fail(p+".limits.max_header_bytes", "must be positive")
	}
	if lim.MaxConcurrentStreams < 0 {
		v.fail(p+".limits.max_concurrent_streams", "must be positive")
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
	case UpstreamHTTP1, UpstreamH2C, UpstreamSame:
	default:
		v.fail(p+".protocol", "%q: must be one of http1, h2c, same", c.Protocol)
	}
	b := c.Balancer
	if !slices.Contains(balancer.Policies(), b.Policy) {
		v.fail(p+".balancer.policy", "%q: unknown policy (known: %s)", b.Policy, strings.Join(balancer.Policies(), ", "))
	}
	bc := balancer.Config{Policy: b.Policy}
	if b.HashHeader != "" && !bc.NeedsKey() {
		v.fail(p+".balancer.hash_header", "applies to ring_hash and maglev only")
	} else if b.HashHeader != "" && !validHeaderName(b.HashHeader) {
		v.fail(p+".balancer.hash_header", "%q: not a header name", b.HashHeader)
	}
	if b.MinRingSize != 0 && b.Policy != balancer.PolicyRingHash || b.MinRingSize < 0 {
		v.fail(p+".balancer.min_ring_size", "a positive size, for ring_hash only")
	}
	if b.TableSize != 0 {
		if b.Policy != balancer.PolicyMaglev {
			v.fail(p+".balancer.table_size", "applies to maglev only")
		} else if err := balancer.CheckTableSize(b.TableSize, len(c.Endpoints)); err != nil {
			v.fail(p+".balancer.table_size", "%v", err)
		}
	}
	if (b.ChoiceCount != 0 || b.FullScan) && b.Policy != balancer.PolicyLeastRequest {
		v.fail(p+".balancer", "choice_count and full_scan apply to least_request only")
	}
	if b.ChoiceCount != 0 && b.ChoiceCount < 2 {
		v.fail(p+".balancer.choice_count", "%d: must be at least 2", b.ChoiceCount)
	}
	if (b.Decay != 0 || b.DefaultRTT != 0) && b.Policy != balancer.PolicyPeakEWMA {
		v.fail(p+".balancer", "decay and default_rtt apply to peak_ewma only")
	}
	if b.Decay < 0 || b.DefaultRTT < 0 {
		v.fail(p+".balancer", "decay and default_rtt must be positive")
	}
	if len(c.Endpoints) == 0 {
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
	if c.ConnectTimeout < 0 {
		v.fail(p+".connect_timeout", "must be positive")
	}
	if c.Pool.MaxConnsPerEndpoint < 0 {
		v.fail(p+".pool.max_conns_per_endpoint", "must not be negative")
	}
	if c.Pool.MaxIdlePerEndpoint < 0 {
		v.fail(p+".pool.max_idle_per_endpoint", "must not be negative")
	}
	if c.Pool.IdleTimeout < 0 {
		v.fail(p+".pool.idle_timeout", "must be positive")
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

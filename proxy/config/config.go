package config

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
)

// Directions of a listener.
const (
	Inbound  = "inbound"
	Outbound = "outbound"
)

// Downstream protocols of a listener.
const (
	// ProtoAuto serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the
	// same port, or, with TLS, whichever of h2 and http/1.1 ALPN selects.
	ProtoAuto = "auto"
	// ProtoHTTP1 serves HTTP/1.1 only.
	ProtoHTTP1 = "http1"
	// ProtoH2C serves cleartext HTTP/2 with prior knowledge only.
	ProtoH2C = "h2c"
	// ProtoH2 serves HTTP/2 over TLS (ALPN h2, falling back to http/1.1).
	ProtoH2 = "h2"
)

// Actions on an escaped slash in a request path (Listener.EscapedSlashes).
const (
	SlashesReject   = "reject"
	SlashesUnescape = "unescape"
)

// Upstream protocols of a cluster.
const (
	UpstreamHTTP1 = "http1"
	UpstreamH2C   = "h2c"
	// UpstreamH2 is HTTP/2 over TLS (ALPN h2); it needs the cluster's tls.
	UpstreamH2 = "h2"
	// UpstreamSame speaks to endpoints in the protocol the request arrived
	// with: HTTP/1.x as HTTP/1.1, HTTP/2 (h2c or h2) as h2c.
	UpstreamSame = "same"
)

// Defaults applied by Load to fields left empty.
const (
	DefaultDrainTimeout    = 10 * time.Second
	DefaultConnectTimeout  = 1 * time.Second
	DefaultRouteTimeout    = 15 * time.Second
	DefaultRetryAttempts   = 2
	MaxRetryAttempts       = 10
	DefaultPollInterval    = time.Second
	DefaultMaxIdlePerHost  = 256
	DefaultIdleConnTimeout = 90 * time.Second
	DefaultMaxConnections  = 10000
	// DefaultMaxConnsPerEndpoint is Envoy's default circuit breaker on
	// connections to one upstream.
	DefaultMaxConnsPerEndpoint = 1024
	// MaxHeaderBytesLimit is the largest max_header_bytes accepted.
	MaxHeaderBytesLimit = 16 << 20
)

// Config is a whole proxy configuration.
type Config struct {
	// Admin is the address of the admin server (/metrics and /ready, and
	// with AdminDebug /config and /debug/pprof/). Empty disables it. Keep
	// it on loopback unless something outside the host must scrape or
	// probe it: Warnings flags any other address.
	Admin string `yaml:"admin" json:"admin,omitempty"`
	// AdminDebug adds /config (the running configuration, header values
	// redacted) and /debug/pprof/ to the admin server. Default false:
	// they tell whoever reaches the admin port how the proxy is built and
	// let them load it with profiling.
	AdminDebug bool `yaml:"admin_debug" json:"admin_debug,omitempty"`
	// DrainTimeout bounds how long in-flight requests may run after SIGTERM
	// before the proxy closes what is left and exits. Default 10s.
	DrainTimeout Duration   `yaml:"drain_timeout" json:"drain_timeout"`
	Listeners    []Listener `yaml:"listeners" json:"listeners"`
	Clusters     []Cluster  `yaml:"clusters" json:"clusters"`
	// DiscoveryServer is the discovery server (`meshbench discovery`,
	// http://host:port) that clusters following a Kubernetes Service ask
	// for their endpoints; the proxy itself never talks to the Kubernetes
	// API. Required when a cluster has a kubernetes source.
	DiscoveryServer string `yaml:"discovery_server" json:"discovery_server,omitempty"`
}

// Listener accepts downstream connections on one address.
type Listener struct {
	// Name labels the listener in metrics and logs. Default: "listener-<index>".
	Name    string `yaml:"name" json:"name"`
	Address string `yaml:"address" json:"address"`
	// Direction is inbound (traffic to the local workload) or outbound
	// (traffic from the local workload). Default outbound.
	Direction string `yaml:"direction" json:"direction"`
	// Protocol is auto, http1, h2c or h2. Default auto; h2 requires TLS.
	Protocol string `yaml:"protocol" json:"protocol"`
	// TLS, when set, terminates TLS on the listener.
	TLS *TLS `yaml:"tls" json:"tls,omitempty"`
	// SourceService names the workload whose traffic this listener
	// carries: a node proxy gives each pod of its node its own outbound
	// listener, and clusters whose tls holds a certificate per service
	// (mode source) present this one's. See docs/identity.md.
	SourceService string `yaml:"source_service" json:"source_service,omitempty"`
	// Authz, when set, allows only the requests one of its rules allows
	// and answers the others 403 (gRPC PERMISSION_DENIED).
	Authz *Authz `yaml:"authz" json:"authz,omitempty"`
	// EscapedSlashes is what the listener does with a request path that
	// holds an escaped "/" or "\" (%2F, %5C): reject (400, the default) or
	// unescape (decode it and treat it as a separator). Every path is
	// normalised before routing and authz and forwarded normalised; see
	// docs/security.md.
	EscapedSlashes string `yaml:"escaped_slashes" json:"escaped_slashes"`
	// Routes are tried in order; the first match wins.
	Routes []Route `yaml:"routes" json:"routes"`
	// Limits bound what one downstream connection may cost the proxy.
	Limits Limits `yaml:"limits" json:"limits"`
}

// TLS is a server certificate for a listener and, with ClientCAFile,
// inbound mTLS. The files are reloaded when they change.
type TLS struct {
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
	// ClientCAFile is the trust bundle client certificates are verified
	// against; setting it turns on mTLS.
	ClientCAFile string `yaml:"client_ca_file" json:"client_ca_file,omitempty"`
	// RequireClientCert refuses handshakes without a client certificate.
	// Default true when ClientCAFile is set; it needs ClientCAFile.
	RequireClientCert *bool `yaml:"require_client_cert" json:"require_client_cert,omitempty"`
	// MinVersion is "1.2" or "1.3". Default 1.3 with ClientCAFile, else 1.2.
	MinVersion string `yaml:"min_version" json:"min_version"`
	// ReloadInterval is how often the files are checked. Default 1s.
	ReloadInterval Duration `yaml:"reload_interval" json:"reload_interval"`
}

// Limits protect a listener against slow or greedy clients.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout" json:"read_header_timeout"`
	// IdleTimeout closes keep-alive connections idle this long. Default 120s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
	// MaxHeaderBytes bounds the request header size. Default 64 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes" json:"max_header_bytes"`
	// MaxConcurrentStreams bounds HTTP/2 streams per connection. Default 1000.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams" json:"max_concurrent_streams"`
	// MaxConnections bounds the downstream connections open at once on the
	// listener; connections beyond it wait in the accept queue until one
	// closes. Default 10000.
	MaxConnections int `yaml:"max_connections" json:"max_connections"`
	// MaxConnectionsPerSource bounds the connections open at once from one
	// client address; a connection beyond it is closed as soon as it is
	// accepted. Default none: a sidecar's listener sees every connection
	// come from its own workload's address.
	MaxConnectionsPerSource int `yaml:"max_connections_per_source" json:"max_connections_per_source,omitempty"`
	// BodyIdleTimeout ends a request whose body sends nothing for this
	// long (408). Default none: the route's timeout bounds the request.
	BodyIdleTimeout Duration `yaml:"body_idle_timeout" json:"body_idle_timeout,omitempty"`
}

// Route sends matching requests to a cluster.
type Route struct {
	// Name labels the route in metrics. Default: "<listener>/<index>".
	Name  string `yaml:"name" json:"name"`
	Match Match  `yaml:"match" json:"match"`
	// Cluster is the name of the destination cluster.
	Cluster string `yaml:"cluster" json:"cluster"`
	// Timeout bounds the whole request, from routing to the end of the
	// response. A gRPC request's grpc-timeout shortens it further. 0 means
	// the default of 15s; a negative value disables the route timeout.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// RequestHeaders edits the request before it is forwarded.
	RequestHeaders HeaderOps `yaml:"request_headers" json:"request_headers"`
	// Retry retries failed attempts; absent means no retries.
	Retry *Retry `yaml:"retry" json:"retry,omitempty"`
}

// Retry is a route's retry policy. Retries are bounded by the cluster's
// retry budget, and a request whose body outgrew BufferLimit is not
// retried.
type Retry struct {
	// Attempts is the most attempts per request, the first included.
	// Default 2.
	Attempts int `yaml:"attempts" json:"attempts"`
	// On lists the failures retried: connect-failure, reset (including a
	// per-try timeout), 503, unavailable (gRPC UNAVAILABLE). Default
	// connect-failure, reset, unavailable.
	On []string `yaml:"on" json:"on"`
	// PerTryTimeout bounds each attempt; 0 leaves only the route timeout.
	PerTryTimeout Duration `yaml:"per_try_timeout" json:"per_try_timeout,omitempty"`
	// Backoff shapes the fully jittered wait before each retry.
	Backoff Backoff `yaml:"backoff" json:"backoff"`
	// BufferLimit is how many request body bytes are kept for replay.
	// Default 65536.
	BufferLimit int `yaml:"buffer_limit" json:"buffer_limit"`
}

// Backoff is the wait before retry n: uniform in [0, min(Max, Base·(2^n−1))].
type Backoff struct {
	// Base defaults to 25ms.
	Base Duration `yaml:"base" json:"base"`
	// Max defaults to 10×Base.
	Max Duration `yaml:"max" json:"max"`
}

// Match selects requests. Every condition that is set must hold.
type Match struct {
	// Authority is an exact host (without port), "*.suffix" for any
	// subdomain, or "*" / empty for any.
	Authority string `yaml:"authority" json:"authority,omitempty"`
	// Path matches the whole path exactly.
	Path string `yaml:"path" json:"path,omitempty"`
	// PathPrefix matches a path prefix.
	PathPrefix string `yaml:"path_prefix" json:"path_prefix,omitempty"`
	// Headers all must match.
	Headers []HeaderMatch `yaml:"headers" json:"headers,omitempty"`
	// GRPCService matches gRPC requests (content-type application/grpc*)
	// to this fully qualified service, for example grpc.testing.TestService.
	GRPCService string `yaml:"grpc_service" json:"grpc_service,omitempty"`
	// GRPCMethod narrows GRPCService to one method.
	GRPCMethod string `yaml:"grpc_method" json:"grpc_method,omitempty"`
	// SourceIdentity matches the caller's verified SPIFFE ID (listeners
	// with tls.client_ca_file): an exact ID, a prefix followed by "*", or
	// "*" for any authenticated caller.
	SourceIdentity string `yaml:"source_identity" json:"source_identity,omitempty"`
}

// HeaderMatch is one header condition: exactly one of Exact, Regex and
// Present is set. Present: false matches requests without the header.
type HeaderMatch struct {
	Name    string `yaml:"name" json:"name"`
	Exact   string `yaml:"exact" json:"exact,omitempty"`
	Regex   string `yaml:"regex" json:"regex,omitempty"`
	Present *bool  `yaml:"present" json:"present,omitempty"`
}

// HeaderOps adds and removes request headers. Removal happens first.
type HeaderOps struct {
	Add    map[string]string `yaml:"add" json:"add,omitempty"`
	Remove []string          `yaml:"remove" json:"remove,omitempty"`
}

// Cluster is a set of endpoints and how to reach them.
type Cluster struct {
	Name string `yaml:"name" json:"name"`
	// Protocol towards endpoints: http1, h2c or same. Default same.
	Protocol string   `yaml:"protocol" json:"protocol"`
	Balancer Balancer `yaml:"balancer" json:"balancer"`
	// Endpoints are host:port addresses, fixed for the proxy's lifetime.
	// Exactly one of Endpoints, EndpointsFile, Kubernetes and OriginalDst
	// is set.
	Endpoints []string `yaml:"endpoints" json:"endpoints,omitempty"`
	// Weights gives endpoints a weight for weighted_round_robin (default
	// 1), by address.
	Weights map[string]int `yaml:"weights" json:"weights,omitempty"`
	// EndpointsFile reads the endpoints from a file that is watched and
	// re-applied when it changes.
	EndpointsFile *EndpointsFile `yaml:"endpoints_file" json:"endpoints_file,omitempty"`
	// Kubernetes follows the EndpointSlices of a Service.
	Kubernetes *KubernetesEndpoints `yaml:"kubernetes" json:"kubernetes,omitempty"`
	// OriginalDst takes each request's endpoint from a request header
	// instead of a balancer: the receiving side of Via (a node proxy
	// delivering to the pod the sender chose). It is an endpoint source of
	// its own and leaves Balancer at its default.
	OriginalDst *OriginalDst `yaml:"original_dst" json:"original_dst,omitempty"`
	// Via sends requests for some endpoints through a gateway: the
	// balancer picks the endpoint, the connection goes to the gateway, and
	// the endpoint travels in a header (daemonset topology: the node proxy
	// of the chosen pod's node). It needs an endpoint source.
	Via *Via `yaml:"via" json:"via,omitempty"`
	// OutlierDetection ejects failing endpoints; absent means off.
	OutlierDetection *OutlierDetection `yaml:"outlier_detection" json:"outlier_detection,omitempty"`
	// RetryBudget bounds the retries of the routes that use the cluster.
	RetryBudget RetryBudget `yaml:"retry_budget" json:"retry_budget"`
	// ConnectTimeout bounds dialing an endpoint. Default 1s.
	ConnectTimeout Duration `yaml:"connect_timeout" json:"connect_timeout"`
	Pool           Pool     `yaml:"pool" json:"pool"`
	// TLS, when set, speaks mTLS to the endpoints (see UpstreamTLS).
	TLS *UpstreamTLS `yaml:"tls" json:"tls,omitempty"`
}

// EndpointsFile is a watched file of endpoints (see docs/discovery.md).
type EndpointsFile struct {
	Path string `yaml:"path" json:"path"`
	// PollInterval is how often the file is checked. Default 1s.
	PollInterval Duration `yaml:"poll_interval" json:"poll_interval"`
}

// Via routes endpoints through gateways.
type Via struct {
	// Header carries the chosen endpoint. Default X-Meshbench-Dst.
	Header string `yaml:"header" json:"header"`
	// Gateways maps an endpoint address to the address to connect to
	// instead; endpoints not listed are reached directly. Connections are
	// pooled per address dialed, so the endpoints behind one gateway share
	// its connections.
	Gateways map[string]string `yaml:"gateways" json:"gateways"`
}

// OriginalDst is an endpoint source that reads the destination from a
// header set by the sending proxy (see Via). The header is removed before
// the request is forwarded.
type OriginalDst struct {
	// Header names the destination. Default X-Meshbench-Dst.
	Header string `yaml:"header" json:"header"`
	// Allowed lists the destinations this proxy may deliver to; any other
	// value is refused (403, gRPC PERMISSION_DENIED). Required: a node
	// proxy delivers only to the pods of its node.
	Allowed []string `yaml:"allowed" json:"allowed"`
}

// DefaultDstHeader is the default header of Via and OriginalDst.
const DefaultDstHeader = "X-Meshbench-Dst"

// KubernetesEndpoints names the Service whose ready EndpointSlice addresses
// are the cluster's endpoints, as the discovery server (Config's
// DiscoveryServer) sees them.
type KubernetesEndpoints struct {
	Namespace string `yaml:"namespace" json:"namespace"`
	Service   string `yaml:"service" json:"service"`
	// Port is the EndpointSlice port name; empty takes the only port.
	Port string `yaml:"port" json:"port,omitempty"`
}

// OutlierDetection ejects endpoints after runs of failures (see
// proxy/outlier). Zero values take the defaults.
type OutlierDetection struct {
	// Consecutive5xx defaults to 5; -1 disables.
	Consecutive5xx int `yaml:"consecutive_5xx" json:"consecutive_5xx"`
	// ConsecutiveGatewayFailure (502, 503, 504, no response) defaults to
	// 5; -1 disables.
	ConsecutiveGatewayFailure int `yaml:"consecutive_gateway_failure" json:"consecutive_gateway_failure"`
	// BaseEjectionTime defaults to 30s; it doubles with each ejection in a
	// row.
	BaseEjectionTime Duration `yaml:"base_ejection_time" json:"base_ejection_time"`
	// MaxEjectionTime defaults to 300s.
	MaxEjectionTime Duration `yaml:"max_ejection_time" json:"max_ejection_time"`
	// MaxEjectionPercent defaults to 10; one endpoint can always be
	// ejected.
	MaxEjectionPercent int `yaml:"max_ejection_percent" json:"max_ejection_percent"`
}

// RetryBudget caps concurrent retries at max(MinConcurrency, Ratio × active
// requests) (see proxy/retry).
type RetryBudget struct {
	// Ratio defaults to 0.2.
	Ratio float64 `yaml:"ratio" json:"ratio"`
	// MinConcurrency defaults to 3.
	MinConcurrency int `yaml:"min_concurrency" json:"min_concurrency"`
}

// Balancer picks the endpoint of each request.
type Balancer struct {
	// Policy is the algorithm: peak_ewma (default), round_robin,
	// weighted_round_robin, random, least_request, ring_hash or maglev.
	Policy string `yaml:"policy" json:"policy"`
	// ChoiceCount is how many endpoints least_request compares (default 2).
	ChoiceCount int `yaml:"choice_count" json:"choice_count,omitempty"`
	// FullScan makes least_request compare every endpoint.
	FullScan bool `yaml:"full_scan" json:"full_scan,omitempty"`
	// Decay is peak_ewma's decay time (default 10s).
	Decay Duration `yaml:"decay" json:"decay,omitempty"`
	// DefaultRTT is peak_ewma's estimate for endpoints not yet measured
	// (default 30ms).
	DefaultRTT Duration `yaml:"default_rtt" json:"default_rtt,omitempty"`
	// HashHeader names the request header ring_hash and maglev hash on;
	// empty hashes on the client's address.
	HashHeader string `yaml:"hash_header" json:"hash_header,omitempty"`
	// MinRingSize is ring_hash's minimum ring size (default 1024).
	MinRingSize int `yaml:"min_ring_size" json:"min_ring_size,omitempty"`
	// TableSize is maglev's lookup table size, a prime (default 65537).
	TableSize int `yaml:"table_size" json:"table_size,omitempty"`
}

// Picker returns the balancer package's configuration of the block (its
// validation and its pickers take it).
func (b Balancer) Picker() balancer.Config {
	return balancer.Config{Policy: b.Policy, ChoiceCount: b.ChoiceCount, FullScan: b.FullScan,
		Decay: b.Decay.D(), DefaultRTT: b.DefaultRTT.D(), MinRingSize: b.MinRingSize, TableSize: b.TableSize}
}

// Pool bounds the upstream connections of a cluster, per endpoint: per
// address dialed, so with Via per gateway for the endpoints behind one.
type Pool struct {
	// MaxConnsPerEndpoint caps connections (idle and active) to one
	// endpoint (or gateway); requests beyond it wait for a free connection
	// within their timeout. Default DefaultMaxConnsPerEndpoint; -1 removes
	// the cap.
	MaxConnsPerEndpoint int `yaml:"max_conns_per_endpoint" json:"max_conns_per_endpoint"`
	// MaxIdlePerEndpoint is how many idle HTTP/1.1 connections are kept
	// per endpoint. Default 256.
	MaxIdlePerEndpoint int `yaml:"max_idle_per_endpoint" json:"max_idle_per_endpoint"`
	// IdleTimeout closes upstream connections idle this long. Default 90s.
	IdleTimeout Duration `yaml:"idle_timeout" json:"idle_timeout"`
}

// Duration is a time.Duration written as "250ms", "2s" or "1m30s" in YAML
// and JSON.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return errNotDuration
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// JSON returns the configuration as indented JSON, as served on /config.
func (c *Config) JSON() ([]byte, error) { return json.MarshalIndent(c, "", "  ") }

// Redacted is the value a header edit shows in Redacted's copy.
const Redacted = "[redacted]"

// Redacted returns a copy of c whose request header values (a route may
// add a credential, such as an Authorization header) read Redacted.
func (c *Config) Redacted() *Config {
	out := *c
	out.Listeners = make([]Listener, len(c.Listeners))
	for i, l := range c.Listeners {
		l.Routes = make([]Route, len(l.Routes))
		for j, r := range c.Listeners[i].Routes {
			if len(r.RequestHeaders.Add) > 0 {
				add := make(map[string]string, len(r.RequestHeaders.Add))
				for k := range r.RequestHeaders.Add {
					add[k] = Redacted
				}
				r.RequestHeaders.Add = add
			}
			l.Routes[j] = r
		}
		out.Listeners[i] = l
	}
	return &out
}

// Warnings lists what a valid configuration does that is seldom meant:
// an admin server reachable from beyond the host.
func (c *Config) Warnings() []string {
	var w []string
	if c.Admin != "" && !loopback(c.Admin) {
		what := "/metrics and /ready"
		if c.AdminDebug {
			what = "/metrics, /ready, /config and /debug/pprof/"
		}
		w = append(w, fmt.Sprintf("admin: %q is not a loopback address: %s are served to anyone who can reach it", c.Admin, what))
	}
	return w
}

// loopback reports whether a host:port listens on loopback only.
func loopback(hostPort string) bool {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

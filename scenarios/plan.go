package scenarios

import (
	"slices"
	"time"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/reports/result"
)

// Topologies.
const (
	Baseline      = "baseline"       // no proxy: the client talks to the pods
	Sidecar       = "sidecar"        // client sidecar -> server sidecar -> app
	DaemonSet     = "daemonset"      // client's node proxy -> server's node proxy -> app
	ClientSidecar = "client-sidecar" // client sidecar -> app
	ServerSidecar = "server-sidecar" // client -> server sidecar -> app
)

// Well-known ports of a pod (each pod has its own address) and of a node
// proxy (on the node's address).
const (
	PortHTTP     = 8080 // the app's HTTP/1.1 + h2c port
	PortGRPC     = 9090 // the app's gRPC port
	PortOutbound = 4140 // a proxy's outbound listener
	PortInbound  = 4143 // a proxy's inbound listener
	PortAdmin    = 9901 // a proxy's admin listener
)

// Plan is a cell made concrete: what runs where and how it is wired. It is
// platform-neutral: every address in it (the proxies' configurations, the
// load's targets) is a reference to a pod, a node or a service (Ref), which
// each platform resolves when it renders the configuration of one process
// (RenderConfig, ResolveTarget).
type Plan struct {
	Scenario string
	Cell     result.Cell
	// Topology is the cell's topology (baseline, sidecar, ...).
	Topology string
	// ProxyImpl is the proxy implementation the proxies run ("reference",
	// a build of it such as "reference@base" (see ReferenceBuild), or a
	// peer's name), or "none" for a baseline cell.
	ProxyImpl string
	Nodes     []Node
	Pods      []Pod
	// Proxies lists every proxy instance: sidecars and node proxies.
	Proxies []Proxy
	Load    LoadPlan
	// Events change backends during the measured part; the platform
	// applies them.
	Events []Event
	// Initial are the cell's degradations in place from the start: already
	// in the pods' Backend, listed so that results can name the degraded
	// pods.
	Initial []Event
	// MTLS is the cell's mTLS setting, MTLSOff or MTLSOn.
	MTLS string
	// Identities are the services that need a workload certificate in this
	// cell, "client" included; empty when mTLS is off. The platform issues
	// them (and the CA) into CertsDir below the proxies' working
	// directory: the proxy configurations name the files by relative
	// paths (CAFile, CertFile, KeyFile).
	Identities []string
	// TrustDomain and Namespace make up the services' SPIFFE IDs
	// (spiffe://<trust domain>/ns/<namespace>/sa/<service>); empty when
	// mTLS is off.
	TrustDomain string
	Namespace   string
	// Kubernetes are the scenario's settings for Kubernetes platforms.
	Kubernetes KubernetesSettings
}

// Node is one machine of the simulated cluster.
type Node struct {
	Name string // node-0, node-1, ...
}

// Pod is one replica of a service.
type Pod struct {
	Name    string // <service>-<replica>
	Service string
	Replica int
	Node    string
	// Backend is the app's personality; nil for the load generator's pod.
	Backend *BackendSpec
	// Sidecar names the pod's sidecar proxy in Plan.Proxies, or is empty.
	Sidecar string
}

// BackendSpec is a backend's personality (see package backends).
type BackendSpec struct {
	Latency      string  `yaml:"latency" json:"latency,omitempty"`
	ErrorRate    float64 `yaml:"error_rate" json:"error_rate,omitempty"`
	ResponseSize int     `yaml:"response_size" json:"response_size,omitempty"`
	Concurrency  int     `yaml:"concurrency" json:"concurrency,omitempty"`
}

// Proxy is one proxy instance and its configuration.
type Proxy struct {
	Name string // sidecar-<pod> or node-<n>
	Kind string // sidecar or node
	Node string
	Pod  string // the pod of a sidecar; empty for a node proxy
	// Config is the proxy's configuration, with references for addresses:
	// its listeners and admin server on its own pod or node.
	Config *config.Config
}

// Proxy kinds.
const (
	KindSidecar = "sidecar"
	KindNode    = "node"
)

// LoadPlan is the load of a cell, from the client pod.
type LoadPlan struct {
	ClientPod string
	Protocol  string // http1, h2c or grpc
	// Targets are where the load generator connects, as references (a
	// URL's host for HTTP): the client's outbound proxy, or the
	// destination pods (or their inbound sidecars) when the client has no
	// proxy; connections are spread over them.
	Targets []string
	// Authority is the Host / :authority the requests carry: the service
	// name, which the proxies route on.
	Authority   string
	Rate        float64 // requests/s; 0 = closed loop
	Connections int
	Streams     int // per connection for h2c and gRPC
	Duration    time.Duration
	Warmup      time.Duration
	Timeout     time.Duration
	// Search, when set, looks for the highest rate meeting its objective;
	// Rate is then 0.
	Search *loadgen.SearchSpec
	// Mix, when set, is a mixed load: Protocol is loadgen.ProtocolMix,
	// Targets, Connections and Streams are empty, and Rate is the total
	// that the streams' shares divide.
	Mix []StreamPlan
	// NewConnectionPerRequest opens a connection for every request.
	NewConnectionPerRequest bool
	// Engine is the load engine, loadgen.EngineMeshbench (or empty) or
	// loadgen.EngineFortio.
	Engine string
	// Generators, when the load is shared by several load generators,
	// are where each runs and sends; empty for one generator (on the
	// client pod's node, to Targets). The platform gives each its share
	// of the rate and the connections (see platform.GeneratorLoads).
	Generators []GeneratorPlan
}

// GeneratorPlan is one of several load generators of a cell.
type GeneratorPlan struct {
	Name string // g0, g1, ...
	Node string
	// Targets are the generator's targets (its node's proxy in
	// daemonset); StreamTargets those of each stream of a mix.
	Targets       []string
	StreamTargets [][]string
}

// StreamPlan is one stream of a mixed load; its targets are references,
// as LoadPlan's.
type StreamPlan struct {
	Name, Protocol, GRPCMode string
	Targets                  []string
	Authority                string
	// Share is the stream's fraction of the load's Rate; Rate, when Share
	// is 0, its own.
	Share, Rate            float64
	Connections, Streams   int
	BodySize, ResponseSize int
}

// Event changes a backend's personality during the measured part.
type Event struct {
	At      time.Duration // from the start of the measured part
	Pod     string
	Backend BackendSpec
}

// Record is the event as applied at offset at from the start of the
// measured part, for a cell's result.
func (e Event) Record(at time.Duration) result.Event {
	return result.Event{AtMs: at.Milliseconds(), Pod: e.Pod, Latency: e.Backend.Latency,
		Concurrency: e.Backend.Concurrency, ErrorRate: e.Backend.ErrorRate}
}

// Protocols are the protocols of the load's requests: its own, or those
// of its streams, each once.
func (l LoadPlan) Protocols() []string {
	if len(l.Mix) == 0 {
		return []string{l.Protocol}
	}
	var out []string
	for _, st := range l.Mix {
		if !slices.Contains(out, st.Protocol) {
			out = append(out, st.Protocol)
		}
	}
	return out
}

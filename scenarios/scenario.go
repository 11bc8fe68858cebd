package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meshbench/meshbench/internal/yamlstrict"
	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/proxy/config"
)

// Defaults of a scenario file's fields left out.
const (
	DefaultNodes       = 1
	DefaultReplicas    = 1
	DefaultRepeats     = 1
	DefaultProtocol    = "http1"
	DefaultConnections = 16
	DefaultStreams     = 1
	DefaultDuration    = 10 * time.Second
	DefaultTimeout     = 5 * time.Second

	// DefaultQuickDuration and DefaultQuickWarmup cap the measured part and
	// the warmup under --quick when the quick block does not set them.
	DefaultQuickDuration = 3 * time.Second
	DefaultQuickWarmup   = 1 * time.Second
)

// Load protocols.
const (
	ProtoHTTP1 = "http1"
	ProtoH2C   = "h2c"
	ProtoGRPC  = "grpc"
)

// Scenario is a parsed and validated scenario file: the simulated cluster
// (nodes, services and their backends), named degradations, the load, and
// the matrix of variants to compare. A Scenario is not changed after
// Parse; its methods are safe for concurrent use.
type Scenario struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Repeats is how often every variant runs (default 1).
	Repeats int `yaml:"repeats"`
	// Nodes is the number of simulated nodes (default 1).
	Nodes    int       `yaml:"nodes"`
	Services []Service `yaml:"services"`
	// Degradations are named lists of backend changes; "none" (no change)
	// is built in.
	Degradations map[string][]Change `yaml:"degradations"`
	Load         LoadSettings        `yaml:"load"`
	Matrix       Matrix              `yaml:"matrix"`
	// Quick overrides the load and the repeats under --quick.
	Quick Quick `yaml:"quick"`
	// ProxyConfig adds optional resilience settings to the generated
	// proxy configurations.
	ProxyConfig ProxyConfig `yaml:"proxy_config"`
	// Kubernetes holds settings that apply on the kind and kube platforms
	// only.
	Kubernetes KubernetesSettings `yaml:"kubernetes"`

	// File is where the scenario was read from ("scenarios/<name>.yaml"
	// for a built-in).
	File string `yaml:"-"`

	dims []dimension // the run's dimensions, in the file's order
}

// Service is a set of identical replicas of one backend.
type Service struct {
	Name     string      `yaml:"name"`
	Replicas int         `yaml:"replicas"` // default 1
	Backend  BackendSpec `yaml:"backend"`
	// ReplicaOverrides maps a replica index ("4") to the backend fields
	// that differ for that replica; fields left zero keep the service's.
	ReplicaOverrides map[string]BackendSpec `yaml:"replica_overrides"`
	// Nodes lists the nodes its replicas run on: replica i goes on
	// Nodes[i % len(Nodes)]. Empty means every node (replica i on node
	// i % nodes).
	Nodes []int `yaml:"nodes"`
}

// Change is one event of a degradation: a replica's (or, without a
// replica, every replica's) backend fields change at At.
type Change struct {
	Service string `yaml:"service"`
	// Replica is the replica index; absent means every replica.
	Replica *int `yaml:"replica"`
	// At is the offset from the start of the measured part; 0 applies the
	// change before the load starts.
	At time.Duration `yaml:"at"`
	// Backend holds the fields that change; fields left zero keep their
	// value.
	Backend BackendSpec `yaml:"backend"`
}

// LoadSettings describe the load of every cell (the load block).
type LoadSettings struct {
	// Service is the destination (the requests' authority); default the
	// only service.
	Service string `yaml:"service"`
	// ClientNode is the node of the load generator's pod (default 0).
	ClientNode int `yaml:"client_node"`
	// Protocol is http1, h2c or grpc (default http1); the protocol
	// dimension overrides it.
	Protocol string `yaml:"protocol"`
	// RateSpec is load.rate as written: one rate, a sweep, or a search.
	RateSpec *RateSpec `yaml:"rate"`
	// Rate is the total requests per second; Rates instead makes a sweep
	// (a "rate" dimension), and Search looks for the highest rate that
	// meets an objective. Exactly one is set (from RateSpec, or rates).
	Rate   float64             `yaml:"-"`
	Rates  []float64           `yaml:"rates"`
	Search *loadgen.SearchSpec `yaml:"-"`
	// Mix, when set, is a mixed load: its streams run at the same time
	// through the same proxies, each with its own protocol, service,
	// share of the rate (or own rate) and sizes. Protocol is not used
	// then.
	Mix []StreamSettings `yaml:"mix"`
	// Shares are named sets of the streams' shares of the rate, by stream
	// name; the mix dimension chooses one per cell.
	Shares map[string]map[string]Fraction `yaml:"shares"`
	// NewConnectionPerRequest opens a connection (and a TLS handshake, to
	// a TLS target) for every request: HTTP/1.1 only.
	NewConnectionPerRequest bool `yaml:"new_connection_per_request"`
	// Generators is how many load generators share the load (default 1):
	// generator i runs on node (client_node + i) mod nodes, all on one
	// schedule, each with its share of the rate and of the connections;
	// their histograms are merged into the cell's result.
	Generators int `yaml:"generators"`
	// Connections is the number of connections (default 16); without a
	// client proxy they are spread round robin over the destination pods.
	Connections int `yaml:"connections"`
	// Streams is the concurrent requests per connection for h2c and grpc
	// (default 1); http1 always uses 1.
	Streams  int           `yaml:"streams"`
	Duration time.Duration `yaml:"duration"` // measured part, default 10s
	Warmup   time.Duration `yaml:"warmup"`   // unrecorded load before it, default 0
	Timeout  time.Duration `yaml:"timeout"`  // per request and route timeout, default 5s
}

// Quick holds the overrides of --quick; fields left out keep the load's,
// except Duration and Warmup, which default to at most
// DefaultQuickDuration and DefaultQuickWarmup, and Repeats, which
// defaults to 1.
type Quick struct {
	Service     string         `yaml:"service"`
	ClientNode  *int           `yaml:"client_node"`
	Protocol    string         `yaml:"protocol"`
	Rate        *RateSpec      `yaml:"rate"`
	Rates       []float64      `yaml:"rates"`
	Connections *int           `yaml:"connections"`
	Streams     *int           `yaml:"streams"`
	Duration    *time.Duration `yaml:"duration"`
	Warmup      *time.Duration `yaml:"warmup"`
	Timeout     *time.Duration `yaml:"timeout"`
	Repeats     *int           `yaml:"repeats"`
}

// ProxyConfig is resilience configuration copied into every balancing
// route and cluster of the generated proxy configurations (the client's
// outbound proxy, or the node proxies' outbound listener). Both are off
// when absent.
type ProxyConfig struct {
	Retry            *config.Retry            `yaml:"retry"`
	OutlierDetection *config.OutlierDetection `yaml:"outlier_detection"`
}

// KubernetesSettings apply when cells run on Kubernetes.
type KubernetesSettings struct {
	// ProxyResources are the requests and limits of every proxy
	// container; AppResources those of the backends' app containers.
	// Unset: none (the pods are BestEffort).
	ProxyResources ContainerResources `yaml:"proxy_resources"`
	AppResources   ContainerResources `yaml:"app_resources"`
}

// ContainerResources are a container's requests and limits.
type ContainerResources struct {
	Requests ResourceList `yaml:"requests"`
	Limits   ResourceList `yaml:"limits"`
}

// ResourceList is CPU and memory in Kubernetes quantities ("250m",
// "64Mi"); empty is unset.
type ResourceList struct {
	CPU    string `yaml:"cpu"`
	Memory string `yaml:"memory"`
}

// Matrix is the matrix block as written: the values of each dimension
// given, and the combinations to add or remove.
type Matrix struct {
	Topology    []string `yaml:"topology"`
	Proxy       []string `yaml:"proxy"`
	Balancer    []string `yaml:"balancer"`
	Protocol    []string `yaml:"protocol"`
	Degradation []string `yaml:"degradation"`
	MTLS        []string `yaml:"mtls"`
	// Mix chooses the shares of a mixed load: names of load.shares.
	Mix []string `yaml:"mix"`
	// Include adds combinations; a dimension left out takes its first
	// value.
	Include []map[string]string `yaml:"include"`
	// Exclude removes every combination that matches all keys of an entry.
	Exclude []map[string]string `yaml:"exclude"`
}

// Load reads and validates the scenario file at path.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse decodes and validates a scenario document; name is the file name
// used in errors and, without a name field, the scenario's name. The error,
// if any, lists every problem, each naming the file, the line and the
// field.
func Parse(name string, data []byte) (*Scenario, error) {
	var s Scenario
	pos, err := yamlstrict.Decode(name, data, &s)
	if err != nil {
		return nil, err
	}
	order, err := matrixOrder(data)
	if err != nil {
		return nil, fmt.Errorf("%s: reading the matrix order: %w", name, err)
	}
	s.File = name
	if s.Name == "" {
		s.Name = strings.TrimSuffix(filepath.Base(name), filepath.Ext(name))
	}
	s.setDefaults()
	v := &validator{file: name, pos: pos}
	v.scenario(&s, order)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &s, nil
}

func (s *Scenario) setDefaults() {
	if s.Repeats == 0 {
		s.Repeats = DefaultRepeats
	}
	if s.Nodes == 0 {
		s.Nodes = DefaultNodes
	}
	for i := range s.Services {
		if s.Services[i].Replicas == 0 {
			s.Services[i].Replicas = DefaultReplicas
		}
	}
	l := &s.Load
	if l.Service == "" && len(s.Services) == 1 {
		l.Service = s.Services[0].Name
	}
	if l.Protocol == "" {
		l.Protocol = DefaultProtocol
	}
	if l.Connections == 0 {
		l.Connections = DefaultConnections
	}
	if l.Streams == 0 {
		l.Streams = DefaultStreams
	}
	if l.Generators == 0 {
		l.Generators = 1
	}
	if l.Duration == 0 {
		l.Duration = DefaultDuration
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
}

// service returns the service named name, or nil.
func (s *Scenario) service(name string) *Service {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

// effectiveLoad is the load with --quick's overrides applied.
func (s *Scenario) effectiveLoad(quick bool) LoadSettings {
	l := s.Load
	if !quick {
		return l
	}
	q := s.Quick
	l.Duration = min(l.Duration, DefaultQuickDuration)
	l.Warmup = min(l.Warmup, DefaultQuickWarmup)
	if q.Service != "" {
		l.Service = q.Service
	}
	if q.ClientNode != nil {
		l.ClientNode = *q.ClientNode
	}
	if q.Protocol != "" {
		l.Protocol = q.Protocol
	}
	if r := q.Rate; r != nil {
		switch {
		case r.Search != nil:
			l.Rate, l.Search = 0, r.Search
		case r.Rates != nil:
			l.Rates = slices.Clone(r.Rates)
		default:
			l.Rate, l.Search = r.Rate, nil
		}
	}
	if q.Rates != nil {
		l.Rates = slices.Clone(q.Rates)
	}
	if q.Connections != nil {
		l.Connections = *q.Connections
	}
	if q.Streams != nil {
		l.Streams = *q.Streams
	}
	if q.Duration != nil {
		l.Duration = *q.Duration
	}
	if q.Warmup != nil {
		l.Warmup = *q.Warmup
	}
	if q.Timeout != nil {
		l.Timeout = *q.Timeout
	}
	return l
}

// RunRepeats returns the number of repeats of a run with options o: o's,
// else the quick block's under Quick (default 1), else the scenario's.
func (s *Scenario) RunRepeats(o CellOptions) int { return s.repeats(o) }

// repeats returns the number of repeats of a run with options o.
func (s *Scenario) repeats(o CellOptions) int {
	switch {
	case o.Repeats > 0:
		return o.Repeats
	case o.Quick && s.Quick.Repeats != nil:
		return *s.Quick.Repeats
	case o.Quick:
		return 1
	}
	return s.Repeats
}

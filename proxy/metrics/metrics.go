package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// LatencyBucketsMs are the bounds of response_latency_ms: sub-millisecond
// buckets for loopback work, then the classic service-mesh buckets.
var LatencyBucketsMs = []float64{0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000, 10000}

// Classifications of a response.
const (
	Success = "success"
	Failure = "failure"
)

// Metrics is the set of series of one proxy, registered on its own registry.
type Metrics struct {
	// Registry holds the proxy's series plus Go runtime and process
	// collectors; the admin server serves it on /metrics.
	Registry *prometheus.Registry

	requests  *prometheus.CounterVec
	responses *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	tcpOpen   *prometheus.GaugeVec
	tcpOpened *prometheus.CounterVec
	tcpRead   *prometheus.CounterVec
	tcpWrite  *prometheus.CounterVec
	h2Calm    *prometheus.CounterVec
	refused   *prometheus.CounterVec
}

// New creates and registers every series.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "request_total", Help: "Requests received, by route.",
		}, []string{"direction", "route", "cluster"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "response_total", Help: "Responses sent, by route, status and classification.",
		}, []string{"direction", "route", "cluster", "status_code", "grpc_status", "classification"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "response_latency_ms",
			Help:    "Time from receiving a request to the end of its response, in milliseconds.",
			Buckets: LatencyBucketsMs,
		}, []string{"direction", "route", "cluster", "status_code", "classification"}),
		tcpOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tcp_open_connections", Help: "Downstream connections currently open.",
		}, []string{"direction", "listener"}),
		tcpOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcp_open_total", Help: "Downstream connections accepted.",
		}, []string{"direction", "listener"}),
		tcpRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcp_read_bytes_total", Help: "Bytes read from downstream connections.",
		}, []string{"direction", "listener"}),
		tcpWrite: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcp_write_bytes_total", Help: "Bytes written to downstream connections.",
		}, []string{"direction", "listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tcp_refused_total", Help: "Downstream connections closed at accept because their source had max_connections_per_source open.",
		}, []string{"direction", "listener"}),
		h2Calm: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http2_abuse_goaway_total", Help: "Downstream HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM, by the abuse seen.",
		}, []string{"direction", "listener", "reason"}),
	}
	m.Registry.MustRegister(m.requests, m.responses, m.latency, m.tcpOpen, m.tcpOpened, m.tcpRead, m.tcpWrite, m.h2Calm, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Listener is the resolved connection series of one listener.
type Listener struct {
	Open, Opened, Read, Write interface{ Add(float64) }
	// Calmed counts HTTP/2 connections closed for abuse; its argument is
	// the reason (rapid_reset, settings_flood, ping_flood,
	// header_list_too_long).
	Calmed func(reason string)
	// Refused counts connections refused by the per-source limit.
	Refused interface{ Inc() }
}

// Listener returns the connection series of a listener.
func (m *Metrics) Listener(direction, name string) *Listener {
	return &Listener{
		Open:    m.tcpOpen.WithLabelValues(direction, name),
		Opened:  m.tcpOpened.WithLabelValues(direction, name),
		Read:    m.tcpRead.WithLabelValues(direction, name),
		Write:   m.tcpWrite.WithLabelValues(direction, name),
		Calmed:  func(reason string) { m.h2Calm.WithLabelValues(direction, name, reason).Inc() },
		Refused: m.refused.WithLabelValues(direction, name),
	}
}

// ClusterState is what a cluster reports at each scrape.
type ClusterState struct {
	Cluster string
	// RetryBudgetExhausted counts retries the cluster's budget refused.
	RetryBudgetExhausted uint64
	Endpoints            []EndpointState
}

// EndpointState is one endpoint's counters and gauges at a scrape.
type EndpointState struct {
	Addr      string
	Requests  uint64 // attempts sent, retries included
	Retries   uint64 // attempts that were retries
	Active    int64  // attempts in flight
	Ejections uint64 // times ejected by outlier detection
	Ejected   bool
	// RTTEstimate is the peak-EWMA round-trip estimate; negative when the
	// cluster's policy keeps none.
	RTTEstimate time.Duration
}

var (
	descEndpointRequests = prometheus.NewDesc("upstream_requests_total", "Attempts sent to each endpoint, retries included.", []string{"cluster", "endpoint"}, nil)
	descEndpointRetries  = prometheus.NewDesc("upstream_retries_total", "Attempts sent to each endpoint that were retries.", []string{"cluster", "endpoint"}, nil)
	descEndpointActive   = prometheus.NewDesc("upstream_active_requests", "Attempts in flight to each endpoint.", []string{"cluster", "endpoint"}, nil)
	descEndpointEjects   = prometheus.NewDesc("upstream_ejections_total", "Times each endpoint was ejected by outlier detection.", []string{"cluster", "endpoint"}, nil)
	descEndpointEjected  = prometheus.NewDesc("upstream_ejected", "1 while the endpoint is ejected, else 0.", []string{"cluster", "endpoint"}, nil)
	descEndpointRTT      = prometheus.NewDesc("upstream_rtt_estimate_ms", "The peak-EWMA round-trip estimate of each endpoint, in milliseconds.", []string{"cluster", "endpoint"}, nil)
	descBudgetExhausted  = prometheus.NewDesc("upstream_retry_budget_exhausted_total", "Retries refused by the cluster's retry budget.", []string{"cluster"}, nil)
)

// clusterCollector turns ClusterStates into series at scrape time, so the
// series follow the endpoint set as discovery changes it: an endpoint that
// left the cluster leaves the exposition.
type clusterCollector struct{ states func() []ClusterState }

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descEndpointRequests, descEndpointRetries, descEndpointActive, descEndpointEjects, descEndpointEjected, descEndpointRTT, descBudgetExhausted} {
		ch <- d
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cs := range c.states() {
		ch <- prometheus.MustNewConstMetric(descBudgetExhausted, prometheus.CounterValue, float64(cs.RetryBudgetExhausted), cs.Cluster)
		for _, e := range cs.Endpoints {
			ch <- prometheus.MustNewConstMetric(descEndpointRequests, prometheus.CounterValue, float64(e.Requests), cs.Cluster, e.Addr)
			ch <- prometheus.MustNewConstMetric(descEndpointRetries, prometheus.CounterValue, float64(e.Retries), cs.Cluster, e.Addr)
			ch <- prometheus.MustNewConstMetric(descEndpointActive, prometheus.GaugeValue, float64(e.Active), cs.Cluster, e.Addr)
			ch <- prometheus.MustNewConstMetric(descEndpointEjects, prometheus.CounterValue, float64(e.Ejections), cs.Cluster, e.Addr)
			ejected := 0.0
			if e.Ejected {
				ejected = 1
			}
			ch <- prometheus.MustNewConstMetric(descEndpointEjected, prometheus.GaugeValue, ejected, cs.Cluster, e.Addr)
			if e.RTTEstimate >= 0 {
				ch <- prometheus.MustNewConstMetric(descEndpointRTT, prometheus.GaugeValue, float64(e.RTTEstimate)/float64(time.Millisecond), cs.Cluster, e.Addr)
			}
		}
	}
}

// WatchClusters registers the per-endpoint series; states is called at
// every scrape and must be safe for concurrent use.
func (m *Metrics) WatchClusters(states func() []ClusterState) {
	m.Registry.MustRegister(clusterCollector{states: states})
}

// Route is the resolved request and response series of one route. Response
// series are resolved on first use of each (status, gRPC status) pair and
// cached.
type Route struct {
	m                         *Metrics
	direction, route, cluster string
	requests                  prometheus.Counter
	cache                     sync.Map // uint32(status<<8 | grpc+1) -> *responseSeries
}

type responseSeries struct {
	responses prometheus.Counter
	latency   prometheus.Observer
}

// Route returns the series of a route; cluster may be empty for requests
// that matched no route.
func (m *Metrics) Route(direction, route, cluster string) *Route {
	return &Route{m: m, direction: direction, route: route, cluster: cluster,
		requests: m.requests.WithLabelValues(direction, route, cluster)}
}

// Request counts a request received on the route.
func (r *Route) Request() { r.requests.Inc() }

// Response records a finished response. grpcStatus is -1 for non-gRPC
// responses. A response is a failure when its status is 5xx, when it carries
// a gRPC status other than OK, or when there was no response at all
// (status 0, counted as status_code "0").
func (r *Route) Response(status, grpcStatus int, latency time.Duration) {
	key := uint32(status)<<8 | uint32(grpcStatus+1)&0xff
	v, ok := r.cache.Load(key)
	if !ok {
		class := Success
		if status == 0 || status >= 500 || grpcStatus > 0 {
			class = Failure
		}
		g := ""
		if grpcStatus >= 0 {
			g = strconv.Itoa(grpcStatus)
		}
		code := strconv.Itoa(status)
		v, _ = r.cache.LoadOrStore(key, &responseSeries{
			responses: r.m.responses.WithLabelValues(r.direction, r.route, r.cluster, code, g, class),
			latency:   r.m.latency.WithLabelValues(r.direction, r.route, r.cluster, code, class),
		})
	}
	s := v.(*responseSeries)
	s.responses.Inc()
	s.latency.Observe(float64(latency) / float64(time.Millisecond))
}

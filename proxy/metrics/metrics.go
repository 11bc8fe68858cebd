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

	requests    *prometheus.CounterVec
	responses   *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	tcpOpen     *prometheus.GaugeVec
	tcpOpened   *prometheus.CounterVec
	tcpRead     *prometheus.CounterVec
	tcpWrite    *prometheus.CounterVec
	upstreamReq *prometheus.CounterVec
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
		upstreamReq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "upstream_requests_total", Help: "Requests sent to each endpoint.",
		}, []string{"cluster", "endpoint"}),
	}
	m.Registry.MustRegister(m.requests, m.responses, m.latency, m.tcpOpen, m.tcpOpened, m.tcpRead, m.tcpWrite, m.upstreamReq,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Listener is the resolved connection series of one listener.
type Listener struct {
	Open, Opened, Read, Write interface{ Add(float64) }
}

// Listener returns the connection series of a listener.
func (m *Metrics) Listener(direction, name string) *Listener {
	return &Listener{
		Open:   m.tcpOpen.WithLabelValues(direction, name),
		Opened: m.tcpOpened.WithLabelValues(direction, name),
		Read:   m.tcpRead.WithLabelValues(direction, name),
		Write:  m.tcpWrite.WithLabelValues(direction, name),
	}
}

// Endpoint returns the request counter of one endpoint of a cluster.
func (m *Metrics) Endpoint(cluster, addr string) prometheus.Counter {
	return m.upstreamReq.WithLabelValues(cluster, addr)
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

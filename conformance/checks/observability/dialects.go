package observability

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/peers"
)

// dialect is how one proxy's Prometheus series answer the checks'
// questions: the PromQL of each, and why a question has no answer there.
// Every query takes rng, a PromQL range covering exactly the check's
// traffic, and is evaluated at the end of that range.
type dialect struct {
	// routeLabel is the label that tells routes apart in the per-route
	// queries' results; routeValue is its value for a route of the
	// check's configuration and the cluster the route sends to.
	routeLabel string
	routeValue func(route, cluster string) string
	// requests is the requests each route received over rng.
	requests func(rng string) string
	// success is each route's share of responses that were not 5xx (and
	// not missing) over rng, 0 to 1.
	success func(rng string) string
	// p99 is each route's 99th latency percentile over rng, in
	// latencyUnit; buckets lists the latency histogram's buckets (their
	// le labels) in the same unit.
	p99, buckets func(rng string) string
	latencyUnit  time.Duration
	// endpointLabel tells endpoints apart in endpoints' result;
	// endpointValue is its value for the i-th endpoint (address addr)
	// of the cluster.
	endpointLabel string
	endpoints     func(route, cluster, rng string) string
	endpointValue func(i int, addr string) string
	// unsupported gives, by check ID, why the proxy's metrics cannot
	// answer that check's question.
	unsupported map[string]string
}

// Check IDs, the keys of dialect.unsupported.
const (
	idRouteRequestRate = "observability/route-request-rate"
	idRouteSuccessRate = "observability/route-success-rate"
	idRouteP99         = "observability/route-p99"
	idEndpointSeries   = "observability/endpoint-series"
)

// dialects is the table of the proxies whose series the checks know, by
// target name. A target without an entry (a deliberately broken target,
// an unknown proxy) ends each check unsupported once its metrics URL is
// known; nginx has no Prometheus endpoint at all.
func dialects() map[string]dialect {
	return map[string]dialect{
		// The reference proxy: proxy/metrics.
		conformance.NameReference: {
			routeLabel: "route",
			routeValue: func(route, _ string) string { return route },
			requests: func(rng string) string {
				return fmt.Sprintf(`sum by (route) (increase(request_total[%s]))`, rng)
			},
			success: func(rng string) string {
				return fmt.Sprintf(`sum by (route) (increase(response_total{classification="success"}[%[1]s])) / sum by (route) (increase(response_total[%[1]s]))`, rng)
			},
			p99: func(rng string) string {
				return fmt.Sprintf(`histogram_quantile(0.99, sum by (route, le) (increase(response_latency_ms_bucket[%s])))`, rng)
			},
			buckets: func(rng string) string {
				return fmt.Sprintf(`count by (le) (increase(response_latency_ms_bucket[%s]))`, rng)
			},
			latencyUnit:   time.Millisecond,
			endpointLabel: "endpoint",
			endpoints: func(_, cluster, rng string) string {
				return fmt.Sprintf(`sum by (endpoint) (increase(upstream_requests_total{cluster=%s}[%s]))`, strconv.Quote(cluster), rng)
			},
			endpointValue: func(_ int, addr string) string { return addr },
		},
		// HAProxy's Prometheus exporter. peers/haproxy.go gives each route
		// a backend of its own, be_<cluster>_<route>, whose servers are
		// s0, s1, ... in the cluster's endpoint order: the backend series
		// are per route, the server series per endpoint of a route.
		peers.NameHAProxy: {
			routeLabel: "proxy",
			routeValue: func(route, cluster string) string { return "be_" + haproxyIdent(cluster) + "_" + haproxyIdent(route) },
			requests: func(rng string) string {
				return fmt.Sprintf(`sum by (proxy) (increase(haproxy_backend_http_requests_total[%s]))`, rng)
			},
			success: func(rng string) string {
				return fmt.Sprintf(`sum by (proxy) (increase(haproxy_backend_http_responses_total{code!="5xx"}[%[1]s])) / sum by (proxy) (increase(haproxy_backend_http_responses_total[%[1]s]))`, rng)
			},
			endpointLabel: "server",
			endpoints: func(route, cluster, rng string) string {
				return fmt.Sprintf(`sum by (server) (increase(haproxy_server_http_responses_total{proxy=%s}[%s]))`,
					strconv.Quote("be_"+haproxyIdent(cluster)+"_"+haproxyIdent(route)), rng)
			},
			endpointValue: func(i int, _ string) string { return "s" + strconv.Itoa(i) },
			unsupported: map[string]string{
				idRouteP99: "HAProxy 2.6's Prometheus exporter has no latency histogram: per backend it exports only averages over the last 1024 requests " +
					"(haproxy_backend_response_time_average_seconds, ..._total_time_average_seconds) and maxima, from which no percentile can be computed",
			},
		},
		// Caddy 2.6.2 as peers/caddy.go configures it.
		peers.NameCaddy: {
			unsupported: map[string]string{
				idRouteRequestRate: caddyNoRoutes,
				idRouteSuccessRate: caddyNoRoutes,
				idRouteP99:         caddyNoRoutes,
				idEndpointSeries: "Caddy 2.6.2 counts no requests per upstream: its only upstream series is caddy_reverse_proxy_upstreams_healthy{upstream}, " +
					"a health gauge",
			},
		},
	}
}

// caddyNoRoutes is why Caddy cannot answer a per-route question.
const caddyNoRoutes = "Caddy 2.6.2's HTTP series (caddy_http_requests_total, caddy_http_request_duration_seconds_bucket) carry the labels server (the listener), " +
	"handler (reverse_proxy for every route), code and method, never the route"

// haproxyIdent is the name peers/haproxy.go makes of a route or cluster
// name in HAProxy's configuration (peers' ident): every character but
// ASCII letters, digits and _ becomes _.
func haproxyIdent(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, s)
}

// Package proxy is meshbench's reference proxy: it runs a config.Config
// directly. Each listener serves HTTP/1.1 and HTTP/2 (h2c with prior
// knowledge on cleartext listeners, ALPN h2 on TLS ones) and so gRPC, routes
// every request by the first matching route to a cluster, picks an endpoint
// with the cluster's balancer and forwards the request, streaming bodies in
// both directions and passing trailers through.
//
// Every request path is normalised (see package pathnorm) before routing
// and authorization, and forwarded normalised.
//
// The admin server serves Prometheus metrics (/metrics) and readiness
// (/ready), and with admin_debug the running configuration as JSON, header
// values redacted (/config), and the Go profiler (/debug/pprof/). Shutdown
// drains: listeners stop accepting,
// in-flight requests run to completion within a grace period, and what is
// left is closed.
package proxy

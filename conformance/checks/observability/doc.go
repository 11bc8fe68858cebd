// Package observability holds the observability profile's conformance
// checks: a real Prometheus server scrapes the proxy while a check sends
// it known traffic, and the proxy's per-route request rate, success ratio
// and p99 latency and its per-endpoint request counts, asked for in
// PromQL, must match what was sent. The PromQL of each proxy, and why a
// proxy's metrics cannot answer a question, is one table (dialects).
package observability

// Package proxymetrics reads the reference proxy's /metrics (proxy/metrics)
// for the platforms: a scrape parsed into metric families, and a proxy's
// account of a measured part (latency percentiles per direction, requests
// per endpoint, retries, ejections, handshakes) from the increase of its
// series between two scrapes.
package proxymetrics

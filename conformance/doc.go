// Package conformance runs named checks of what a service mesh needs from
// a proxy — protocols, routing, balancing, resilience, security,
// observability, lifecycle — against the reference proxy or a peer
// (nginx, HAProxy, Caddy, Envoy), each started on loopback through its
// peers adapter with real backends behind it.
//
// A check declares the capabilities it needs and ends pass, fail,
// unsupported (the proxy lacks what the check needs, with the adapter's
// reason; never counted as a pass), skipped (a tool the harness needs is
// missing) or config-only (the adapter translated the check's
// configuration but the proxy was not run). The checks themselves live in
// the packages under conformance/checks; conformance/suite lists them.
package conformance

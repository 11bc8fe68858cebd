// Package peers puts other proxies under the scenarios of the reference
// proxy: one Adapter per peer (nginx, HAProxy, Caddy, Envoy) turns the
// neutral proxy configuration a platform rendered (proxy/config, with
// every address resolved) into the peer's native configuration, its
// command line, its readiness check and where its metrics are.
//
// An adapter refuses, with a NotApplicable error naming the reason, a
// configuration or a traffic mix that needs something the peer does not
// have; the harness then reports the cell as n/a instead of running
// something else under the peer's name. docs/peers.md lists what each
// adapter sets for parity with the reference proxy and why.
package peers

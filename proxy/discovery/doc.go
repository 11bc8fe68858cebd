// Package discovery provides the sources of a cluster's endpoint set for the
// reference proxy: a fixed list (Static) and a YAML file that is watched
// for changes (File); the EndpointSlices of a Kubernetes Service are
// package kube's (proxy/discovery/kube).
//
// Every source implements Source. Its Run method delivers the complete
// current set, sorted by address and without duplicates, first as soon as it
// is known and then after every change, on one goroutine, until the context
// ends. A source never delivers the same set twice in a row, so a consumer
// can rebuild its balancer on every call. What a proxy does with a new set
// (keeping the state and pooled connections of endpoints that remain) is the
// consumer's business; see docs/discovery.md.
package discovery

// Package kube is the reference proxy's Kubernetes endpoint source: the
// EndpointSlices of one Service, followed through a client-go informer. It
// lives apart from package discovery so that what reads a configuration
// (proxy/config) does not link client-go.
package kube

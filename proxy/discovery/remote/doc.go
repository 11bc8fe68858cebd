// Package remote is the reference proxy's discovery protocol: a proxy asks a
// discovery server for the endpoint set of a Kubernetes Service's port
// instead of watching the Kubernetes API itself, as Linkerd's proxies ask its
// destination service and Envoy asks istiod.
//
// The protocol is one long-poll request:
//
//	GET /v1/endpoints?namespace=NS&service=S&port=P&version=V&wait=30s
//
// answered 200 with the set as JSON ({"version": N, "endpoints": [{"addr":
// "10.0.0.7:8080", "weight": 1}]}) as soon as the server's version differs
// from V (at once when V is empty and the set is known), 304 with no body
// when wait elapses first, 400 for a malformed request and 502 with the
// reason when the server cannot follow the Service (for example, its
// ServiceAccount may not list EndpointSlices).
//
// Follow is the proxy's side, a discovery.Source; Server is the server's
// side, which runs one discovery.Source per requested key (in `meshbench
// discovery`, package kube's EndpointSlices) and shares it between every
// proxy that asks. Keeping the Kubernetes client out of the proxy keeps
// client-go, and the memory its packages take, out of every sidecar.
package remote

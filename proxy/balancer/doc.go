// Package balancer chooses the endpoint of each request. Every algorithm is
// a small type behind one interface in the style of grpc-go's
// balancer.Picker: Pick returns the endpoint and, optionally, a Done callback
// that learns the outcome of the request, so that load is observed where the
// request finishes rather than guessed where it starts.
//
// New builds the picker a Config describes. The policies are peak_ewma (the
// default, used when Config.Policy is empty: power of two choices over a
// latency estimate × requests in flight, as Finagle and Linkerd 2),
// least_request (power of two choices, or more, over requests in flight),
// round_robin, weighted_round_robin (Envoy's earliest-deadline-first
// scheduler over Endpoint.Weight), random, and the consistent hashes
// ring_hash and maglev, which route by PickInfo.Key.
//
// Load state (requests in flight, the latency estimate) lives on the
// *Endpoint values, not in the picker: a picker is immutable over its
// endpoint set, and the caller rebuilds it when the set changes (discovery,
// outlier ejection), passing the same *Endpoint values, so what was learned
// about the endpoints that remain is kept. Randomised policies draw from
// Config.Rand, which tests set to a fixed seed. docs/balancing.md describes
// each algorithm, its parameters and when to choose it.
package balancer

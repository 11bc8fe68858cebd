// Package balancer chooses the endpoint of each request. Every algorithm is
// a small type behind one interface in the style of grpc-go's
// balancer.Picker: Pick returns the endpoint and, optionally, a Done callback
// that learns the outcome of the request, so that load is observed where the
// request finishes rather than guessed where it starts.
package balancer

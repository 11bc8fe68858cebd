// Package lifecycle holds the lifecycle profile's conformance checks: a
// proxy that drains gracefully on its stop signal, and a cluster whose
// endpoint set changes under load without losing requests.
package lifecycle

// Package balancing holds the balancing profile's conformance checks: how
// a cluster's balancer spreads requests over its endpoints (round robin
// evenly, least request away from a busy endpoint, a latency-aware policy
// away from a slow one) and how hash policies keep a key on one endpoint
// and move few keys when an endpoint leaves.
package balancing

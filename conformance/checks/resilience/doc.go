// Package resilience holds the resilience profile's conformance checks:
// how a proxy keeps requests succeeding when endpoints fail (retries on a
// 503, on a reset, after a per-try timeout), how it keeps retries from
// multiplying load during an outage (the cluster's retry budget), how it
// takes a failing endpoint out of service and back (outlier ejection),
// and which status it answers for each failure it cannot hide.
package resilience

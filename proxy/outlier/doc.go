// Package outlier ejects endpoints that keep failing: passive health
// checking in the manner of Envoy's outlier detection and Linkerd's failure
// accrual. An endpoint that returns a run of consecutive 5xx responses or
// gateway failures is taken out of its cluster's balancer for an ejection
// time that doubles with each ejection, never more than a maximum share of
// the cluster at once, and put back when the time is up.
package outlier

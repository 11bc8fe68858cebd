// Package retry holds the pieces of the proxy's retries that are not HTTP
// plumbing: which failures a route retries, the fully jittered exponential
// backoff between attempts, the cluster's retry budget that keeps retries
// from multiplying load during an outage, and a request body that can be
// replayed as long as it fits in a buffer.
package retry

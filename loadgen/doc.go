// Package loadgen generates HTTP/1.1, h2c, h2 (TLS) and gRPC load and
// measures it honestly.
//
// Open-loop load sends each request at its intended time, from a uniform or
// Poisson schedule, whether or not earlier requests have come back, and
// measures response time from that intended time: a stalled server shows up
// in the percentiles instead of silently lowering the rate (coordinated
// omission). The service time, from the moment the request actually left,
// is recorded beside it. Closed-loop load (Rate 0, "max") sends back to back
// on every connection and measures maximum throughput.
//
// Every worker records into its own HdrHistograms (1 µs to 60 s, 3
// significant digits); they are merged at the end, never averaged. A run
// produces a Result: achieved against requested rate (and, when the rate
// could not be sustained, why), percentiles, the encoded histograms, errors
// by class, per-backend counts and a per-second time series.
//
// A ResultServer serves a run's Status and, once it is done, its files over
// HTTP (meshbench load --serve), for a runner that cannot read the files:
// the load generator as a pod. The runner reads the same Status type.
package loadgen

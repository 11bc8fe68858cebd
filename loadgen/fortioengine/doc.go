// Package fortioengine re-measures a loadgen.Spec with fortio's own
// runners (fortio.org/fortio, used as a library) and writes meshbench's
// result schema, loadgen.Result with Engine "fortio".
//
// HTTP/1.1 load (http1) runs fortio's fast client, h2c and h2 its
// standard client with HTTP/2 (fhttp.NewClient), one client per fortio
// thread, each thread a connection; fortio's periodic runner paces the
// threads. gRPC load runs fortio's gRPC runner (fgrpc.RunGRPCTest) in its
// health-check mode: fortio's gRPC runner can call only the standard
// grpc.health.v1.Health/Check, its own fgrpc.PingServer, or a method it
// discovers by server reflection, so a target that serves none of them,
// such as meshbench's backends (grpc.testing.TestService only), cannot be
// measured by fortio and Run says so (ErrUnsupported).
//
// Every request is recorded as fortio measures it: fortio's runner calls
// an access logger (periodic.AccessLogger) around each call with the
// call's start and its duration, and the logger records that duration
// into per-thread HdrHistograms (1 µs to 60 s, 3 significant digits, as
// loadgen does), merged at the end. Fortio measures from the actual send:
// a thread that is still waiting for a response does not send the
// requests it was scheduled to send meanwhile, and catches up afterwards,
// so a stalled server lowers fortio's rate for a moment instead of raising
// its percentiles (coordinated omission). The result's service time is
// therefore the same as its response time.
//
// A Spec field that fortio cannot honour is an error naming the field,
// wrapping ErrUnsupported, never silently ignored. docs/loadgen.md ("fortio
// as a second engine") lists them and compares the two engines.
//
// Fortio logs through its own package-level logger (fortio.org/log);
// this package does not change its level.
package fortioengine

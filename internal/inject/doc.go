// Package inject builds meshproxy with a known regression in its forward
// path, to measure what the regression gate (meshbench gate) detects. The
// regression is compiled in by `go build -overlay` from a patched copy of
// proxy/forward.go and one added file, as a regressing commit would be:
// the proxy's own source has no hook for it, and a build without the
// overlay is the proxy as shipped.
//
// Two kinds, both a busy-wait for the amount per forwarded request and
// proxy: KindLatency in the request's path (that much latency, and that
// much CPU), KindCPU after the handler has returned, in a goroutine that
// first yields so that the rest of the exchange goes out (that much CPU,
// almost no latency). Sleeping instead of spinning does not give a
// latency of the amount: Go's timers round a sub-millisecond sleep up to
// about a millisecond on an idle runtime, and a nanosleep holds the
// proxy's only P (GOMAXPROCS=1) for the kernel's timer slack and wake-up
// on top of the amount, which queues every other request behind it.
package inject

// Package inject builds meshproxy with a known regression in its forward
// path, to measure what the regression gate (meshbench gate) detects. The
// regression is compiled in by `go build -overlay` from a patched copy of
// proxy/forward.go and one added file, as a regressing commit would be:
// the proxy's own source has no hook for it, and a build without the
// overlay is the proxy as shipped.
//
// Two kinds: KindCPU spins for a while in every request (CPU, and that
// much latency), KindLatency blocks the request's thread in nanosleep
// (latency, almost no CPU: the kernel's high-resolution timer, not Go's
// timers, whose sub-millisecond sleeps round up to about a millisecond).
package inject

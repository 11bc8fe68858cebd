// Package pace waits until a point in time, precisely. On virtual machines
// a Go timer often fires half a millisecond or more after its time, because
// waking an idle virtual CPU is slow. For a load generator that lateness
// becomes fake latency, and for a test backend a fake delay. Until sleeps
// on a timer until a short spin window before the target, then spins,
// yielding the processor between checks, until the target is reached.
package pace

// Package conformancetest runs conformance checks from Go tests: against
// the reference proxy (built from this checkout once per test binary),
// against the installed peers, and against deliberately broken setups, to
// show that each check passes where it should and fails where it must.
package conformancetest

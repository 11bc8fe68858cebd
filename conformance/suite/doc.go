// Package suite lists every conformance check, profile by profile, and
// runs the suite's child jobs (work a check must do in a process of its
// own).
package suite

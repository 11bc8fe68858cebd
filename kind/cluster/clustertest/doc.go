// Package clustertest holds what tests that need a kind cluster share:
// skip, or fail in CI, when kind is not available.
package clustertest

// Package discoverytest holds what the tests of the endpoint sources share:
// a recorder of the sets a Source delivers, a runner that checks Run ends
// with its context, and a concurrency-safe log buffer.
package discoverytest

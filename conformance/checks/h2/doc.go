// Package h2 holds the h2 profile's conformance checks: the proxy's
// HTTP/2 listener held to h2spec's test cases of RFC 7540/9113 and
// RFC 7541 (HPACK).
package h2

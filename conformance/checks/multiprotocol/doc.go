// Package multiprotocol holds the multiprotocol profile's conformance
// checks: HTTP/1.1, h2c and gRPC clients sharing one listener and one
// cluster at the same time, each request forwarded in the protocol it
// needs.
package multiprotocol

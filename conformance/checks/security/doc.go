// Package security holds the security profile's conformance checks: the
// mesh's mutual TLS with SPIFFE identities. An inbound listener refuses
// clients without a valid certificate of the trust domain (none, another
// CA's, an expired one); the proxy as a client refuses an upstream that
// presents another identity than the one expected; authorization admits
// callers by identity; a cluster presents the source or the destination
// service's certificate as its mode says; and certificates rotate under
// load without a failed request.
package security

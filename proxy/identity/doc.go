// Package identity gives workloads of the mesh their identities and the
// proxy its mTLS: a trust anchor (a root CA) and an issuer (an
// intermediate CA signed by the root), per-service leaf certificates whose
// identity is a SPIFFE ID in a URI SAN
// (spiffe://<trust-domain>/ns/<namespace>/sa/<service>), PEM files written
// atomically, a file-backed certificate Source that reloads certificates,
// keys and trust bundles when their files change, and the authorization
// Policy of an inbound listener.
//
// Everything is ECDSA P-256 and the standard library's crypto/x509: the
// package depends on nothing else.
package identity

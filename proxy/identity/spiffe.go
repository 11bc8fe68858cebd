package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Scheme is the URI scheme of SPIFFE IDs.
const Scheme = "spiffe"

// ID is a SPIFFE ID: a trust domain and a path. The zero ID is "no
// identity".
type ID struct {
	// TrustDomain is the ID's host part, for example cluster.local.
	TrustDomain string
	// Path starts with "/", for example /ns/default/sa/echo.
	Path string
}

// ServiceID is the ID of a service's workloads:
// spiffe://<trustDomain>/ns/<namespace>/sa/<service>.
func ServiceID(trustDomain, namespace, service string) ID {
	return ID{TrustDomain: trustDomain, Path: "/ns/" + namespace + "/sa/" + service}
}

// String formats the ID as a URI; the zero ID formats as "".
func (id ID) String() string {
	if id.IsZero() {
		return ""
	}
	return Scheme + "://" + id.TrustDomain + id.Path
}

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id.TrustDomain == "" }

// URL returns the ID as a URL, as it goes into a certificate's URI SAN.
func (id ID) URL() *url.URL { return &url.URL{Scheme: Scheme, Host: id.TrustDomain, Path: id.Path} }

// Service returns the service and namespace of an ID made by ServiceID, and
// false for any other shape.
func (id ID) Service() (namespace, service string, ok bool) {
	parts := strings.Split(id.Path, "/")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "ns" || parts[3] != "sa" || parts[2] == "" || parts[4] == "" {
		return "", "", false
	}
	return parts[2], parts[4], true
}

// ParseID parses a SPIFFE ID: scheme spiffe, a lower-case trust domain, a
// non-empty path of non-empty segments other than "." and "..", and no
// port, user, query or fragment.
func ParseID(s string) (ID, error) {
	u, err := url.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("parsing SPIFFE ID %q: %w", s, err)
	}
	return idFromURL(u)
}

func idFromURL(u *url.URL) (ID, error) {
	s := u.String()
	switch {
	case u.Scheme != Scheme:
		return ID{}, fmt.Errorf("SPIFFE ID %q: scheme must be %q", s, Scheme)
	case u.Host == "":
		return ID{}, fmt.Errorf("SPIFFE ID %q: missing trust domain", s)
	case u.Port() != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return ID{}, fmt.Errorf("SPIFFE ID %q: no port, user, query or fragment allowed", s)
	case strings.Trim(u.Host, "abcdefghijklmnopqrstuvwxyz0123456789-._") != "":
		return ID{}, fmt.Errorf("SPIFFE ID %q: trust domain must be lower-case letters, digits, '-', '.', '_'", s)
	case u.Path == "" || u.Path == "/":
		return ID{}, fmt.Errorf("SPIFFE ID %q: missing path", s)
	}
	for _, seg := range strings.Split(u.Path[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return ID{}, fmt.Errorf("SPIFFE ID %q: empty, '.' or '..' path segment", s)
		}
	}
	return ID{TrustDomain: u.Host, Path: u.Path}, nil
}

// ErrNoID is returned by CertificateID for a certificate without a SPIFFE
// ID.
var ErrNoID = errors.New("certificate has no SPIFFE ID")

// CertificateID returns the SPIFFE ID of a certificate: its only spiffe://
// URI SAN. A certificate with none returns ErrNoID; one with several is an
// error (the SPIFFE X.509-SVID rules allow exactly one).
func CertificateID(cert *x509.Certificate) (ID, error) {
	var found *url.URL
	for _, u := range cert.URIs {
		if u.Scheme != Scheme {
			continue
		}
		if found != nil {
			return ID{}, errors.New("certificate has more than one SPIFFE ID")
		}
		found = u
	}
	if found == nil {
		return ID{}, ErrNoID
	}
	return idFromURL(found)
}

// PeerID returns the SPIFFE ID of the peer of a TLS connection whose
// certificate chain was verified during the handshake (the proxy's
// listeners and clusters verify every certificate presented, or fail the
// handshake). It returns the zero ID when the peer presented no
// certificate or its certificate carries no valid SPIFFE ID.
func PeerID(cs *tls.ConnectionState) ID {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ID{}
	}
	id, err := CertificateID(cs.PeerCertificates[0])
	if err != nil {
		return ID{}
	}
	return id
}

// MatchPattern reports whether id matches pattern: "*" matches any ID, a
// pattern ending in "*" matches IDs with the part before it as a prefix,
// any other pattern matches the ID exactly. The zero ID matches nothing.
func MatchPattern(pattern string, id ID) bool {
	if id.IsZero() {
		return false
	}
	s := id.String()
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(s, p)
	}
	return s == pattern
}

// CheckPattern validates an identity pattern for MatchPattern: "*", a
// SPIFFE ID, or a prefix of one followed by "*".
func CheckPattern(pattern string) error {
	if pattern == "*" {
		return nil
	}
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		if !strings.HasPrefix(p, Scheme+"://") || strings.Contains(p, "*") {
			return fmt.Errorf("identity pattern %q: a prefix must start with %s:// and have one trailing '*'", pattern, Scheme)
		}
		return nil
	}
	_, err := ParseID(pattern)
	return err
}

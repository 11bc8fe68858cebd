package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"
)

// Lifetimes of certificates made by this package, unless told otherwise.
const (
	// DefaultLeafLifetime is the lifetime of a workload certificate.
	DefaultLeafLifetime = 24 * time.Hour
	// DefaultRootLifetime is the lifetime of a trust anchor.
	DefaultRootLifetime = 10 * 365 * 24 * time.Hour
	// DefaultIssuerLifetime is the lifetime of an issuer (intermediate CA).
	DefaultIssuerLifetime = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so that peers whose clocks lag a little
	// accept a certificate at once.
	clockSkew = time.Minute
)

// CA is a certificate authority: a CA certificate, its key, and the chain
// of CA certificates above it (empty for a root).
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	// Parents are the CA certificates above Cert, nearest first, without
	// the root: a root's is empty, an issuer signed by a root's is empty
	// too. They go after the leaf in issued chains.
	Parents []*x509.Certificate
}

// NewRoot creates a self-signed trust anchor for trustDomain, valid for
// lifetime (DefaultRootLifetime if 0).
func NewRoot(trustDomain string, lifetime time.Duration) (*CA, error) {
	if lifetime <= 0 {
		lifetime = DefaultRootLifetime
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating root key: %w", err)
	}
	tmpl, err := caTemplate(trustDomain+" root CA", trustDomain, lifetime, 1)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing root certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// NewIssuer creates an intermediate CA signed by ca, valid for lifetime
// (DefaultIssuerLifetime if 0, and never past ca's own expiry).
func (ca *CA) NewIssuer(trustDomain string, lifetime time.Duration) (*CA, error) {
	if lifetime <= 0 {
		lifetime = DefaultIssuerLifetime
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating issuer key: %w", err)
	}
	tmpl, err := caTemplate(trustDomain+" issuer CA", trustDomain, lifetime, 0)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("creating issuer certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing issuer certificate: %w", err)
	}
	var parents []*x509.Certificate
	if !isSelfSigned(ca.Cert) {
		parents = append([]*x509.Certificate{ca.Cert}, ca.Parents...)
	}
	return &CA{Cert: cert, Key: key, Parents: parents}, nil
}

func caTemplate(cn, trustDomain string, lifetime time.Duration, maxPath int) (*x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{trustDomain}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            maxPath,
		MaxPathLenZero:        maxPath == 0,
	}, nil
}

// Leaf is a workload certificate, its key and the chain of CA certificates
// that links it to the trust anchor (the anchor itself excluded).
type Leaf struct {
	Cert  *x509.Certificate
	Key   *ecdsa.PrivateKey
	Chain []*x509.Certificate
}

// LeafOptions describe a workload certificate.
type LeafOptions struct {
	// ID is the certificate's SPIFFE ID (its only URI SAN). Required.
	ID ID
	// DNSNames are added as DNS SANs (usually the service name).
	DNSNames []string
	// Lifetime defaults to DefaultLeafLifetime.
	Lifetime time.Duration
	// NotBefore defaults to now minus a minute of clock skew. Set it in
	// the past, with a short Lifetime, for an already expired certificate.
	NotBefore time.Time
}

// Issue signs a workload certificate usable as both a server and a client
// certificate. It never outlives the CA.
func (ca *CA) Issue(o LeafOptions) (*Leaf, error) {
	if o.ID.IsZero() {
		return nil, errors.New("issuing a certificate: an identity is required")
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLeafLifetime
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = time.Now().Add(-clockSkew)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key for %s: %w", o.ID, err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{o.ID.TrustDomain}},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotBefore.Add(o.Lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{o.ID.URL()},
		DNSNames:     o.DNSNames,
	}
	if len(o.DNSNames) > 0 {
		tmpl.Subject.CommonName = o.DNSNames[0]
	}
	if tmpl.NotAfter.After(ca.Cert.NotAfter) {
		tmpl.NotAfter = ca.Cert.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate for %s: %w", o.ID, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate for %s: %w", o.ID, err)
	}
	chain := []*x509.Certificate{}
	if !isSelfSigned(ca.Cert) {
		chain = append(chain, ca.Cert)
		chain = append(chain, ca.Parents...)
	}
	return &Leaf{Cert: cert, Key: key, Chain: chain}, nil
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	return s.Add(s, big.NewInt(1)), nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil
}

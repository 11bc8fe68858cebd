package security

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/proxy/identity"
)

// The identities of the checks: spiffe://<trustDomain>/ns/<namespace>/sa/<service>.
const (
	trustDomain = "meshbench.test"
	namespace   = "conform"
	// serverService is the service whose certificate the proxy's
	// listeners present; clients verify its DNS name.
	serverService = "echo"
)

// pki is a trust domain made for one check: a root (the bundle, ca.pem)
// and an issuer that signs workload certificates, in a directory of the
// check's.
type pki struct {
	dir    string
	ca     *identity.CA
	bundle string
	roots  *x509.CertPool
}

// newPKI creates a new root and issuer in a new directory of the check.
func newPKI(e *conformance.Env) (*pki, error) {
	dir, err := e.Dir()
	if err != nil {
		return nil, err
	}
	ca, _, err := identity.CreateAuthority(dir, trustDomain)
	if err != nil {
		return nil, fmt.Errorf("creating a certificate authority: %w", err)
	}
	bundle := filepath.Join(dir, identity.BundleFile)
	data, err := os.ReadFile(bundle)
	if err != nil {
		return nil, fmt.Errorf("reading the trust bundle: %w", err)
	}
	certs, err := identity.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("parsing the trust bundle: %w", err)
	}
	roots := x509.NewCertPool()
	for _, c := range certs {
		roots.AddCert(c)
	}
	return &pki{dir: dir, ca: ca, bundle: bundle, roots: roots}, nil
}

// id is a service's SPIFFE ID.
func id(service string) string { return identity.ServiceID(trustDomain, namespace, service).String() }

// files issues a service's certificate into the directory and returns
// its certificate and key files.
func (p *pki) files(service string) (string, string, error) {
	return p.ca.IssueService(p.dir, trustDomain, namespace, service, 0)
}

// cert issues a service's certificate in memory; notBefore and lifetime
// zero take the defaults (valid now, for a day).
func (p *pki) cert(service string, notBefore time.Time, lifetime time.Duration) (*tls.Certificate, error) {
	leaf, err := p.ca.Issue(identity.LeafOptions{ID: identity.ServiceID(trustDomain, namespace, service),
		DNSNames: []string{service}, NotBefore: notBefore, Lifetime: lifetime})
	if err != nil {
		return nil, err
	}
	return tlsCert(leaf), nil
}

// tlsCert is a leaf as a tls.Certificate with its chain.
func tlsCert(l *identity.Leaf) *tls.Certificate {
	c := &tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key, Leaf: l.Cert}
	for _, ca := range l.Chain {
		c.Certificate = append(c.Certificate, ca.Raw)
	}
	return c
}

// client is an HTTPS (HTTP/1.1) client of a proxy listener presenting
// the certificate of serverService: it verifies the proxy against the
// roots and presents cert (none when nil). Its connections are its own.
func client(e *conformance.Env, roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	c := newClient(roots, cert)
	e.Cleanup(c.CloseIdleConnections)
	return c
}

// newClient is client without the cleanup: its caller closes its
// connections.
func newClient(roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: roots, ServerName: serverService, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	var p http.Protocols
	p.SetHTTP1(true)
	tr := &http.Transport{Protocols: &p, TLSClientConfig: cfg}
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

// plainClient is a cleartext HTTP/1.1 client.
func plainClient(e *conformance.Env) *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	tr := &http.Transport{Protocols: &p}
	e.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Timeout: 5 * time.Second, Transport: tr}
}

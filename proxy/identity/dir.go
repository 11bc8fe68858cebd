package identity

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The files of a certificate directory, as `meshbench certs` writes it and
// the platforms lay it out for the proxies.
const (
	BundleFile    = "ca.pem"         // the trust anchor: what peers verify against
	IssuerFile    = "issuer.pem"     // the intermediate that signs workloads
	IssuerKeyFile = "issuer-key.pem" // its key (0600)
)

// ServiceCertFile names a service's certificate (leaf and issuer chain) in
// a certificate directory.
func ServiceCertFile(service string) string { return service + ".pem" }

// ServiceKeyFile names a service's key in a certificate directory.
func ServiceKeyFile(service string) string { return service + "-key.pem" }

// CreateAuthority makes a new trust anchor and issuer for trustDomain and
// writes the bundle, the issuer and the issuer's key into dir. The
// anchor's key signs the issuer and is then dropped: a new issuer means a
// new anchor. It returns the issuer and the paths written.
func CreateAuthority(dir, trustDomain string) (*CA, []string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	root, err := NewRoot(trustDomain, 0)
	if err != nil {
		return nil, nil, err
	}
	issuer, err := root.NewIssuer(trustDomain, 0)
	if err != nil {
		return nil, nil, err
	}
	key, err := EncodeKey(issuer.Key)
	if err != nil {
		return nil, nil, err
	}
	var written []string
	for _, f := range []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{IssuerKeyFile, key, 0o600},
		{IssuerFile, EncodeCertificates(issuer.Cert), 0o644},
		{BundleFile, EncodeCertificates(root.Cert), 0o644},
	} {
		path := filepath.Join(dir, f.name)
		if err := WriteFileAtomic(path, f.data, f.perm); err != nil {
			return nil, written, err
		}
		written = append(written, path)
	}
	return issuer, written, nil
}

// IssueService issues the certificate of a service's workloads
// (spiffe://<trustDomain>/ns/<namespace>/sa/<service>, with the service
// name as DNS SAN) and writes it and its key into dir. A zero lifetime
// takes DefaultLeafLifetime.
func (ca *CA) IssueService(dir, trustDomain, namespace, service string, lifetime time.Duration) (certFile, keyFile string, err error) {
	leaf, err := ca.Issue(LeafOptions{
		ID:       ServiceID(trustDomain, namespace, service),
		DNSNames: []string{service},
		Lifetime: lifetime,
	})
	if err != nil {
		return "", "", fmt.Errorf("issuing the certificate of %s: %w", service, err)
	}
	certFile, keyFile = filepath.Join(dir, ServiceCertFile(service)), filepath.Join(dir, ServiceKeyFile(service))
	if err := WriteLeaf(leaf, certFile, keyFile); err != nil {
		return "", "", fmt.Errorf("writing the certificate of %s: %w", service, err)
	}
	return certFile, keyFile, nil
}

package scenarios

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/identity"
)

// Identity settings of the cells with mTLS on.
const (
	// TrustDomain is the SPIFFE trust domain of every workload.
	TrustDomain = "cluster.local"
	// Namespace is the namespace in every workload's SPIFFE ID.
	Namespace = "default"
	// ClientService is the service (and service account) of the load
	// generator's pod.
	ClientService = "client"
	// CertsDir is where the platform puts the CA and the workload
	// certificates, relative to the proxies' working directory.
	CertsDir = "certs"
)

// CAFile is the trust bundle's path in the proxy configurations.
func CAFile() string { return CertsDir + "/" + identity.BundleFile }

// CertFile is the path of a service's certificate (with its chain) in the
// proxy configurations.
func CertFile(service string) string { return CertsDir + "/" + identity.ServiceCertFile(service) }

// KeyFile is the path of a service's private key in the proxy
// configurations.
func KeyFile(service string) string { return CertsDir + "/" + identity.ServiceKeyFile(service) }

// ServiceID is the SPIFFE ID of a service's workloads in a plan.
func ServiceID(service string) string {
	return identity.ServiceID(TrustDomain, Namespace, service).String()
}

// WriteCertificates issues what a plan's proxies need under dir (the
// proxies' working directory): a new root CA (dir/certs/ca.pem; its key is
// not kept), an intermediate issuer (issuer.pem, issuer-key.pem) and, per
// identity of the plan, its certificate and key (<service>.pem,
// <service>-key.pem), valid for lifetime (identity.DefaultLeafLifetime when
// 0). A plan without identities writes nothing.
func WriteCertificates(p *Plan, dir string, lifetime time.Duration) error {
	if len(p.Identities) == 0 {
		return nil
	}
	td, ns := p.TrustDomain, p.Namespace
	if td == "" || ns == "" {
		return fmt.Errorf("writing certificates: plan %s has identities but no trust domain or namespace", p.Cell.ID)
	}
	out := filepath.Join(dir, CertsDir)
	issuer, _, err := identity.CreateAuthority(out, td)
	if err != nil {
		return fmt.Errorf("writing certificates: %w", err)
	}
	for _, svc := range p.Identities {
		if _, _, err := issuer.IssueService(out, td, ns, svc, lifetime); err != nil {
			return fmt.Errorf("writing certificates: %w", err)
		}
	}
	return nil
}

// upstreamTLS is the mTLS of an outbound cluster presenting the
// certificate of source: one cert_file/key_file in a sidecar, a certificate
// per source service (certs) in a node proxy. The caller sets the identity
// the servers must present.
func upstreamTLS(source string, perSource bool) *config.UpstreamTLS {
	t := &config.UpstreamTLS{Mode: config.TLSModeSource, CAFile: CAFile()}
	pair := config.CertPair{CertFile: CertFile(source), KeyFile: KeyFile(source)}
	if perSource {
		t.Certs = map[string]config.CertPair{source: pair}
	} else {
		t.CertFile, t.KeyFile = pair.CertFile, pair.KeyFile
	}
	return t
}

// inboundTLS is the mTLS of an inbound listener that presents service's
// certificate, and its authorization: only the client's identity.
func inboundTLS(service string) (*config.TLS, *config.Authz) {
	return &config.TLS{CertFile: CertFile(service), KeyFile: KeyFile(service), ClientCAFile: CAFile()},
		&config.Authz{Allow: []config.AuthzRule{{Identities: []string{ServiceID(ClientService)}}}}
}

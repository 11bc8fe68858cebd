package scenarios

import (
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

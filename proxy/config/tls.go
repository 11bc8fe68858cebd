package config

import (
	"github.com/meshbench/meshbench/internal/names"

	"crypto/tls"
	"fmt"
	"maps"
	"os"
	"slices"

	"github.com/meshbench/meshbench/proxy/identity"
)

// Modes of a cluster's mTLS: which certificate the proxy presents.
const (
	// TLSModeSource presents the calling workload's certificate: a
	// sidecar's own service, or, in a node proxy, the certificate of the
	// listener's source_service.
	TLSModeSource = "source"
	// TLSModeDestination presents the certificate issued for the
	// destination service (per-service certificates).
	TLSModeDestination = "destination"
)

// TLS versions of min_version.
const (
	TLSVersion12 = "1.2"
	TLSVersion13 = "1.3"
)

// UpstreamTLS is a cluster's mTLS: the trust bundle upstream certificates
// must chain to, the SPIFFE ID each endpoint must present (checked instead
// of host names), and the client certificate(s) to present. Files are
// reloaded when they change.
type UpstreamTLS struct {
	// Mode is source (default) or destination.
	Mode string `yaml:"mode" json:"mode"`
	// CAFile is the trust bundle. Required.
	CAFile string `yaml:"ca_file" json:"ca_file"`
	// ServerIdentity is the SPIFFE ID every endpoint must present.
	ServerIdentity string `yaml:"server_identity" json:"server_identity,omitempty"`
	// ServerIdentities maps the address dialed (an endpoint, or its
	// gateway under via) to the SPIFFE ID it must present; it takes
	// precedence over ServerIdentity for the addresses it lists.
	ServerIdentities map[string]string `yaml:"server_identities" json:"server_identities,omitempty"`
	// CertFile and KeyFile are the one client certificate: the sidecar's
	// own (mode source) or the destination service's (mode destination).
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
	// Certs holds a certificate per source service (mode source in a node
	// proxy); the listener's source_service picks one.
	Certs map[string]CertPair `yaml:"certs" json:"certs,omitempty"`
	// ReloadInterval is how often the files are checked. Default 1s.
	ReloadInterval Duration `yaml:"reload_interval" json:"reload_interval"`
	// GatewaysOnly limits mTLS to the connections to via gateways:
	// endpoints without a gateway (a node proxy's own pods) are dialed in
	// cleartext, over HTTP/1.1 or h2c. Needs via.
	GatewaysOnly bool `yaml:"gateways_only" json:"gateways_only,omitempty"`
}

// CertPair is a certificate (with its chain) and its key.
type CertPair struct {
	CertFile string `yaml:"cert_file" json:"cert_file"`
	KeyFile  string `yaml:"key_file" json:"key_file"`
}

// Authz is a listener's allow-list. With it, a request is allowed when at
// least one rule allows it, and denied otherwise.
type Authz struct {
	Allow []AuthzRule `yaml:"allow" json:"allow"`
}

// AuthzRule allows requests that meet every condition it sets.
type AuthzRule struct {
	// Identities are SPIFFE IDs, prefixes followed by "*", or "*" for any
	// authenticated caller. Empty allows any caller, authenticated or not.
	Identities []string `yaml:"identities" json:"identities,omitempty"`
	// PathPrefix restricts the request path.
	PathPrefix string `yaml:"path_prefix" json:"path_prefix,omitempty"`
	// Methods restricts the HTTP method; gRPC calls are POST.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
}

// Policy returns the rules as an identity.Policy.
func (a *Authz) Policy() *identity.Policy {
	p := &identity.Policy{Rules: make([]identity.Rule, len(a.Allow))}
	for i, r := range a.Allow {
		p.Rules[i] = identity.Rule{Identities: r.Identities, PathPrefix: r.PathPrefix, Methods: r.Methods}
	}
	return p
}

// MTLS reports whether the listener verifies client certificates.
func (t *TLS) MTLS() bool { return t != nil && t.ClientCAFile != "" }

// setIdentityDefaults fills the defaults of the tls blocks.
func (c *Config) setIdentityDefaults() {
	for i := range c.Listeners {
		t := c.Listeners[i].TLS
		if t == nil {
			continue
		}
		if t.MinVersion == "" {
			t.MinVersion = TLSVersion12
			if t.ClientCAFile != "" {
				t.MinVersion = TLSVersion13
			}
		}
		if t.RequireClientCert == nil && t.ClientCAFile != "" {
			yes := true
			t.RequireClientCert = &yes
		}
		if t.ReloadInterval == 0 {
			t.ReloadInterval = Duration(identity.DefaultReloadInterval)
		}
	}
	for i := range c.Clusters {
		t := c.Clusters[i].TLS
		if t == nil {
			continue
		}
		if t.Mode == "" {
			t.Mode = TLSModeSource
		}
		if t.ReloadInterval == 0 {
			t.ReloadInterval = Duration(identity.DefaultReloadInterval)
		}
	}
}

// identity checks the mTLS and authorization settings of the whole
// configuration: listener tls, authz and source_identity matches, cluster
// tls, and that every listener feeding a cluster with a certificate per
// source service names one of them.
func (v *validator) identity(c *Config) {
	clusters := map[string]*Cluster{}
	for i := range c.Clusters {
		clusters[c.Clusters[i].Name] = &c.Clusters[i]
		v.upstreamTLS(fmt.Sprintf("clusters[%d]", i), &c.Clusters[i])
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		if t := l.TLS; t != nil {
			v.listenerMTLS(p+".tls", t)
		}
		if l.SourceService != "" && !names.DNSLabel(l.SourceService) {
			v.fail(p+".source_service", "%q: a service name (DNS label)", l.SourceService)
		}
		if a := l.Authz; a != nil {
			v.authz(p+".authz", a, l.TLS.MTLS())
		}
		for j := range l.Routes {
			r := &l.Routes[j]
			rp := fmt.Sprintf("%s.routes[%d]", p, j)
			if si := r.Match.SourceIdentity; si != "" {
				if err := identity.CheckPattern(si); err != nil {
					v.fail(rp+".match.source_identity", "%v", err)
				} else if !l.TLS.MTLS() {
					v.fail(rp+".match.source_identity", "needs the listener's tls.client_ca_file: only verified client certificates carry an identity")
				}
			}
			cl := clusters[r.Cluster]
			if cl == nil || cl.TLS == nil || len(cl.TLS.Certs) == 0 {
				continue
			}
			if l.SourceService == "" {
				v.fail(rp+".cluster", "%q holds a certificate per source service: the listener needs source_service to pick one", r.Cluster)
			} else if _, ok := cl.TLS.Certs[l.SourceService]; !ok {
				v.fail(p+".source_service", "%q: cluster %q holds no certificate for it (has: %v)", l.SourceService, r.Cluster, slices.Sorted(maps.Keys(cl.TLS.Certs)))
			}
		}
	}
}

func (v *validator) listenerMTLS(p string, t *TLS) {
	switch t.MinVersion {
	case TLSVersion12, TLSVersion13:
	default:
		v.fail(p+".min_version", "%q: must be 1.2 or 1.3", t.MinVersion)
	}
	if t.ClientCAFile == "" {
		if t.RequireClientCert != nil && *t.RequireClientCert {
			v.fail(p+".require_client_cert", "needs client_ca_file to verify client certificates against")
		}
	} else {
		v.bundle(p+".client_ca_file", t.ClientCAFile)
	}
	if t.ReloadInterval < 0 {
		v.fail(p+".reload_interval", "must be positive")
	}
}

func (v *validator) bundle(p, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		v.fail(p, "%v", err)
		return
	}
	if _, err := identity.ParseCertificates(data); err != nil {
		v.fail(p, "%q: %v", file, err)
	}
}

func (v *validator) authz(p string, a *Authz, mtls bool) {
	if len(a.Allow) == 0 {
		v.fail(p+".allow", "at least one rule is required (an authz block with none would deny everything)")
	}
	for i, r := range a.Allow {
		rp := fmt.Sprintf("%s.allow[%d]", p, i)
		for k, pat := range r.Identities {
			if err := identity.CheckPattern(pat); err != nil {
				v.fail(fmt.Sprintf("%s.identities[%d]", rp, k), "%v", err)
			}
		}
		if len(r.Identities) > 0 && !mtls {
			v.fail(rp+".identities", "need the listener's tls.client_ca_file: only verified client certificates carry an identity")
		}
		if r.PathPrefix != "" && r.PathPrefix[0] != '/' {
			v.fail(rp+".path_prefix", "%q: must start with /", r.PathPrefix)
		}
		for k, m := range r.Methods {
			if m == "" || !validHeaderName(m) || m != upper(m) {
				v.fail(fmt.Sprintf("%s.methods[%d]", rp, k), "%q: an upper-case HTTP method such as GET", m)
			}
		}
	}
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func (v *validator) upstreamTLS(p string, c *Cluster) {
	t := c.TLS
	if t == nil {
		if c.Protocol == UpstreamH2 {
			v.fail(p+".protocol", "h2 is HTTP/2 over TLS and needs tls; for cleartext HTTP/2 use h2c")
		}
		return
	}
	if c.Protocol == UpstreamH2C {
		v.fail(p+".protocol", "h2c is cleartext HTTP/2; with tls use h2 or same")
	}
	p += ".tls"
	switch t.Mode {
	case TLSModeSource, TLSModeDestination:
	default:
		v.fail(p+".mode", "%q: must be source or destination", t.Mode)
	}
	if t.CAFile == "" {
		v.fail(p+".ca_file", "required: upstream certificates are verified against it")
	} else {
		v.bundle(p+".ca_file", t.CAFile)
	}
	if t.ServerIdentity == "" && len(t.ServerIdentities) == 0 {
		v.fail(p+".server_identity", "required (or server_identities): the SPIFFE ID upstreams must present")
	}
	if t.ServerIdentity != "" {
		if _, err := identity.ParseID(t.ServerIdentity); err != nil {
			v.fail(p+".server_identity", "%v", err)
		}
	}
	for _, addr := range slices.Sorted(maps.Keys(t.ServerIdentities)) {
		if msg := checkDestination(addr); msg != "" {
			v.fail(p+".server_identities."+addr, "%q: %s", addr, msg)
		}
		if _, err := identity.ParseID(t.ServerIdentities[addr]); err != nil {
			v.fail(p+".server_identities."+addr, "%v", err)
		}
	}
	if t.ServerIdentity == "" && len(t.ServerIdentities) > 0 && c.Via == nil {
		for k, e := range c.Endpoints {
			if _, ok := t.ServerIdentities[e]; !ok {
				v.fail(fmt.Sprintf("%s.endpoints[%d]", p[:len(p)-4], k), "%q: no expected identity in tls.server_identities and no tls.server_identity", e)
			}
		}
	}
	single := t.CertFile != "" || t.KeyFile != ""
	switch {
	case single && len(t.Certs) > 0:
		v.fail(p, "cert_file/key_file and certs are exclusive")
	case single:
		v.pair(p, CertPair{CertFile: t.CertFile, KeyFile: t.KeyFile})
	case len(t.Certs) > 0:
		if t.Mode == TLSModeDestination {
			v.fail(p+".certs", "mode destination presents the destination service's certificate: use cert_file and key_file")
		}
		for _, svc := range slices.Sorted(maps.Keys(t.Certs)) {
			if !names.DNSLabel(svc) {
				v.fail(p+".certs."+svc, "%q: a service name (DNS label)", svc)
			}
			v.pair(p+".certs."+svc, t.Certs[svc])
		}
	default:
		v.fail(p, "a client certificate is required: cert_file and key_file, or certs (mode source, one per source service)")
	}
	if t.ReloadInterval < 0 {
		v.fail(p+".reload_interval", "must be positive")
	}
	if t.GatewaysOnly && c.Via == nil {
		v.fail(p+".gateways_only", "needs via: without gateways no connection would use tls")
	}
}

func (v *validator) pair(p string, cp CertPair) {
	if cp.CertFile == "" {
		v.fail(p+".cert_file", "required")
	}
	if cp.KeyFile == "" {
		v.fail(p+".key_file", "required")
	}
	if cp.CertFile == "" || cp.KeyFile == "" {
		return
	}
	if _, err := tls.LoadX509KeyPair(cp.CertFile, cp.KeyFile); err != nil {
		v.fail(p, "loading certificate and key: %v", err)
	}
}

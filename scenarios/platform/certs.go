package platform

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/meshbench/meshbench/proxy/identity"
	"github.com/meshbench/meshbench/scenarios"
)

// WriteCertificates issues what a plan's proxies need under dir (the
// proxies' working directory): a new root CA (dir/certs/ca.pem; its key is
// not kept), an intermediate issuer (issuer.pem, issuer-key.pem) and, per
// identity of the plan, its certificate and key (<service>.pem,
// <service>-key.pem), valid for lifetime (identity.DefaultLeafLifetime when
// 0). A plan without identities writes nothing.
func WriteCertificates(p *scenarios.Plan, dir string, lifetime time.Duration) error {
	if len(p.Identities) == 0 {
		return nil
	}
	td, ns := p.TrustDomain, p.Namespace
	if td == "" || ns == "" {
		return fmt.Errorf("writing certificates: plan %s has identities but no trust domain or namespace", p.Cell.ID)
	}
	out := filepath.Join(dir, scenarios.CertsDir)
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

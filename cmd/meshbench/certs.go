package main

import (
	"github.com/meshbench/meshbench/internal/names"

	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/meshbench/meshbench/proxy/identity"
)

// certsOptions are the flags of `meshbench certs`.
type certsOptions struct {
	out         string
	services    []string
	trustDomain string
	namespace   string
	lifetime    time.Duration
	force       bool
}

// runCerts is `meshbench certs`: it writes a trust anchor, an issuer and a
// certificate per service into a directory. An existing CA in the
// directory is reused, so running it again for a service rotates that
// service's certificate.
func runCerts(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("certs", "meshbench certs --out DIR --services a,b [--trust-domain cluster.local] [--namespace default] [--lifetime 24h] [--force]", stderr)
	var o certsOptions
	var services string
	fs.StringVar(&o.out, "out", "", "`DIR` to write the certificates to (required; created if missing)")
	fs.StringVar(&services, "services", "", "comma-separated service `NAMES` to issue certificates for (required)")
	fs.StringVar(&o.trustDomain, "trust-domain", "cluster.local", "SPIFFE trust `DOMAIN`")
	fs.StringVar(&o.namespace, "namespace", "default", "`NAMESPACE` in the services' SPIFFE IDs")
	fs.DurationVar(&o.lifetime, "lifetime", identity.DefaultLeafLifetime, "lifetime of the service certificates")
	fs.BoolVar(&o.force, "force", false, "replace an existing CA in DIR with a new one")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	for _, s := range strings.Split(services, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.services = append(o.services, s)
		}
	}
	if o.out == "" || len(o.services) == 0 {
		fmt.Fprintln(stderr, "meshbench certs: --out and --services are required")
		fs.Usage()
		return 2
	}
	if err := o.check(); err != nil {
		fmt.Fprintf(stderr, "meshbench certs: %v\n", err)
		return 2
	}
	written, err := writeCerts(o)
	for _, f := range written {
		fmt.Fprintln(stdout, f)
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshbench certs: %v\n", err)
		return 1
	}
	return 0
}

func (o *certsOptions) check() error {
	if o.lifetime <= 0 {
		return errors.New("--lifetime must be positive")
	}
	if _, err := identity.ParseID("spiffe://" + o.trustDomain + "/x"); err != nil {
		return fmt.Errorf("--trust-domain %q: %w", o.trustDomain, err)
	}
	if !names.DNSLabel(o.namespace) {
		return fmt.Errorf("--namespace %q: not a DNS label", o.namespace)
	}
	for i, s := range o.services {
		if !names.DNSLabel(s) || s == "ca" || s == "issuer" {
			return fmt.Errorf("--services: %q: a service name is a DNS label other than ca and issuer", s)
		}
		if slices.Contains(o.services[:i], s) {
			return fmt.Errorf("--services: %q listed twice", s)
		}
	}
	return nil
}

// writeCerts writes the files and returns the paths written, in order.
func writeCerts(o certsOptions) ([]string, error) {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", o.out, err)
	}
	caFile := filepath.Join(o.out, identity.BundleFile)
	var written []string
	var issuer *identity.CA
	if _, err := os.Stat(caFile); err == nil && !o.force {
		issuerFile, issuerKey := filepath.Join(o.out, identity.IssuerFile), filepath.Join(o.out, identity.IssuerKeyFile)
		if issuer, err = loadIssuer(caFile, issuerFile, issuerKey, o.trustDomain); err != nil {
			return nil, fmt.Errorf("%w (use --force to replace the CA)", err)
		}
	} else if issuer, written, err = identity.CreateAuthority(o.out, o.trustDomain); err != nil {
		return written, err
	}
	for _, svc := range o.services {
		cf, kf, err := issuer.IssueService(o.out, o.trustDomain, o.namespace, svc, o.lifetime)
		if err != nil {
			return written, err
		}
		written = append(written, cf, kf)
	}
	return written, nil
}

// loadIssuer reads the issuer of an existing CA in the directory and
// checks that it chains to the trust bundle and serves trustDomain.
func loadIssuer(caFile, issuerFile, issuerKey, trustDomain string) (*identity.CA, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("reading the trust bundle: %w", err)
	}
	roots, err := identity.ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", caFile, err)
	}
	issuer, err := identity.LoadCA(issuerFile, issuerKey)
	if err != nil {
		return nil, fmt.Errorf("%s exists but its issuer cannot be used: %w", caFile, err)
	}
	ok := false
	for _, r := range roots {
		if issuer.Cert.CheckSignatureFrom(r) == nil {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("%s is not signed by a certificate of %s", issuerFile, caFile)
	}
	if org := issuer.Cert.Subject.Organization; len(org) != 1 || org[0] != trustDomain {
		return nil, fmt.Errorf("the CA in %s serves trust domain %v, not %q", filepath.Dir(caFile), org, trustDomain)
	}
	return issuer, nil
}

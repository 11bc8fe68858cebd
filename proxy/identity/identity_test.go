package identity_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/identity"
)

func TestParseAndFormatID(t *testing.T) {
	id := identity.ServiceID("cluster.local", "default", "echo")
	if got := id.String(); got != "spiffe://cluster.local/ns/default/sa/echo" {
		t.Fatalf("String = %q", got)
	}
	back, err := identity.ParseID(id.String())
	if err != nil || back != id {
		t.Fatalf("ParseID(%q) = %v, %v", id, back, err)
	}
	if ns, svc, ok := back.Service(); !ok || ns != "default" || svc != "echo" {
		t.Errorf("Service() = %q %q %v", ns, svc, ok)
	}
	for _, bad := range []string{
		"", "https://cluster.local/ns/a", "spiffe:///ns/a", "spiffe://cluster.local",
		"spiffe://cluster.local/", "spiffe://Cluster.local/a", "spiffe://c.local:8080/a",
		"spiffe://c.local/a//b", "spiffe://c.local/a/../b", "spiffe://c.local/a?x=1", "spiffe://c.local/a#f",
	} {
		if _, err := identity.ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

func TestMatchPattern(t *testing.T) {
	id := identity.ServiceID("cluster.local", "default", "client")
	for _, c := range []struct {
		pat  string
		want bool
	}{
		{"*", true},
		{"spiffe://cluster.local/ns/default/sa/client", true},
		{"spiffe://cluster.local/ns/default/sa/other", false},
		{"spiffe://cluster.local/ns/default/*", true},
		{"spiffe://cluster.local/ns/prod/*", false},
	} {
		if got := identity.MatchPattern(c.pat, id); got != c.want {
			t.Errorf("MatchPattern(%q) = %v, want %v", c.pat, got, c.want)
		}
		if identity.MatchPattern(c.pat, identity.ID{}) {
			t.Errorf("MatchPattern(%q) matched the zero ID", c.pat)
		}
		if err := identity.CheckPattern(c.pat); err != nil {
			t.Errorf("CheckPattern(%q): %v", c.pat, err)
		}
	}
	for _, bad := range []string{"x*", "spiffe://a/*/b*", "client"} {
		if identity.CheckPattern(bad) == nil {
			t.Errorf("CheckPattern(%q) accepted", bad)
		}
	}
}

func TestPolicy(t *testing.T) {
	client := identity.ServiceID("cluster.local", "default", "client")
	other := identity.ServiceID("cluster.local", "default", "other")
	p := identity.Policy{Rules: []identity.Rule{
		{Identities: []string{client.String()}, PathPrefix: "/api/", Methods: []string{"GET"}},
		{PathPrefix: "/public/"},
	}}
	for _, c := range []struct {
		id           identity.ID
		method, path string
		want         bool
	}{
		{client, "GET", "/api/x", true},
		{client, "POST", "/api/x", false},
		{client, "GET", "/admin", false},
		{other, "GET", "/api/x", false},
		{identity.ID{}, "GET", "/api/x", false},
		{identity.ID{}, "GET", "/public/a", true},
	} {
		if got := p.Allow(c.id, c.method, c.path); got != c.want {
			t.Errorf("Allow(%v, %s %s) = %v, want %v", c.id, c.method, c.path, got, c.want)
		}
	}
	if (&identity.Policy{}).Allow(client, "GET", "/") {
		t.Error("an empty policy allowed a request")
	}
}

// testPKI is a root, an issuer and the directory files go to.
type testPKI struct {
	root, issuer *identity.CA
	dir          string
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	root, err := identity.NewRoot("cluster.local", 0)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := root.NewIssuer("cluster.local", 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{root: root, issuer: issuer, dir: t.TempDir()}
	if err := identity.WriteFileAtomic(filepath.Join(p.dir, "ca.pem"), identity.EncodeCertificates(root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *testPKI) issue(t *testing.T, svc string, o identity.LeafOptions) *identity.Leaf {
	t.Helper()
	if o.ID.IsZero() {
		o.ID = identity.ServiceID("cluster.local", "default", svc)
	}
	l, err := p.issuer.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.WriteLeaf(l, filepath.Join(p.dir, svc+".pem"), filepath.Join(p.dir, svc+"-key.pem")); err != nil {
		t.Fatal(err)
	}
	return l
}

func rawChain(l *identity.Leaf) [][]byte {
	out := [][]byte{l.Cert.Raw}
	for _, c := range l.Chain {
		out = append(out, c.Raw)
	}
	return out
}

func TestIssueAndVerify(t *testing.T) {
	p := newPKI(t)
	leaf := p.issue(t, "echo", identity.LeafOptions{DNSNames: []string{"echo"}})
	if got := leaf.Cert.NotAfter.Sub(leaf.Cert.NotBefore); got < 24*time.Hour || got > 24*time.Hour+2*time.Minute {
		t.Errorf("default lifetime %v, want 24h", got)
	}
	if len(leaf.Chain) != 1 || !leaf.Chain[0].Equal(p.issuer.Cert) {
		t.Fatalf("chain is not [issuer]: %d certificates", len(leaf.Chain))
	}
	if leaf.Cert.DNSNames[0] != "echo" {
		t.Errorf("DNS SANs %v", leaf.Cert.DNSNames)
	}
	src, err := identity.NewSource(identity.SourceConfig{CAFile: filepath.Join(p.dir, "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		id, err := src.Verify(rawChain(leaf), usage)
		if err != nil || id.String() != "spiffe://cluster.local/ns/default/sa/echo" {
			t.Fatalf("Verify(usage %v) = %v, %v", usage, id, err)
		}
	}
	if err := src.VerifyServer(identity.ServiceID("cluster.local", "default", "echo"))(rawChain(leaf), nil); err != nil {
		t.Errorf("VerifyServer with the right identity: %v", err)
	}
	var mm *identity.MismatchError
	if err := src.VerifyServer(identity.ServiceID("cluster.local", "default", "other"))(rawChain(leaf), nil); !errors.As(err, &mm) {
		t.Errorf("VerifyServer with another identity: %v, want a MismatchError", err)
	}
	// Without the issuer in the chain it cannot be verified.
	if _, err := src.Verify([][]byte{leaf.Cert.Raw}, x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("a leaf without its issuer verified")
	}
	// Another CA's certificate does not verify.
	other := newPKI(t)
	if _, err := src.Verify(rawChain(other.issue(t, "echo", identity.LeafOptions{})), x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("a certificate of another CA verified")
	}
	// An expired certificate does not verify.
	expired := p.issue(t, "old", identity.LeafOptions{NotBefore: time.Now().Add(-2 * time.Hour), Lifetime: time.Hour})
	if _, err := src.Verify(rawChain(expired), x509.ExtKeyUsageClientAuth); err == nil {
		t.Error("an expired certificate verified")
	}
}

func TestWriteFileAtomicModes(t *testing.T) {
	p := newPKI(t)
	p.issue(t, "echo", identity.LeafOptions{})
	for file, want := range map[string]os.FileMode{"echo-key.pem": 0o600, "echo.pem": 0o644} {
		st, err := os.Stat(filepath.Join(p.dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", file, st.Mode().Perm(), want)
		}
	}
	entries, _ := os.ReadDir(p.dir)
	if len(entries) != 3 {
		t.Errorf("directory holds %d entries, want 3 (no temporary files left)", len(entries))
	}
}

func TestSourceReloads(t *testing.T) {
	p := newPKI(t)
	first := p.issue(t, "echo", identity.LeafOptions{})
	certFile, keyFile := filepath.Join(p.dir, "echo.pem"), filepath.Join(p.dir, "echo-key.pem")
	src, err := identity.NewSource(identity.SourceConfig{CertFile: certFile, KeyFile: keyFile,
		CAFile: filepath.Join(p.dir, "ca.pem"), Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if src.Name() != "spiffe://cluster.local/ns/default/sa/echo" || !src.NotAfter().Equal(first.Cert.NotAfter) {
		t.Fatalf("Name %q NotAfter %v", src.Name(), src.NotAfter())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { src.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	serial := func() string {
		c, _ := src.GetCertificate(nil)
		return c.Leaf.SerialNumber.String()
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// A rotation is picked up.
	second := p.issue(t, "echo", identity.LeafOptions{Lifetime: time.Hour})
	waitFor("the rotated certificate", func() bool { return serial() == second.Cert.SerialNumber.String() })
	if !src.NotAfter().Equal(second.Cert.NotAfter) {
		t.Errorf("NotAfter %v, want %v", src.NotAfter(), second.Cert.NotAfter)
	}

	// A key that does not match the certificate keeps the last good pair.
	third, err := p.issuer.Issue(identity.LeafOptions{ID: identity.ServiceID("cluster.local", "default", "echo")})
	if err != nil {
		t.Fatal(err)
	}
	kp, _ := identity.EncodeKey(third.Key)
	if err := identity.WriteFileAtomic(keyFile, kp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := src.Reload(); err == nil {
		t.Error("Reload accepted a key that does not match the certificate")
	}
	if serial() != second.Cert.SerialNumber.String() {
		t.Error("a mismatched pair replaced the last good certificate")
	}
	// A truncated certificate file too.
	if err := os.WriteFile(certFile, third.ChainPEM()[:40], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := src.Reload(); err == nil {
		t.Error("Reload accepted a truncated certificate")
	}
	if serial() != second.Cert.SerialNumber.String() {
		t.Error("a truncated certificate replaced the last good one")
	}
	// Once the pair is whole again it is loaded.
	if err := identity.WriteFileAtomic(certFile, third.ChainPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("the repaired pair", func() bool { return serial() == third.Cert.SerialNumber.String() })

	// The trust bundle reloads too: a new root replaces the old one.
	root2, err := identity.NewRoot("cluster.local", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := root2.Issue(identity.LeafOptions{ID: identity.ServiceID("cluster.local", "default", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Verify(rawChain(other), x509.ExtKeyUsageClientAuth); err == nil {
		t.Fatal("a certificate of another root verified before the bundle changed")
	}
	if err := identity.WriteFileAtomic(filepath.Join(p.dir, "ca.pem"), identity.EncodeCertificates(p.root.Cert, root2.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor("the new trust bundle", func() bool {
		_, err := src.Verify(rawChain(other), x509.ExtKeyUsageClientAuth)
		return err == nil
	})
}

func TestLoadCA(t *testing.T) {
	p := newPKI(t)
	cf, kf := filepath.Join(p.dir, "issuer.pem"), filepath.Join(p.dir, "issuer-key.pem")
	kp, _ := identity.EncodeKey(p.issuer.Key)
	if err := identity.WriteFileAtomic(kf, kp, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := identity.WriteFileAtomic(cf, identity.EncodeCertificates(p.issuer.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	ca, err := identity.LoadCA(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	if !ca.Cert.Equal(p.issuer.Cert) {
		t.Fatal("loaded another certificate")
	}
	// A mismatched key is refused.
	kp2, _ := identity.EncodeKey(p.root.Key)
	if err := identity.WriteFileAtomic(kf, kp2, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadCA(cf, kf); err == nil {
		t.Error("LoadCA accepted a key of another certificate")
	}
}

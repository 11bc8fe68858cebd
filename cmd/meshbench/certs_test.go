package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/proxy/identity"
)

func runCertsArgs(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"certs"}, args...), &out, &errb)
	return code, out.String() + errb.String()
}

// verifyLeaf checks DIR/<svc>.pem against DIR/ca.pem and returns the leaf.
func verifyLeaf(t *testing.T, dir, svc string) *x509.Certificate {
	t.Helper()
	src, err := identity.NewSource(identity.SourceConfig{CertFile: filepath.Join(dir, svc+".pem"),
		KeyFile: filepath.Join(dir, svc+"-key.pem"), CAFile: filepath.Join(dir, "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	c := src.Certificate()
	id, err := src.Verify(c.Certificate, x509.ExtKeyUsageServerAuth)
	if err != nil {
		t.Fatalf("%s.pem does not verify against ca.pem: %v", svc, err)
	}
	if _, err := src.Verify(c.Certificate, x509.ExtKeyUsageClientAuth); err != nil {
		t.Fatalf("%s.pem is not a client certificate: %v", svc, err)
	}
	if _, s, ok := id.Service(); !ok || s != svc {
		t.Fatalf("%s.pem has identity %v", svc, id)
	}
	return c.Leaf
}

func TestCertsWritesAndReusesCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, out := runCertsArgs(t, "--out", dir, "--services", "client,server", "--trust-domain", "mesh.test", "--namespace", "bench", "--lifetime", "2h")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, f := range []string{"ca.pem", "issuer.pem", "issuer-key.pem", "client.pem", "client-key.pem", "server.pem", "server-key.pem"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, "-key.pem") && st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	leaf := verifyLeaf(t, dir, "server")
	if got := leaf.URIs[0].String(); got != "spiffe://mesh.test/ns/bench/sa/server" {
		t.Errorf("server URI SAN %q", got)
	}
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "server" {
		t.Errorf("server DNS SANs %v", leaf.DNSNames)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d.Hours() < 2 || d.Hours() > 2.1 {
		t.Errorf("lifetime %v, want 2h", d)
	}
	ca, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))

	// Again for one service: the CA is reused and the certificate rotated.
	code, out = runCertsArgs(t, "--out", dir, "--services", "server", "--trust-domain", "mesh.test", "--namespace", "bench")
	if code != 0 {
		t.Fatalf("second run: exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "ca.pem") {
		t.Errorf("second run rewrote the CA:\n%s", out)
	}
	if ca2, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); !bytes.Equal(ca, ca2) {
		t.Error("ca.pem changed without --force")
	}
	if rotated := verifyLeaf(t, dir, "server"); rotated.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Error("the server certificate was not re-issued")
	}
	verifyLeaf(t, dir, "client") // untouched and still valid

	// Another trust domain against the existing CA is refused.
	if code, out := runCertsArgs(t, "--out", dir, "--services", "x", "--trust-domain", "other.test"); code == 0 {
		t.Errorf("a different trust domain was accepted:\n%s", out)
	}
	// --force makes a new CA.
	if code, out := runCertsArgs(t, "--out", dir, "--services", "server", "--trust-domain", "mesh.test", "--force"); code != 0 {
		t.Fatalf("--force: exit %d:\n%s", code, out)
	}
	if ca2, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); bytes.Equal(ca, ca2) {
		t.Error("--force kept the old CA")
	}
	verifyLeaf(t, dir, "server")
}

func TestCertsRefusesBrokenCA(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out := runCertsArgs(t, "--out", dir, "--services", "a")
	if code == 0 || !strings.Contains(out, "--force") {
		t.Fatalf("exit %d, want a failure that mentions --force:\n%s", code, out)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "ca.pem")); string(b) != "not a certificate" {
		t.Error("the existing ca.pem was overwritten")
	}
}

func TestCertsFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--services", "a"},
		{"--out", t.TempDir()},
		{"--out", t.TempDir(), "--services", "A_b"},
		{"--out", t.TempDir(), "--services", "a,a"},
		{"--out", t.TempDir(), "--services", "a", "--lifetime", "-1h"},
		{"--out", t.TempDir(), "--services", "a", "--trust-domain", "Bad Domain"},
	} {
		if code, out := runCertsArgs(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2:\n%s", args, code, out)
		}
	}
}

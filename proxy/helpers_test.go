package proxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/meshbench/meshbench/proxy"
	"github.com/meshbench/meshbench/proxy/config"
)

// backend is an HTTP/1.1 + h2c test server on a loopback port.
type backend struct {
	addr  string
	conns atomic.Int64 // connections accepted
}

// startBackend serves h on 127.0.0.1 with HTTP/1.1 and h2c until the test
// ends.
func startBackend(t testing.TB, h http.Handler) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: ln.Addr().String()}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.conns.Add(1)
			}
		}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

// startProxy parses yml, starts the proxy and drains it when the test ends.
func startProxy(t testing.TB, yml string) *proxy.Server {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yml))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", yml, err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := proxy.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

// simpleConfig is one outbound listener (protocol proto, optional TLS) with
// one catch-all route to a cluster of endpoints.
func simpleConfig(proto, tlsDir string, upstream string, endpoints ...string) string {
	var b strings.Builder
	b.WriteString("admin: 127.0.0.1:0\nlisteners:\n- name: out\n  address: 127.0.0.1:0\n  protocol: " + proto + "\n")
	if tlsDir != "" {
		b.WriteString("  tls: {cert_file: " + filepath.Join(tlsDir, "cert.pem") + ", key_file: " + filepath.Join(tlsDir, "key.pem") + "}\n")
	}
	b.WriteString("  routes:\n  - match: {}\n    cluster: c\n    timeout: 10s\n")
	b.WriteString("clusters:\n- name: c\n  protocol: " + upstream + "\n  endpoints: [" + strings.Join(endpoints, ", ") + "]\n")
	return b.String()
}

func proxyURL(srv *proxy.Server, path string) string {
	return "http://" + srv.Addr("out").String() + path
}

func h1Client() *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, DisableCompression: true}, Timeout: 20 * time.Second}
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p, DisableCompression: true}, Timeout: 20 * time.Second}
}

// tlsClient trusts the test CA in dir and offers the given protocols by ALPN.
func tlsClient(t testing.TB, dir string, h2 bool) *http.Client {
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(h2)
	return &http.Client{Transport: &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}, Timeout: 20 * time.Second}
}

// selfSigned writes cert.pem and key.pem for localhost and 127.0.0.1 into a
// new directory and returns it.
func selfSigned(t testing.TB) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// counterValue sums the counters of family name whose labels include all
// of want.
func counterValue(t testing.TB, srv *proxy.Server, name string, want map[string]string) float64 {
	t.Helper()
	fams, err := srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelsMatch(m, want) {
				switch {
				case m.Counter != nil:
					sum += m.Counter.GetValue()
				case m.Gauge != nil:
					sum += m.Gauge.GetValue()
				case m.Histogram != nil:
					sum += float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	return sum
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

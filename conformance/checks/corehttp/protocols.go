package corehttp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
)

// requests is how many requests the protocol checks send on one
// connection.
const requests = 10

func h2cPriorKnowledge(e *conformance.Env) error {
	be, err := e.StartBackend(conformance.BackendOptions{Name: "be-h2c"})
	if err != nil {
		return err
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	if _, err := e.StartProxy(sidecar(listen, config.UpstreamSame, be.Addr), peers.TrafficH2C); err != nil {
		return err
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &p}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	for range requests {
		if _, err := get(e, c, "http://"+listen+"/hello", 2, be); err != nil {
			return fmt.Errorf("h2c with prior knowledge: %w", err)
		}
	}
	if n := be.Count(); n != requests {
		return fmt.Errorf("the backend saw %d requests, want %d", n, requests)
	}
	return nil
}

func h2ALPN(e *conformance.Env) error {
	be, err := e.StartBackend(conformance.BackendOptions{Name: "be-h2"})
	if err != nil {
		return err
	}
	listen, err := e.Addr()
	if err != nil {
		return err
	}
	dir, err := e.Dir()
	if err != nil {
		return err
	}
	certFile, keyFile, roots, err := serverCert(dir)
	if err != nil {
		return err
	}
	cfg := sidecar(listen, config.UpstreamHTTP1, be.Addr)
	cfg.Listeners[0].Protocol = config.ProtoH2
	cfg.Listeners[0].TLS = &config.TLS{CertFile: certFile, KeyFile: keyFile}
	if _, err := e.StartProxy(cfg, peers.TrafficH2C); err != nil {
		return err
	}
	// The client offers both, as browsers and most libraries do: the
	// server's choice is what is checked.
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	tr := &http.Transport{Protocols: &p, TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost", NextProtos: []string{"h2", "http/1.1"}}}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	for i := range requests {
		resp, err := get(e, c, "https://"+listen+"/hello", 0, be)
		if err != nil {
			return fmt.Errorf("over TLS: %w", err)
		}
		if resp.TLS == nil || resp.TLS.NegotiatedProtocol != "h2" || resp.ProtoMajor != 2 {
			got := "no TLS state"
			if resp.TLS != nil {
				got = fmt.Sprintf("%q", resp.TLS.NegotiatedProtocol)
			}
			return fmt.Errorf("GET %d: ALPN selected %s and the answer came over %s when the client offered h2 and http/1.1, want h2 and HTTP/2", i, got, resp.Proto)
		}
	}
	if n := be.Count(); n != requests {
		return fmt.Errorf("the backend saw %d requests, want %d", n, requests)
	}
	return nil
}

// serverCert writes a self-signed ECDSA certificate for localhost and
// 127.0.0.1 into dir and returns its files and a pool that trusts it.
func serverCert(dir string) (certFile, keyFile string, roots *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, fmt.Errorf("making a server key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		return "", "", nil, fmt.Errorf("making a serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, fmt.Errorf("making a server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return "", "", nil, fmt.Errorf("reading back the server certificate: %w", err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, fmt.Errorf("encoding the server key: %w", err)
	}
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", nil, fmt.Errorf("writing the server certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", nil, fmt.Errorf("writing the server key: %w", err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots, nil
}

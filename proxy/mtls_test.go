package proxy_test

// mTLS and authorization on real sockets: inbound verification and authz,
// destination- and source-identity modes between proxies, rotation under
// load, and grpc-go's interop suite over an mTLS hop between two proxies.
//
//	go test ./proxy -run 'MTLS|Authz|Rotation|Identity'

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/proxy"
	"github.com/meshbench/meshbench/proxy/identity"
)

const meshTD = "cluster.local"

// meshPKI is a root, an issuer and the directory of their files.
type meshPKI struct {
	t      testing.TB
	root   *identity.CA
	issuer *identity.CA
	dir    string
}

func newMeshPKI(t testing.TB) *meshPKI {
	t.Helper()
	root, err := identity.NewRoot(meshTD, 0)
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := root.NewIssuer(meshTD, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &meshPKI{t: t, root: root, issuer: issuer, dir: t.TempDir()}
	if err := identity.WriteFileAtomic(p.file("ca.pem"), identity.EncodeCertificates(root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *meshPKI) file(name string) string { return filepath.Join(p.dir, name) }

func svcID(name string) identity.ID { return identity.ServiceID(meshTD, "default", name) }

// issue signs a certificate for name (identity svcID(name) unless o sets
// one) and writes name.pem and name-key.pem.
func (p *meshPKI) issue(name string, o identity.LeafOptions) *identity.Leaf {
	p.t.Helper()
	if o.ID.IsZero() {
		o.ID = svcID(name)
	}
	if o.DNSNames == nil {
		o.DNSNames = []string{name}
	}
	l, err := p.issuer.Issue(o)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := identity.WriteLeaf(l, p.file(name+".pem"), p.file(name+"-key.pem")); err != nil {
		p.t.Fatal(err)
	}
	return l
}

func (p *meshPKI) roots() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.root.Cert)
	return pool
}

// tlsCert is l as a client certificate.
func tlsCert(l *identity.Leaf) *tls.Certificate {
	c := &tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key, Leaf: l.Cert}
	for _, ca := range l.Chain {
		c.Certificate = append(c.Certificate, ca.Raw)
	}
	return c
}

// clientTLS trusts p's root, expects the server name serverName and
// presents cert (none if nil).
func (p *meshPKI) clientTLS(cert *tls.Certificate, serverName string) *tls.Config {
	cfg := &tls.Config{RootCAs: p.roots(), ServerName: serverName, MinVersion: tls.VersionTLS13}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// mtlsClient is an HTTP client with its own connections that speaks h2 or
// HTTP/1.1 over TLS.
func (p *meshPKI) mtlsClient(cert *tls.Certificate, serverName string, h2 bool) *http.Client {
	var pr http.Protocols
	pr.SetHTTP1(!h2)
	pr.SetHTTP2(h2)
	return &http.Client{Transport: &http.Transport{Protocols: &pr, TLSClientConfig: p.clientTLS(cert, serverName),
		DisableCompression: true}, Timeout: 10 * time.Second}
}

func (p *meshPKI) inboundTLS(cert string) string {
	return fmt.Sprintf("{cert_file: %s, key_file: %s, client_ca_file: %s, reload_interval: 50ms}",
		p.file(cert+".pem"), p.file(cert+"-key.pem"), p.file("ca.pem"))
}

func metric(t testing.TB, srv *proxy.Server, name string, labels ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	return counterValue(t, srv, name, want)
}

func inboundURL(srv *proxy.Server, listener, path string) string {
	return "https://" + srv.Addr(listener).String() + path
}

// TestMTLSInboundAuthzMatrix runs clients with every kind of certificate
// against an inbound mTLS listener with an authz policy, over HTTP/1.1,
// h2 and gRPC.
func TestMTLSInboundAuthzMatrix(t *testing.T) {
	p := newMeshPKI(t)
	p.issue("server", identity.LeafOptions{})
	client := p.issue("client", identity.LeafOptions{})
	intruder := p.issue("intruder", identity.LeafOptions{})
	foreign := p.issue("foreign", identity.LeafOptions{ID: identity.ServiceID("other.domain", "default", "client")})
	expired := p.issue("expired", identity.LeafOptions{ID: svcID("client"), NotBefore: time.Now().Add(-3 * time.Hour), Lifetime: time.Hour})
	other := newMeshPKI(t).issue("client", identity.LeafOptions{})

	be := startBackend(t, echoHandler())
	_, grpcAddr := startGRPCBackend(t)
	srv := startProxy(t, fmt.Sprintf(`admin: 127.0.0.1:0
listeners:
- name: in
  address: 127.0.0.1:0
  direction: inbound
  tls: %s
  authz:
    allow:
    - identities: [%s]
  routes:
  - match: {grpc_service: grpc.testing.TestService}
    cluster: grpc
  - match: {}
    cluster: web
clusters:
- name: web
  endpoints: [%s]
- name: grpc
  endpoints: [%s]
`, p.inboundTLS("server"), svcID("client"), be.addr, grpcAddr))

	cases := []struct {
		name string
		cert *tls.Certificate
		want int // 0: the handshake fails
	}{
		{"no certificate", nil, 0},
		{"expired certificate", tlsCert(expired), 0},
		{"other CA", tlsCert(other), 0},
		{"wrong SAN (another trust domain)", tlsCert(foreign), http.StatusForbidden},
		{"unauthorized identity", tlsCert(intruder), http.StatusForbidden},
		{"authorized identity", tlsCert(client), http.StatusOK},
	}
	for _, h2 := range []bool{false, true} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/h2=%v", c.name, h2), func(t *testing.T) {
				fail0 := metric(t, srv, "tls_handshakes_total", "listener", "in", "result", "failure")
				ok0 := metric(t, srv, "tls_handshakes_total", "listener", "in", "result", "success")
				allow0 := metric(t, srv, "inbound_authz_allow_total", "listener", "in")
				deny0 := metric(t, srv, "inbound_authz_deny_total", "listener", "in")
				cl := p.mtlsClient(c.cert, "server", h2)
				defer cl.CloseIdleConnections()
				resp, err := cl.Get(inboundURL(srv, "in", "/hello"))
				if c.want == 0 {
					if err == nil {
						t.Fatalf("request succeeded with status %d; want a failed handshake", resp.StatusCode)
					}
					eventually(t, 5*time.Second, "a failed handshake counted", func() bool {
						return metric(t, srv, "tls_handshakes_total", "listener", "in", "result", "failure") > fail0
					})
					if got := metric(t, srv, "inbound_authz_allow_total", "listener", "in") + metric(t, srv, "inbound_authz_deny_total", "listener", "in"); got != allow0+deny0 {
						t.Errorf("authz saw a request without a handshake")
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				body := readAll(t, resp)
				if resp.StatusCode != c.want {
					t.Fatalf("status %d (%q), want %d", resp.StatusCode, body, c.want)
				}
				if wantProto := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != wantProto {
					t.Errorf("protocol %s, want HTTP/%d", resp.Proto, wantProto)
				}
				if got := metric(t, srv, "tls_handshakes_total", "listener", "in", "result", "success"); got != ok0+1 {
					t.Errorf("successful handshakes %v -> %v, want one more", ok0, got)
				}
				allow, deny := metric(t, srv, "inbound_authz_allow_total", "listener", "in"), metric(t, srv, "inbound_authz_deny_total", "listener", "in")
				if c.want == http.StatusOK && (allow != allow0+1 || deny != deny0) {
					t.Errorf("allow %v->%v deny %v->%v, want one more allow", allow0, allow, deny0, deny)
				}
				if c.want == http.StatusForbidden && (deny != deny0+1 || allow != allow0) {
					t.Errorf("allow %v->%v deny %v->%v, want one more deny", allow0, allow, deny0, deny)
				}
			})
		}
	}

	t.Run("grpc", func(t *testing.T) {
		for _, c := range []struct {
			name string
			leaf *identity.Leaf
			want codes.Code
		}{
			{"authorized", client, codes.OK},
			{"unauthorized", intruder, codes.PermissionDenied},
		} {
			cc, err := grpc.NewClient("passthrough:///"+srv.Addr("in").String(),
				grpc.WithTransportCredentials(credentials.NewTLS(p.clientTLS(tlsCert(c.leaf), "server"))))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err = testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{})
			cancel()
			cc.Close()
			if got := status.Code(err); got != c.want {
				t.Errorf("%s: gRPC status %v (%v), want %v", c.name, got, err, c.want)
			}
		}
		if got := metric(t, srv, "response_total", "route", "in/0", "grpc_status", "7"); got != 1 {
			t.Errorf("response_total{grpc_status=7} = %v, want 1", got)
		}
	})

	if got := metric(t, srv, "identity_cert_expiration_timestamp_seconds", "identity", svcID("server").String()); got <= float64(time.Now().Unix()) {
		t.Errorf("identity_cert_expiration_timestamp_seconds = %v, not in the future", got)
	}
}

// TestMTLSDestinationMode: client sidecar -> mTLS -> server sidecar ->
// backend, the client sidecar presenting the destination service's
// certificate and checking the server's identity.
func TestMTLSDestinationMode(t *testing.T) {
	p := newMeshPKI(t)
	p.issue("server", identity.LeafOptions{})
	p.issue("impostor", identity.LeafOptions{})
	be := startBackend(t, echoHandler())
	_, grpcAddr := startGRPCBackend(t)
	sidecar := func(cert string) *proxy.Server {
		return startProxy(t, fmt.Sprintf(`admin: 127.0.0.1:0
listeners:
- name: in
  address: 127.0.0.1:0
  direction: inbound
  tls: %s
  authz: {allow: [{identities: [%s]}]}
  routes:
  - match: {grpc_service: grpc.testing.TestService}
    cluster: grpc
  - match: {}
    cluster: web
clusters:
- name: web
  endpoints: [%s]
- name: grpc
  endpoints: [%s]
`, p.inboundTLS(cert), svcID("server"), be.addr, grpcAddr))
	}
	server := sidecar("server")
	impostor := sidecar("impostor")
	clientTLS := func(ep string, proto string) string {
		return fmt.Sprintf(`  protocol: %s
  endpoints: [%s]
  tls:
    mode: destination
    ca_file: %s
    server_identity: %s
    cert_file: %s
    key_file: %s
`, proto, ep, p.file("ca.pem"), svcID("server"), p.file("server.pem"), p.file("server-key.pem"))
	}
	client := startProxy(t, `admin: 127.0.0.1:0
listeners:
- name: out
  address: 127.0.0.1:0
  routes:
  - match: {path_prefix: /bad/}
    cluster: bad
  - match: {path_prefix: /h2/}
    cluster: server-h2
  - match: {}
    cluster: server
clusters:
- name: server
`+clientTLS(server.Addr("in").String(), "same")+`- name: server-h2
`+clientTLS(server.Addr("in").String(), "h2")+`- name: bad
`+clientTLS(impostor.Addr("in").String(), "same"))

	for _, c := range []struct {
		name   string
		client *http.Client
		path   string
		proto  string // as the backend saw it
	}{
		{"http1 over mTLS", h1Client(), "/x", "HTTP/1.1"},
		{"h2c downstream, h2 over mTLS", h2cClient(), "/x", "HTTP/2.0"},
		{"http1 downstream, h2 over mTLS", h1Client(), "/h2/x", "HTTP/2.0"}, // the server sidecar forwards HTTP/2 as h2c
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := c.client.Get(proxyURL(client, c.path))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, readAll(t, resp))
			}
			e := decodeEcho(t, resp)
			if e.Proto != c.proto {
				t.Errorf("backend saw %s, want %s", e.Proto, c.proto)
			}
		})
	}
	if got := metric(t, client, "tls_handshakes_total", "cluster", "server-h2", "result", "success"); got < 1 {
		t.Errorf("no h2 handshake counted for cluster server-h2")
	}
	if got := metric(t, server, "inbound_authz_allow_total", "listener", "in"); got < 3 {
		t.Errorf("server sidecar allowed %v requests, want 3", got)
	}

	t.Run("grpc over mTLS", func(t *testing.T) {
		cc := dialGRPCConn(t, client.Addr("out").String())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 10}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("server presenting another identity", func(t *testing.T) {
		before := metric(t, client, "tls_handshakes_total", "cluster", "bad", "result", "failure")
		resp, err := h1Client().Get(proxyURL(client, "/bad/x"))
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "upstream connect error") {
			t.Errorf("status %d %q, want 503 upstream connect error", resp.StatusCode, body)
		}
		if got := metric(t, client, "tls_handshakes_total", "cluster", "bad", "result", "failure"); got <= before {
			t.Errorf("handshake failures %v -> %v, want more", before, got)
		}
		if got := metric(t, impostor, "inbound_authz_allow_total", "listener", "in") + metric(t, impostor, "inbound_authz_deny_total", "listener", "in"); got != 0 {
			t.Errorf("the impostor received %v requests", got)
		}
	})
}

// TestMTLSSourceModeNodeProxy: a node proxy holds the certificates of two
// services of its node and presents, for each request, the certificate of
// the workload whose listener it came in on; the server proxy routes and
// authorizes by that identity.
func TestMTLSSourceModeNodeProxy(t *testing.T) {
	p := newMeshPKI(t)
	p.issue("server", identity.LeafOptions{})
	p.issue("a", identity.LeafOptions{})
	p.issue("b", identity.LeafOptions{})
	be := startBackend(t, echoHandler())
	server := startProxy(t, fmt.Sprintf(`admin: 127.0.0.1:0
listeners:
- name: in
  address: 127.0.0.1:0
  direction: inbound
  tls: %s
  authz:
    allow:
    - identities: [%s]
    - {identities: ["spiffe://cluster.local/ns/default/*"], path_prefix: /public/}
  routes:
  - match: {source_identity: %s}
    cluster: web
    request_headers: {add: {x-caller: a}}
  - match: {source_identity: "spiffe://cluster.local/ns/default/sa/*"}
    cluster: web
    request_headers: {add: {x-caller: other}}
clusters:
- name: web
  endpoints: [%s]
`, p.inboundTLS("server"), svcID("a"), svcID("a"), be.addr))
	node := startProxy(t, fmt.Sprintf(`admin: 127.0.0.1:0
listeners:
- name: out-a
  address: 127.0.0.1:0
  source_service: a
  routes: [{cluster: server}]
- name: out-b
  address: 127.0.0.1:0
  source_service: b
  routes: [{cluster: server}]
clusters:
- name: server
  endpoints: [%s]
  tls:
    mode: source
    ca_file: %s
    server_identities: {%s: %s}
    certs:
      a: {cert_file: %s, key_file: %s}
      b: {cert_file: %s, key_file: %s}
`, server.Addr("in"), p.file("ca.pem"), server.Addr("in"), svcID("server"),
		p.file("a.pem"), p.file("a-key.pem"), p.file("b.pem"), p.file("b-key.pem")))

	get := func(listener, path string) (int, echoed) {
		t.Helper()
		resp, err := h1Client().Get("http://" + node.Addr(listener).String() + path)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			readAll(t, resp)
			return resp.StatusCode, echoed{}
		}
		return resp.StatusCode, decodeEcho(t, resp)
	}
	if st, e := get("out-a", "/private"); st != http.StatusOK || e.Header.Get("X-Caller") != "a" {
		t.Errorf("from a: status %d, caller %q; want 200 from a", st, e.Header.Get("X-Caller"))
	}
	if st, _ := get("out-b", "/private"); st != http.StatusForbidden {
		t.Errorf("from b to /private: status %d, want 403", st)
	}
	if st, e := get("out-b", "/public/x"); st != http.StatusOK || e.Header.Get("X-Caller") != "other" {
		t.Errorf("from b to /public/: status %d, caller %q; want 200 from other", st, e.Header.Get("X-Caller"))
	}
	// Both certificates are the node proxy's: both expiries are exposed.
	for _, svc := range []string{"a", "b"} {
		if metric(t, node, "identity_cert_expiration_timestamp_seconds", "identity", svcID(svc).String()) == 0 {
			t.Errorf("no expiry series for %s", svc)
		}
	}
}

// TestMTLSRotationUnderLoad re-issues the server's certificate while
// about 100 requests per second run through an inbound mTLS listener:
// no request fails, a request in flight across the rotation completes,
// and new handshakes see the new certificate.
func TestMTLSRotationUnderLoad(t *testing.T) {
	p := newMeshPKI(t)
	first := p.issue("server", identity.LeafOptions{})
	client := tlsCert(p.issue("client", identity.LeafOptions{}))
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(1500 * time.Millisecond)
		}
		io.WriteString(w, "ok")
	}))
	srv := startProxy(t, fmt.Sprintf(`admin: 127.0.0.1:0
listeners:
- name: in
  address: 127.0.0.1:0
  direction: inbound
  tls: %s
  authz: {allow: [{identities: [%s]}]}
  routes: [{cluster: web}]
clusters:
- name: web
  endpoints: [%s]
`, p.inboundTLS("server"), svcID("client"), be.addr))

	const (
		duration = 3 * time.Second
		workers  = 4
		interval = 40 * time.Millisecond // 4 workers: 100 requests/s
	)
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	// Requests each kept-alive worker completed once the new certificate
	// was in place.
	var rotated atomic.Bool
	var afterRotation [workers]atomic.Int64
	record := func(err error) {
		sent.Add(1)
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err)
		}
	}
	do := func(cl *http.Client, path string) (*x509.Certificate, error) {
		resp, err := cl.Get(inboundURL(srv, "in", path))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0], nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		h2 := w%2 == 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Kept-alive connections that outlive the rotation.
			cl := p.mtlsClient(client, "server", h2)
			defer cl.CloseIdleConnections()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				_, err := do(cl, "/load")
				record(err)
				if err == nil && rotated.Load() {
					afterRotation[w].Add(1)
				}
			}
		}()
	}
	// A request in flight while the certificate changes.
	slowDone := make(chan error, 1)
	go func() {
		cl := p.mtlsClient(client, "server", false)
		defer cl.CloseIdleConnections()
		_, err := do(cl, "/slow")
		slowDone <- err
	}()
	// New connections, each with a new handshake, report the serial.
	var serialsMu sync.Mutex
	var serials []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			cl := p.mtlsClient(client, "server", false)
			c, err := do(cl, "/new")
			cl.CloseIdleConnections()
			record(err)
			if err == nil {
				serialsMu.Lock()
				serials = append(serials, c.SerialNumber.String())
				serialsMu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()

	time.Sleep(time.Second)
	second := p.issue("server", identity.LeafOptions{Lifetime: 2 * time.Hour})
	rotated.Store(true)
	wg.Wait()
	if err := <-slowDone; err != nil {
		t.Errorf("request in flight across the rotation: %v", err)
	}
	if n, f := sent.Load(), failed.Load(); f != 0 || n == 0 {
		t.Errorf("%d requests, %d failed (first error: %v); want requests and none failed", n, f, firstErr.Load())
	}
	for w := range afterRotation {
		if afterRotation[w].Load() == 0 {
			t.Errorf("worker %d completed no request on its kept-alive connection after the rotation", w)
		}
	}
	serialsMu.Lock()
	defer serialsMu.Unlock()
	if len(serials) < 4 || serials[0] != first.Cert.SerialNumber.String() || serials[len(serials)-1] != second.Cert.SerialNumber.String() {
		t.Errorf("serials seen by new handshakes %v; want %s first and %s last", serials, first.Cert.SerialNumber, second.Cert.SerialNumber)
	}
	if got := metric(t, srv, "identity_cert_expiration_timestamp_seconds", "identity", svcID("server").String()); int64(got) != second.Cert.NotAfter.Unix() {
		t.Errorf("expiry gauge %v, want the new certificate's %v", got, second.Cert.NotAfter.Unix())
	}
}

// TestMTLSInteropGRPC runs grpc-go's interop cases through an mTLS hop
// between two proxies (the interop client cannot present a client
// certificate): client -> h2c -> proxy A -> h2 over mTLS -> proxy B
// (inbound mTLS + authz) -> interop server.
func TestMTLSInteropGRPC(t *testing.T) {
	serverBin := interopGoTool(t, "server")
	clientBin := interopGoTool(t, "client")
	upstream := interopStartServer(t, serverBin)
	p := newMeshPKI(t)
	p.issue("interop", identity.LeafOptions{})
	p.issue("client", identity.LeafOptions{})
	b := interopStartProxy(t, fmt.Sprintf(`listeners:
- name: in
  address: 127.0.0.1:0
  direction: inbound
  tls: %s
  authz: {allow: [{identities: [%s], methods: [POST]}]}
  routes: [{match: {}, cluster: interop, timeout: 30s}]
clusters:
- name: interop
  endpoints: [%s]
`, p.inboundTLS("interop"), svcID("client"), upstream))
	a := interopStartProxy(t, fmt.Sprintf(`listeners:
- name: out
  address: 127.0.0.1:0
  routes: [{match: {}, cluster: interop, timeout: 30s}]
clusters:
- name: interop
  protocol: h2
  endpoints: [%s]
  tls:
    ca_file: %s
    server_identity: %s
    cert_file: %s
    key_file: %s
`, b.Addr("in"), p.file("ca.pem"), svcID("interop"), p.file("client.pem"), p.file("client-key.pem")))
	port := a.Addr("out").(*net.TCPAddr).Port
	strict := 0
	for _, tc := range interopCases {
		if !interopMayMissProxy[tc] {
			strict++
		}
		t.Run(tc, func(t *testing.T) {
			interopRunClient(t, clientBin, []string{"--server_host=127.0.0.1", "--server_port=" + strconv.Itoa(port), "--test_case=" + tc})
		})
	}
	if got := interopRouteRequests(t, b, "in"); got < float64(strict) {
		t.Errorf("the mTLS side counted %v requests for %d cases, want at least %d", got, len(interopCases), strict)
	}
	if got := metric(t, b, "inbound_authz_deny_total", "listener", "in"); got != 0 {
		t.Errorf("%v interop requests denied", got)
	}
	if got := metric(t, a, "tls_handshakes_total", "cluster", "interop", "result", "success"); got < 1 {
		t.Error("no upstream handshake counted")
	}
}

// TestMTLSGatewaysOnly: a node proxy whose clusters set tls.gateways_only
// delivers to its own pod in cleartext and to the other node's pod through
// that node's mTLS inbound listener, over HTTP/1.1 and gRPC (h2 to the
// gateway, h2c to its own pod). Every request succeeds, each pod gets the
// share its weight gives, and the handshakes are all with the gateway.
func TestMTLSGatewaysOnly(t *testing.T) {
	p := newMeshPKI(t)
	p.issue("client", identity.LeafOptions{})
	p.issue("echo", identity.LeafOptions{})
	local, remote := startPod(t, "local", "127.0.1.10"), startPod(t, "remote", "127.0.2.10")
	nodeB := startProxy(t, fmt.Sprintf(`listeners:
- name: in
  address: 127.0.2.1:0
  direction: inbound
  tls: %s
  authz: {allow: [{identities: [%s]}]}
  routes: [{cluster: local, timeout: 5s}]
clusters:
- name: local
  original_dst: {allowed: [%s, %s]}
`, p.inboundTLS("echo"), svcID("client"), remote.http, remote.grpc))
	gw := nodeB.Addr("in").String()
	cluster := func(name, protocol string, addr func(*pod) string) string {
		return fmt.Sprintf(`- name: %s
  protocol: %s
  balancer: {policy: weighted_round_robin}
  endpoints: [%s, %s]
  weights: {%s: 1, %s: 2}
  via: {gateways: {%s: %s}}
  tls: {ca_file: %s, server_identity: %s, cert_file: %s, key_file: %s, gateways_only: true}
`, name, protocol, addr(local), addr(remote), addr(local), addr(remote), addr(remote), gw,
			p.file("ca.pem"), svcID("echo"), p.file("client.pem"), p.file("client-key.pem"))
	}
	nodeA := startProxy(t, `listeners:
- name: out
  address: 127.0.1.1:0
  routes:
  - {match: {grpc_service: grpc.testing.TestService}, cluster: pods-grpc, timeout: 5s}
  - {cluster: pods-http, timeout: 5s}
clusters:
`+cluster("pods-http", "same", func(p *pod) string { return p.http })+
		cluster("pods-grpc", "h2", func(p *pod) string { return p.grpc }))

	const requests = 3 * 40
	for _, tc := range []struct {
		name, cluster string
		spec          loadgen.Spec
	}{
		{"http1", "pods-http", loadgen.Spec{Target: proxyURL(nodeA, "/"), Protocol: loadgen.HTTP1, Connections: 1}},
		{"grpc", "pods-grpc", loadgen.Spec{Target: nodeA.Addr("out").String(), Protocol: loadgen.GRPC, Connections: 1, Streams: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Requests, spec.Timeout, spec.SpinWindow = requests, 5*time.Second, -1
			res, err := loadgen.Run(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != requests || res.Errors.Total != 0 {
				t.Fatalf("%d requests, errors %v, statuses %v", res.Requests, res.Errors.ByClass, res.StatusCodes)
			}
			if res.Endpoints["local"] != requests/3 || res.Endpoints["remote"] != 2*requests/3 {
				t.Errorf("shares %v, want local %d and remote %d", res.Endpoints, requests/3, 2*requests/3)
			}
			ok := metric(t, nodeA, "tls_handshakes_total", "cluster", tc.cluster, "result", "success")
			failed := metric(t, nodeA, "tls_handshakes_total", "cluster", tc.cluster, "result", "failure")
			if ok < 1 || failed != 0 {
				t.Errorf("cluster %s handshakes: %v succeeded, %v failed; want at least one, none failed", tc.cluster, ok, failed)
			}
		})
	}
	// Only the gateway's connections are TLS: the local pod was reached
	// in cleartext (its server speaks nothing else) and every handshake
	// nodeB accepted came from nodeA's two clusters.
	if got := metric(t, nodeB, "tls_handshakes_total", "listener", "in", "result", "success"); got < 2 {
		t.Errorf("gateway accepted %v handshakes, want one per cluster at least", got)
	}
	if local.conns.Load() == 0 {
		t.Error("the local pod's HTTP port accepted no connection")
	}
}

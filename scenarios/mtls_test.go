package scenarios_test

import (
	"bytes"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/identity"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/local"
	"github.com/meshbench/meshbench/scenarios/platform"
)

// mtlsTopo is topo with the mtls dimension: echo-0 and echo-2 on node-0
// with the client, echo-1 on node-1.
const mtlsTopo = `name: mtlstopo
nodes: 2
services: [{name: echo, replicas: 3, backend: {latency: "fixed:1ms"}}]
load: {rate: 100, connections: 6, duration: 5s, timeout: 2s}
matrix:
  topology: [sidecar, daemonset]
  mtls: [off, on]
`

// mtlsPlan plans a variant of mtlsTopo and issues its certificates into a
// temporary directory that becomes the working directory, as the
// platform does for the proxies.
func mtlsPlan(t *testing.T, variant string) (*scenarios.Plan, string) {
	t.Helper()
	s, err := scenarios.Parse("mtlstopo.yaml", []byte(mtlsTopo))
	if err != nil {
		t.Fatal(err)
	}
	p := planOf(t, s, variant, scenarios.PlanOptions{})
	dir := t.TempDir()
	t.Chdir(dir)
	if err := platform.WriteCertificates(p, dir, 0); err != nil {
		t.Fatal(err)
	}
	return p, dir
}

func proxyNamed(t *testing.T, p *scenarios.Plan, name string) *config.Config {
	t.Helper()
	for _, px := range p.Proxies {
		if px.Name == name {
			return validConfig(t, p, px)
		}
	}
	t.Fatalf("no proxy %s", name)
	return nil
}

func listener(c *config.Config, name string) *config.Listener {
	for i := range c.Listeners {
		if c.Listeners[i].Name == name {
			return &c.Listeners[i]
		}
	}
	return nil
}

const (
	clientID = "spiffe://cluster.local/ns/default/sa/client"
	echoID   = "spiffe://cluster.local/ns/default/sa/echo"
)

func TestPlanMTLSOff(t *testing.T) {
	p, dir := mtlsPlan(t, "sidecar-off")
	if p.MTLS != scenarios.MTLSOff || len(p.Identities) != 0 || p.TrustDomain != "" {
		t.Errorf("mtls %q identities %v trust domain %q", p.MTLS, p.Identities, p.TrustDomain)
	}
	if _, err := os.Stat(filepath.Join(dir, "certs")); !os.IsNotExist(err) {
		t.Errorf("certificates written for a plan without mTLS: %v", err)
	}
	for _, px := range p.Proxies {
		c := validConfig(t, p, px)
		for _, l := range c.Listeners {
			if l.TLS != nil || l.Authz != nil {
				t.Errorf("%s: listener %s has tls or authz", px.Name, l.Name)
			}
		}
		for _, cl := range c.Clusters {
			if cl.TLS != nil {
				t.Errorf("%s: cluster %s has tls", px.Name, cl.Name)
			}
		}
	}
}

func TestPlanMTLSSidecar(t *testing.T) {
	p, dir := mtlsPlan(t, "sidecar-on")
	if p.MTLS != scenarios.MTLSOn || !slices.Equal(p.Identities, []string{"client", "echo"}) ||
		p.TrustDomain != "cluster.local" || p.Namespace != "default" {
		t.Errorf("mtls %q identities %v trust domain %q namespace %q", p.MTLS, p.Identities, p.TrustDomain, p.Namespace)
	}
	// The certificates carry the identities the configurations expect.
	for svc, want := range map[string]string{"client": clientID, "echo": echoID} {
		data, err := os.ReadFile(filepath.Join(dir, "certs", svc+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		certs, err := identity.ParseCertificates(data)
		if err != nil {
			t.Fatal(err)
		}
		if id, err := identity.CertificateID(certs[0]); err != nil || id.String() != want {
			t.Errorf("%s.pem: identity %v (%v), want %s", svc, id, err, want)
		}
	}
	client := proxyNamed(t, p, "sidecar-client-0")
	for name, proto := range map[string]string{"echo": config.UpstreamSame, "echo.grpc": config.UpstreamH2} {
		cl := cluster(client, name)
		want := &config.UpstreamTLS{Mode: config.TLSModeSource, CAFile: "certs/ca.pem", ServerIdentity: echoID,
			CertFile: "certs/client.pem", KeyFile: "certs/client-key.pem", ReloadInterval: cl.TLS.ReloadInterval}
		if cl.Protocol != proto || cl.TLS == nil || !equalTLS(cl.TLS, want) {
			t.Errorf("client cluster %s: protocol %s tls %+v", name, cl.Protocol, cl.TLS)
		}
	}
	server := proxyNamed(t, p, "sidecar-echo-1")
	in := listener(server, "inbound")
	if in.TLS == nil || in.TLS.CertFile != "certs/echo.pem" || in.TLS.KeyFile != "certs/echo-key.pem" || in.TLS.ClientCAFile != "certs/ca.pem" {
		t.Errorf("server inbound tls %+v", in.TLS)
	}
	if in.Authz == nil || len(in.Authz.Allow) != 1 || !slices.Equal(in.Authz.Allow[0].Identities, []string{clientID}) {
		t.Errorf("server inbound authz %+v", in.Authz)
	}
	if cl := cluster(server, "local.grpc"); cl.TLS != nil || cl.Protocol != config.UpstreamH2C {
		t.Errorf("the app hop stays cleartext: %+v", cl)
	}
}

func equalTLS(a, b *config.UpstreamTLS) bool {
	return a.Mode == b.Mode && a.CAFile == b.CAFile && a.GatewaysOnly == b.GatewaysOnly && a.ServerIdentity == b.ServerIdentity &&
		a.CertFile == b.CertFile && a.KeyFile == b.KeyFile && maps.Equal(a.ServerIdentities, b.ServerIdentities) &&
		maps.EqualFunc(a.Certs, b.Certs, func(x, y config.CertPair) bool { return x == y })
}

func TestPlanMTLSDaemonSet(t *testing.T) {
	p, _ := mtlsPlan(t, "daemonset-on")
	n0 := proxyNamed(t, p, "node-0")
	out := listener(n0, "outbound")
	if out == nil || out.SourceService != "client" {
		t.Fatalf("node-0 outbound %+v", out)
	}
	for _, name := range []string{"echo", "echo.grpc"} {
		cl := cluster(n0, name)
		want := &config.UpstreamTLS{Mode: config.TLSModeSource, CAFile: "certs/ca.pem", ServerIdentity: echoID,
			Certs:        map[string]config.CertPair{"client": {CertFile: "certs/client.pem", KeyFile: "certs/client-key.pem"}},
			GatewaysOnly: true}
		if cl.TLS == nil || !equalTLS(cl.TLS, want) || cl.Protocol == config.UpstreamH2C {
			t.Errorf("node-0 cluster %s: protocol %s tls %+v", name, cl.Protocol, cl.TLS)
		}
		// Only the other node's pod has a gateway: node-0's own pods are
		// delivered to directly, and mTLS covers only the hop to node-1.
		if cl.Via == nil || len(cl.Via.Gateways) != 1 || len(cl.Endpoints) != 3 {
			t.Errorf("node-0 cluster %s: gateways %+v for %v", name, cl.Via, cl.Endpoints)
		}
		for ep, gw := range cl.Via.Gateways {
			if pod := podAt(t, p, ep); pod == nil || pod.Node != "node-1" || gw != net.JoinHostPort(onLoopback(t, p).Node("node-1"), strconv.Itoa(scenarios.PortInbound)) {
				t.Errorf("node-0 cluster %s: gateway %s for %s", name, gw, ep)
			}
		}
	}
	n1 := proxyNamed(t, p, "node-1")
	if l := listener(n1, "outbound"); l != nil {
		t.Errorf("node-1 has no client pod but an outbound listener: %+v", l)
	}
	for name, c := range map[string]*config.Config{"node-0": n0, "node-1": n1} {
		in := listener(c, "inbound")
		if in == nil || in.TLS == nil || in.TLS.CertFile != "certs/echo.pem" || in.TLS.ClientCAFile != "certs/ca.pem" ||
			in.Authz == nil || !slices.Equal(in.Authz.Allow[0].Identities, []string{clientID}) {
			t.Errorf("%s inbound %+v", name, in)
		}
	}
}

func TestPlanMTLSRefusedOneSided(t *testing.T) {
	s, err := scenarios.Parse("m.yaml", []byte(strings.Replace(mtlsTopo, "[sidecar, daemonset]", "[sidecar, client-sidecar]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	c := result.Cell{ID: "client-sidecar-on-r1", Variant: "client-sidecar-on",
		Labels: map[string]string{"topology": "client-sidecar", "mtls": "on"}, Repeat: 1}
	if _, err := s.Plan(c, scenarios.PlanOptions{}); err == nil || !strings.Contains(err.Error(), "mtls must be off") {
		t.Errorf("client-sidecar with mtls on: %v", err)
	}
}

func TestDescribeMTLS(t *testing.T) {
	s, err := scenarios.Builtin("mtls")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Describe(&b, scenarios.CellOptions{}, local.Loopback{}.Resolver); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"topology sidecar, proxy reference, mtls on",
		"topology daemonset, proxy reference, mtls off",
		"identities (certificates in certs/): client=" + clientID + " echo=" + echoID,
		"source_service: client",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("description lacks %q", want)
		}
	}
}

// podAt returns the pod whose loopback address endpoint (host:port) is
// on, or nil.
func podAt(t *testing.T, p *scenarios.Plan, endpoint string) *scenarios.Pod {
	host, _, _ := strings.Cut(endpoint, ":")
	a := onLoopback(t, p)
	for i := range p.Pods {
		if a.Pod(p.Pods[i].Name) == host {
			return &p.Pods[i]
		}
	}
	return nil
}

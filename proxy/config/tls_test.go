package config_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/identity"
)

// writePKI writes ca.pem and <svc>.pem/<svc>-key.pem for each service into
// a new directory.
func writePKI(t *testing.T, services ...string) string {
	t.Helper()
	dir := t.TempDir()
	root, err := identity.NewRoot("cluster.local", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := identity.WriteFileAtomic(filepath.Join(dir, "ca.pem"), identity.EncodeCertificates(root.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range services {
		l, err := root.Issue(identity.LeafOptions{ID: identity.ServiceID("cluster.local", "default", s)})
		if err != nil {
			t.Fatal(err)
		}
		if err := identity.WriteLeaf(l, filepath.Join(dir, s+".pem"), filepath.Join(dir, s+"-key.pem")); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func mtlsConfig(dir string) string {
	f := func(n string) string { return filepath.Join(dir, n) }
	return fmt.Sprintf(`listeners:
- name: in
  address: 127.0.0.1:4143
  direction: inbound
  tls: {cert_file: %s, key_file: %s, client_ca_file: %s}
  authz:
    allow:
    - {identities: ["spiffe://cluster.local/ns/default/sa/client"], path_prefix: /api/, methods: [GET]}
  routes:
  - match: {source_identity: "spiffe://cluster.local/ns/default/*"}
    cluster: local
- name: out-a
  address: 127.0.0.1:4140
  source_service: a
  routes:
  - cluster: remote
clusters:
- name: local
  endpoints: [127.0.0.1:8080]
- name: remote
  protocol: same
  endpoints: [127.0.0.1:9443, 127.0.0.1:9444]
  tls:
    ca_file: %s
    server_identity: spiffe://cluster.local/ns/default/sa/server
    certs:
      a: {cert_file: %s, key_file: %s}
      b: {cert_file: %s, key_file: %s}
`, f("server.pem"), f("server-key.pem"), f("ca.pem"), f("ca.pem"), f("a.pem"), f("a-key.pem"), f("b.pem"), f("b-key.pem"))
}

func TestMTLSConfigDefaults(t *testing.T) {
	dir := writePKI(t, "server", "a", "b")
	c, err := config.Parse("proxy.yaml", []byte(mtlsConfig(dir)))
	if err != nil {
		t.Fatal(err)
	}
	lt := c.Listeners[0].TLS
	if lt.MinVersion != "1.3" || lt.RequireClientCert == nil || !*lt.RequireClientCert || lt.ReloadInterval.D().Seconds() != 1 {
		t.Errorf("listener tls defaults: %+v", lt)
	}
	if m := c.Clusters[1].TLS.Mode; m != config.TLSModeSource {
		t.Errorf("default mode %q", m)
	}
	if p := c.Listeners[0].Authz.Policy(); !p.Allow(identity.ServiceID("cluster.local", "default", "client"), "GET", "/api/x") || p.Allow(identity.ServiceID("cluster.local", "default", "x"), "GET", "/api/x") {
		t.Error("authz policy does not follow the rules")
	}
	// A TLS listener without client_ca_file keeps TLS 1.2 as its minimum.
	plain := strings.Replace(mtlsConfig(dir), ", client_ca_file: "+filepath.Join(dir, "ca.pem"), "", 1)
	plain = strings.Replace(plain, `  - match: {source_identity: "spiffe://cluster.local/ns/default/*"}`, "  - match: {}", 1)
	plain = strings.Replace(plain, `identities: ["spiffe://cluster.local/ns/default/sa/client"], `, "", 1)
	c, err = config.Parse("proxy.yaml", []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	if lt := c.Listeners[0].TLS; lt.MinVersion != "1.2" || lt.RequireClientCert != nil {
		t.Errorf("plain TLS defaults: %+v", lt)
	}
}

func TestMTLSConfigErrors(t *testing.T) {
	dir := writePKI(t, "server", "a", "b")
	good := mtlsConfig(dir)
	ca := filepath.Join(dir, "ca.pem")
	cases := []struct {
		name, old, new string
		want           []string
	}{
		{"bad min version", "client_ca_file: " + ca + "}", "client_ca_file: " + ca + ", min_version: '1.1'}",
			[]string{`listeners[0].tls.min_version: "1.1": must be 1.2 or 1.3`}},
		{"missing client ca", "client_ca_file: " + ca, "client_ca_file: /nonexistent/ca.pem",
			[]string{"listeners[0].tls.client_ca_file: open /nonexistent/ca.pem"}},
		{"require without ca", ", client_ca_file: " + ca + "}", ", require_client_cert: true}",
			[]string{"listeners[0].tls.require_client_cert: needs client_ca_file",
				"listeners[0].authz.allow[0].identities: need the listener's tls.client_ca_file",
				"listeners[0].routes[0].match.source_identity: needs the listener's tls.client_ca_file"}},
		{"bad identity pattern", `"spiffe://cluster.local/ns/default/sa/client"`, `"client"`,
			[]string{`listeners[0].authz.allow[0].identities[0]: SPIFFE ID "client": scheme must be "spiffe"`}},
		{"bad source identity", `source_identity: "spiffe://cluster.local/ns/default/*"`, `source_identity: "spiffe://a/*/b*"`,
			[]string{`listeners[0].routes[0].match.source_identity: identity pattern "spiffe://a/*/b*"`}},
		{"bad method and path", "path_prefix: /api/, methods: [GET]", "path_prefix: api, methods: [get]",
			[]string{`listeners[0].authz.allow[0].path_prefix: "api": must start with /`, `listeners[0].authz.allow[0].methods[0]: "get": an upper-case HTTP method`}},
		{"empty authz", "    allow:\n    - {identities: [\"spiffe://cluster.local/ns/default/sa/client\"], path_prefix: /api/, methods: [GET]}\n", "    allow: []\n",
			[]string{"listeners[0].authz.allow: at least one rule is required"}},
		{"no server identity", "    server_identity: spiffe://cluster.local/ns/default/sa/server\n", "",
			[]string{"clusters[1].tls.server_identity: required (or server_identities)"}},
		{"partial server identities", "    server_identity: spiffe://cluster.local/ns/default/sa/server\n", "    server_identities: {127.0.0.1:9443: spiffe://cluster.local/ns/default/sa/server}\n",
			[]string{`clusters[1].endpoints[1]: "127.0.0.1:9444": no expected identity`}},
		{"bad server identity", "server_identity: spiffe://cluster.local/ns/default/sa/server", "server_identity: https://server",
			[]string{`clusters[1].tls.server_identity: SPIFFE ID "https://server": scheme must be "spiffe"`}},
		{"bad mode", "    ca_file:", "    mode: both\n    ca_file:",
			[]string{`clusters[1].tls.mode: "both": must be source or destination`}},
		{"destination with certs", "    ca_file:", "    mode: destination\n    ca_file:",
			[]string{"clusters[1].tls.certs: mode destination presents the destination service's certificate"}},
		{"h2c with tls", "  protocol: same\n  endpoints: [127.0.0.1:9443", "  protocol: h2c\n  endpoints: [127.0.0.1:9443",
			[]string{"clusters[1].protocol: h2c is cleartext HTTP/2; with tls use h2 or same"}},
		{"gateways only without via", "    ca_file:", "    gateways_only: true\n    ca_file:",
			[]string{"clusters[1].tls.gateways_only: needs via"}},
		{"h2 without tls", "- name: local\n", "- name: local\n  protocol: h2\n",
			[]string{"clusters[0].protocol: h2 is HTTP/2 over TLS and needs tls"}},
		{"source service without a certificate", "source_service: a", "source_service: c",
			[]string{`listeners[1].source_service: "c": cluster "remote" holds no certificate for it (has: [a b])`}},
		{"no source service", "  source_service: a\n", "",
			[]string{`listeners[1].routes[0].cluster: "remote" holds a certificate per source service: the listener needs source_service`}},
		{"broken client certificate", "a: {cert_file: " + filepath.Join(dir, "a.pem"), "a: {cert_file: " + filepath.Join(dir, "b.pem"),
			[]string{"clusters[1].tls.certs.a: loading certificate and key: tls: private key does not match public key"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(good, c.old) {
				t.Fatalf("test case does not apply: %q not in the config", c.old)
			}
			_, err := config.Parse("proxy.yaml", []byte(strings.Replace(good, c.old, c.new, 1)))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

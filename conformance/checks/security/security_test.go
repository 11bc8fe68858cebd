package security

import (
	"strings"
	"testing"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/conformancetest"
	"github.com/meshbench/meshbench/proxy/config"
)

func TestMain(m *testing.M) { conformancetest.Main(m, nil) }

// listenerTLS edits the TLS block of every listener that has one.
func listenerTLS(f func(*config.TLS)) *conformance.Sabotage {
	return &conformance.Sabotage{Config: func(c *config.Config) {
		for i := range c.Listeners {
			if t := c.Listeners[i].TLS; t != nil {
				f(t)
			}
		}
	}}
}

// noClientCA turns the listeners' mTLS into server-only TLS.
var noClientCA = listenerTLS(func(t *config.TLS) { t.ClientCAFile, t.RequireClientCert = "", nil })

func TestMTLSRejects(t *testing.T) {
	for _, name := range []string{"no-cert", "other-ca", "expired"} {
		t.Run(name, func(t *testing.T) {
			c := conformancetest.Find(t, Checks(), "security/mtls-rejects-"+name)
			conformancetest.Pass(t, c)
			conformancetest.FailBecause(t, c, noClientCA, "want a failed handshake or a 4xx")
		})
	}
}

func TestMTLSRejectsWrongSAN(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "security/mtls-rejects-wrong-san")
	conformancetest.Pass(t, c)
	// The proxy told to expect the identity the impostor presents: what a
	// proxy that verifies only the chain to the trust bundle does.
	conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) {
		for i := range c.Clusters {
			if c.Clusters[i].Name == "wrong" {
				c.Clusters[i].TLS.ServerIdentity = strings.Replace(c.Clusters[i].TLS.ServerIdentity, "/sa/expected", "/sa/impostor", 1)
			}
		}
	}}, "want 502 or 503")
}

func TestAuthzPerService(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "security/authz-per-service")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) {
		for i := range c.Listeners {
			c.Listeners[i].Authz = nil
		}
	}}, "want 403")
}

func TestSourceVsDestination(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "security/source-vs-destination-cert")
	conformancetest.Pass(t, c)
	// The certificate files swapped: each cluster presents another
	// service's certificate.
	conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) {
		var src, dst *config.UpstreamTLS
		for i := range c.Clusters {
			switch c.Clusters[i].Name {
			case "source":
				src = c.Clusters[i].TLS
			case "destination":
				dst = c.Clusters[i].TLS
			}
		}
		front := src.Certs["frontend"]
		src.Certs["frontend"], src.Certs["other"] = src.Certs["other"], front
		dst.CertFile, dst.KeyFile = front.CertFile, front.KeyFile
	}}, "the backend saw the client identity")
}

func TestRotationUnderLoad(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "security/rotation-under-load")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, listenerTLS(func(t *config.TLS) { t.ReloadInterval = config.Duration(3600e9) }), "no connection saw the new certificate")
}

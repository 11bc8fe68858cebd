package corehttp

import (
	"strings"
	"testing"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/conformancetest"
	"github.com/meshbench/meshbench/proxy/config"
)

func TestMain(m *testing.M) { conformancetest.Main(m, nil) }

func TestChecksValid(t *testing.T) {
	if err := conformance.Validate(Checks()); err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks() {
		if c.Profile() != conformance.ProfileCoreHTTP {
			t.Errorf("%s: not in profile %s", c.ID, conformance.ProfileCoreHTTP)
		}
	}
}

func TestHTTP1(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "core-http/http1")
	conformancetest.Pass(t, c)
	// An endpoint nobody listens on: the proxy answers 502.
	conformancetest.Fail(t, conformancetest.Reference(t), c, &conformance.Sabotage{Config: func(c *config.Config) {
		c.Clusters[0].Endpoints = []string{"127.0.0.1:9"}
	}})
}

// listenerProtocol is a sabotage that sets every listener's protocol.
func listenerProtocol(p string) *conformance.Sabotage {
	return &conformance.Sabotage{Config: func(c *config.Config) {
		for i := range c.Listeners {
			c.Listeners[i].Protocol = p
		}
	}}
}

// oneCluster is a sabotage that sends every route to the first route's
// cluster.
var oneCluster = &conformance.Sabotage{Config: func(c *config.Config) {
	for i := range c.Listeners {
		for j := range c.Listeners[i].Routes {
			c.Listeners[i].Routes[j].Cluster = c.Listeners[i].Routes[0].Cluster
		}
	}
}}

// failing is how each check is shown to fail: against which target, with
// which sabotage, and a part of the reason it must give.
func failing(t *testing.T, id string) (*conformance.Target, *conformance.Sabotage, string) {
	switch id {
	case "core-http/h2c-prior-knowledge":
		return conformancetest.Reference(t), listenerProtocol(config.ProtoHTTP1), "h2c with prior knowledge"
	case "core-http/h2-alpn":
		return conformancetest.Reference(t), listenerProtocol(config.ProtoHTTP1), `ALPN selected "http/1.1"`
	case "core-http/route-authority", "core-http/route-path-prefix", "core-http/route-header":
		return conformancetest.Reference(t), oneCluster, `answered by "be-alpha", want be-beta`
	case "core-http/hop-by-hop":
		return conformancetest.Broken(t, conformance.BrokenRelay), nil, "forwarded to the backend"
	case "core-http/x-forwarded-for":
		return conformancetest.Broken(t, conformance.BrokenRelay), nil, `want "192.0.2.7, 127.0.0.1"`
	case "core-http/request-id":
		return conformancetest.Broken(t, conformance.BrokenRelay), nil, "reached the backend without one"
	case "core-http/stream-request-body":
		return conformancetest.Broken(t, conformance.BrokenBuffering), nil, "does not stream request bodies"
	case "core-http/stream-response-body":
		return conformancetest.Broken(t, conformance.BrokenBuffering), nil, "does not stream responses"
	}
	t.Fatalf("no failing setup for %s", id)
	return nil, nil, ""
}

func TestChecks(t *testing.T) {
	for _, c := range Checks() {
		if c.ID == "core-http/http1" {
			continue
		}
		t.Run(strings.TrimPrefix(c.ID, "core-http/"), func(t *testing.T) {
			t.Run("pass", func(t *testing.T) { conformancetest.Pass(t, c) })
			t.Run("fail", func(t *testing.T) {
				target, s, reason := failing(t, c.ID)
				r := conformancetest.Fail(t, target, c, s)
				if r.Status == conformance.StatusFail && !strings.Contains(r.Reason, reason) {
					t.Errorf("%s failed on %s for another reason: %q, want it to say %q", c.ID, target.Name, r.Reason, reason)
				}
			})
		})
	}
}

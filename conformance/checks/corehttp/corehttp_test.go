package corehttp

import (
	"testing"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/conformancetest"
	"github.com/meshbench/meshbench/proxy/config"
)

func TestMain(m *testing.M) { conformancetest.Main(m, nil) }

func TestHTTP1(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "core-http/http1")
	conformancetest.Pass(t, c)
	// An endpoint nobody listens on: the proxy answers 502.
	conformancetest.Fail(t, conformancetest.Reference(t), c, &conformance.Sabotage{Config: func(c *config.Config) {
		c.Clusters[0].Endpoints = []string{"127.0.0.1:9"}
	}})
}

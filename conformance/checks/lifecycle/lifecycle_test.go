package lifecycle

import (
	"testing"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/conformancetest"
	"github.com/meshbench/meshbench/proxy/config"
)

func TestMain(m *testing.M) { conformancetest.Main(m, nil) }

func TestGracefulDrain(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "lifecycle/graceful-drain")
	conformancetest.Pass(t, c)
	// A drain timeout shorter than the request in flight: the proxy
	// closes it when the grace period ends.
	conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) {
		c.DrainTimeout = config.Duration(50 * time.Millisecond)
	}}, "the request in flight during the drain failed")
}

func TestEndpointChange(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "lifecycle/endpoint-change")
	conformancetest.Pass(t, c)
	// The file is read again only after the check: A is stopped while
	// still in the set.
	conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) {
		c.Clusters[0].EndpointsFile.PollInterval = config.Duration(10 * time.Second)
	}}, "requests failed")
}

func TestValidate(t *testing.T) {
	if err := conformance.Validate(Checks()); err != nil {
		t.Fatal(err)
	}
}

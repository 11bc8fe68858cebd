package observability

import (
	"testing"
	"time"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/conformancetest"
	"github.com/meshbench/meshbench/proxy/config"
)

func TestMain(m *testing.M) { conformancetest.Main(m, nil) }

func TestValid(t *testing.T) {
	if err := conformance.Validate(Checks()); err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks() {
		if c.Profile() != conformance.ProfileObservability {
			t.Errorf("%s is not in the observability profile", c.ID)
		}
	}
}

// swapRouteNames gives each of the first two routes the other's name: the
// proxy still routes every request right, but its series label fast's
// traffic as errors' (or slow's) and the other way round.
func swapRouteNames(c *config.Config) {
	rs := c.Listeners[0].Routes
	rs[0].Name, rs[1].Name = rs[1].Name, rs[0].Name
}

func TestRouteRequestRate(t *testing.T) {
	t.Parallel()
	c := conformancetest.Find(t, Checks(), idRouteRequestRate)
	t.Run("pass", func(t *testing.T) { conformancetest.Pass(t, c) })
	t.Run("fail/route-names-swapped", func(t *testing.T) {
		conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: swapRouteNames}, "Prometheus counts")
	})
}

func TestRouteSuccessRate(t *testing.T) {
	t.Parallel()
	c := conformancetest.Find(t, Checks(), idRouteSuccessRate)
	t.Run("pass", func(t *testing.T) { conformancetest.Pass(t, c) })
	t.Run("fail/route-names-swapped", func(t *testing.T) {
		conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: swapRouteNames}, "Prometheus gives a success ratio")
	})
}

func TestRouteP99(t *testing.T) {
	t.Parallel()
	c := conformancetest.Find(t, Checks(), idRouteP99)
	t.Run("pass", func(t *testing.T) { conformancetest.Pass(t, c) })
	t.Run("fail/route-names-swapped", func(t *testing.T) {
		conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: swapRouteNames}, "Prometheus puts its p99")
	})
	// The slow backend waits 5 ms instead of the 100 ms the check expects.
	t.Run("fail/delay-changed", func(t *testing.T) {
		conformancetest.FailBecause(t, c, &conformance.Sabotage{Backend: func(o *conformance.BackendOptions) {
			if o.Name == "slow" {
				o.Behaviour.Delay = 5 * time.Millisecond
			}
		}}, "route slow: Prometheus puts its p99")
	})
}

func TestEndpointSeries(t *testing.T) {
	t.Parallel()
	c := conformancetest.Find(t, Checks(), idEndpointSeries)
	t.Run("pass", func(t *testing.T) { conformancetest.Pass(t, c) })
	// The route sends to a copy of its cluster (same endpoints, another
	// name): every request still reaches the same backends, but the
	// series of the check's cluster count none of them.
	t.Run("fail/other-cluster", func(t *testing.T) {
		conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) {
			cl := c.Clusters[0]
			cl.Name += "-copy"
			c.Clusters = append(c.Clusters, cl)
			c.Listeners[0].Routes[0].Cluster = cl.Name
		}}, "Prometheus counts 0.0 requests")
	})
}

// TestBroken: a deliberately broken target serves no metrics, so every
// check ends unsupported on it.
func TestBroken(t *testing.T) {
	tg := conformancetest.Broken(t, conformance.BrokenRelay)
	for _, c := range Checks() {
		conformancetest.ExpectStatus(t, tg, c, nil, conformance.StatusUnsupported)
	}
}

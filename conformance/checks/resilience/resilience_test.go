package resilience

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/conformancetest"
	"github.com/meshbench/meshbench/proxy/config"
)

func TestMain(m *testing.M) { conformancetest.Main(m, nil) }

// routes edits every route of the configuration.
func routes(f func(*config.Route)) *conformance.Sabotage {
	return &conformance.Sabotage{Config: func(c *config.Config) {
		for i := range c.Listeners {
			for j := range c.Listeners[i].Routes {
				f(&c.Listeners[i].Routes[j])
			}
		}
	}}
}

var noRetry = routes(func(r *config.Route) { r.Retry = nil })

func TestRetry503(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "resilience/retry-503")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, noRetry, "were not answered 200")
}

func TestRetryReset(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "resilience/retry-reset")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, noRetry, "were not answered 200")
}

func TestRetryBudget(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "resilience/retry-budget")
	conformancetest.Pass(t, c)
	// A budget that never binds: ratio 1 and a floor past any load.
	conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) {
		c.Clusters[0].RetryBudget = config.RetryBudget{Ratio: 1, MinConcurrency: 1000}
	}}, "more than the retry budget's")
}

func TestPerTryTimeout(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "resilience/per-try-timeout")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, routes(func(r *config.Route) {
		if r.Retry != nil {
			r.Retry.PerTryTimeout = 0
		}
	}), "the hung attempt was not cut off")
}

func TestOutlierEjection(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "resilience/outlier-ejection")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) { c.Clusters[0].OutlierDetection = nil }}, "received")
}

func TestStatusMapping(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "resilience/status-mapping")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, routes(func(r *config.Route) { r.Timeout = config.Duration(30e9) }), "no answer within")
}

func TestNoEndpoint503(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "resilience/no-endpoint-503")
	conformancetest.Pass(t, c)
	// The cluster given a live endpoint: requests are answered 200.
	live := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer live.Close()
	conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) {
		c.Clusters[0].EndpointsFile = nil
		c.Clusters[0].Endpoints = []string{strings.TrimPrefix(live.URL, "http://")}
	}}, "answered 200, want 503")
}

package multiprotocol

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
		if c.Profile() != conformance.ProfileMultiprotocol {
			t.Errorf("%s: not in profile %s", c.ID, conformance.ProfileMultiprotocol)
		}
	}
}

// http1Cluster is a sabotage that makes every cluster speak HTTP/1.1
// upstream: gRPC calls then reach the backends as HTTP/1.1 requests.
var http1Cluster = &conformance.Sabotage{Config: func(c *config.Config) {
	for i := range c.Clusters {
		c.Clusters[i].Protocol = config.UpstreamHTTP1
	}
}}

func TestChecks(t *testing.T) {
	reasons := map[string]string{
		"multiprotocol/http1-and-grpc": "gRPC calls failed",
		"multiprotocol/h2c-and-grpc":   "h2c GETs reached mp-be-0 as HTTP/1.1",
	}
	for _, c := range Checks() {
		t.Run(strings.TrimPrefix(c.ID, "multiprotocol/"), func(t *testing.T) {
			t.Run("pass", func(t *testing.T) { conformancetest.Pass(t, c) })
			t.Run("http1-cluster", func(t *testing.T) {
				r := conformancetest.Fail(t, conformancetest.Reference(t), c, http1Cluster)
				if want := reasons[c.ID]; r.Status == conformance.StatusFail && !strings.Contains(r.Reason, want) {
					t.Errorf("%s failed for another reason: %q, want it to say %q", c.ID, r.Reason, want)
				}
			})
		})
	}
}

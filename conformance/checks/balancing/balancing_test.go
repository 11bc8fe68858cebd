package balancing

import (
	"testing"

	"github.com/meshbench/meshbench/conformance"
	"github.com/meshbench/meshbench/conformance/conformancetest"
	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
)

func TestMain(m *testing.M) { conformancetest.Main(m, nil) }

// policy is a sabotage that replaces the cluster's balancer with policy
// p (no hash header: the reference refuses one on other policies).
func policy(p string) *conformance.Sabotage {
	return &conformance.Sabotage{Config: func(c *config.Config) { c.Clusters[0].Balancer = config.Balancer{Policy: p} }}
}

func TestRoundRobinEven(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "balancing/round-robin-even")
	conformancetest.Pass(t, c)
	// Every endpoint address made the first one's: all requests reach be-a.
	conformancetest.FailBecause(t, c, &conformance.Sabotage{Config: func(c *config.Config) {
		cl := &c.Clusters[0]
		for i := range cl.Endpoints {
			cl.Endpoints[i] = cl.Endpoints[0]
		}
		cl.Endpoints = cl.Endpoints[:1]
	}}, "chi-square")
}

func TestLeastRequestBusy(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "balancing/least-request-busy")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, policy(balancer.PolicyRoundRobin), "the busy endpoint")
}

func TestLatencyAwareSlow(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "balancing/latency-aware-slow")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, policy(balancer.PolicyRoundRobin), "the slow endpoint")
}

func TestHashSticky(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "balancing/hash-sticky")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, policy(balancer.PolicyRandom), "did not stay on one endpoint")
}

func TestMaglevSticky(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "balancing/maglev-sticky")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, policy(balancer.PolicyRandom), "did not stay on one endpoint")
}

func TestHashKeysMoved(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "balancing/hash-keys-moved")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, policy(balancer.PolicyRandom), "not consistent hashing")
	conformancetest.FailBecause(t, c, policy(balancer.PolicyRoundRobin), "not consistent hashing")
}

func TestMaglevKeysMoved(t *testing.T) {
	c := conformancetest.Find(t, Checks(), "balancing/maglev-keys-moved")
	conformancetest.Pass(t, c)
	conformancetest.FailBecause(t, c, policy(balancer.PolicyRandom), "not consistent hashing")
}

func TestValidate(t *testing.T) {
	if err := conformance.Validate(Checks()); err != nil {
		t.Fatal(err)
	}
}

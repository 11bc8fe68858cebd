package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/proxymetrics"
)

// mtlsScenario is a small scenario with mTLS on: three replicas on two
// nodes, so that the daemonset cell has pods on the client's node and on
// the other one.
const mtlsScenario = `name: mtls-local
nodes: 2
services: [{name: echo, replicas: 3, backend: {latency: "fixed:1ms"}}]
load: {rate: 100, connections: 4, duration: 2s, timeout: 2s}
matrix:
  topology: [sidecar, daemonset]
  mtls: [on]
`

// TestMTLSPlans deploys the sidecar and the daemonset cells with mTLS on
// and runs 2 s at 100 requests/s through them: no request may fail, every
// proxy-to-proxy connection is an mTLS one that verified (handshakes
// succeed, none fails), and the servers' proxies admitted the client.
func TestMTLSPlans(t *testing.T) {
	s, err := scenarios.Parse("mtls-local.yaml", []byte(mtlsScenario))
	if err != nil {
		t.Fatal(err)
	}
	cells, err := s.Cells(scenarios.CellOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range cells {
		t.Run(c.Variant, func(t *testing.T) {
			plan, err := s.Plan(c, scenarios.PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Identities) == 0 {
				t.Fatalf("plan %s has no identities", c.ID)
			}
			ctx := context.Background()
			p := newPlatform(t, 81+i)
			dir := t.TempDir()
			if err := p.Deploy(ctx, plan, dir); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"ca.pem", "client.pem", "client-key.pem", "echo.pem", "echo-key.pem"} {
				if _, err := os.Stat(filepath.Join(dir, scenarios.CertsDir, f)); err != nil {
					t.Errorf("certificate file: %v", err)
				}
			}
			res, err := p.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// The proxies' counters since they started, warm-up included.
			// crossNode counts the requests the client's node proxy sent to
			// pods of other nodes: in the daemonset cell only those cross
			// an mTLS hop (its own node's pods are delivered to directly).
			podNode := map[string]string{}
			for _, pod := range plan.Pods {
				podNode[p.addrs.Pod(pod.Name)] = pod.Node
			}
			var ok, failed, allowed, denied, crossNode, sent float64
			for _, px := range plan.Proxies {
				fams, err := proxymetrics.Scrape(ctx, p.client, p.configs[px.Name].Admin)
				if err != nil {
					t.Fatal(err)
				}
				if px.Node == plan.Pods[0].Node && (px.Kind == scenarios.KindNode || px.Pod == plan.Pods[0].Name) {
					for _, m := range fams["upstream_requests_total"].GetMetric() {
						host, _, _ := strings.Cut(proxymetrics.LabelsOf(m)["endpoint"], ":")
						sent += proxymetrics.Value(m)
						if podNode[host] != px.Node {
							crossNode += proxymetrics.Value(m)
						}
					}
				}
				for _, m := range fams[proxymetrics.MetricHandshakes].GetMetric() {
					if proxymetrics.LabelsOf(m)["result"] == "success" {
						ok += proxymetrics.Value(m)
					} else {
						failed += proxymetrics.Value(m)
					}
				}
				for _, m := range fams["inbound_authz_allow_total"].GetMetric() {
					allowed += proxymetrics.Value(m)
				}
				for _, m := range fams["inbound_authz_deny_total"].GetMetric() {
					denied += proxymetrics.Value(m)
				}
			}
			_, metrics, err := p.Resources(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range metrics {
				t.Logf("metrics %s: handshakes %d endpoints %v", m.Name, m.Handshakes, m.Endpoints)
			}
			if err := p.Teardown(ctx); err != nil {
				t.Fatal(err)
			}
			if res.Requests == 0 || res.Errors.Total != 0 {
				t.Fatalf("requests %d errors %+v, want requests without errors", res.Requests, res.Errors)
			}
			if ok == 0 || failed != 0 {
				t.Errorf("TLS handshakes: %v succeeded, %v failed; want some, none failed", ok, failed)
			}
			if sent < float64(res.Requests) {
				t.Errorf("the client's proxy sent %v requests upstream, fewer than the %d measured", sent, res.Requests)
			}
			want := sent // sidecar: every request crosses an mTLS hop
			if c.Labels["topology"] == scenarios.DaemonSet {
				want = crossNode
				if crossNode == 0 || crossNode == sent {
					t.Errorf("the client's node proxy sent %v of %v requests to other nodes; want some, not all", crossNode, sent)
				}
			}
			if allowed != want || denied != 0 {
				t.Errorf("authz: %v allowed, %v denied; want %v allowed (%d requests measured)", allowed, denied, want, res.Requests)
			}
		})
	}
}

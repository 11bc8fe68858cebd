package kube

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/meshbench/meshbench/internal/names"
	"github.com/meshbench/meshbench/peers"
)

const peerScenario = `name: peers
nodes: 2
services: [{name: echo, replicas: 3, backend: {latency: "fixed:1ms"}}]
load: {rate: 100, connections: 3, duration: 2s, warmup: 1s, timeout: 2s}
matrix:
  topology: [sidecar, daemonset]
  proxy: [haproxy]
  balancer: [round_robin]
`

func testPeer() *cellPeer {
	return &cellPeer{adapter: peers.HAProxy{}, image: PeerImage{Ref: "meshbench/peer-haproxy:test", Binary: "/usr/sbin/haproxy"}, traffic: []string{"http1"}}
}

// mountOf returns the mount of the container at path.
func mountOf(c corev1.Container, path string) (corev1.VolumeMount, bool) {
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == path })
	if i < 0 {
		return corev1.VolumeMount{}, false
	}
	return c.VolumeMounts[i], true
}

// TestPeerSidecars: a peer's sidecars run the peer's image with its native
// configuration mounted into a writable directory, and the client's
// sidecar names the backends' pod IPs as static endpoints (a peer cannot
// follow EndpointSlices).
func TestPeerSidecars(t *testing.T) {
	_, tg, o := cellObjectsOf(t, "peers", peerScenario, "sidecar-haproxy-round_robin", testPeer())
	for _, name := range []string{"echo-0", "echo-1", "echo-2"} {
		d := o.deployments[name]
		if d == nil {
			t.Fatalf("no deployment %s", name)
		}
		var px *corev1.Container
		for i, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "proxy" {
				px = &d.Spec.Template.Spec.Containers[i]
			}
		}
		if px == nil || px.Image != "meshbench/peer-haproxy:test" || px.Command[0] != "/usr/sbin/haproxy" || px.WorkingDir != peerDir {
			t.Fatalf("%s's proxy container: %+v", name, px)
		}
		m, ok := mountOf(*px, peerDir+"/haproxy.cfg")
		if !ok || m.SubPathExpr != "config.haproxy.cfg" || !m.ReadOnly {
			t.Errorf("%s: haproxy.cfg mount %+v", name, m)
		}
		if _, ok := mountOf(*px, peerDir); !ok {
			t.Errorf("%s: no writable %s", name, peerDir)
		}
		cm := o.configMaps[proxyConfigName(name)]
		if cm == nil || !strings.Contains(cm.Data["config.haproxy.cfg"], "bind 0.0.0.0:4143") {
			t.Errorf("%s's ConfigMap: %v", name, cm)
		}
	}
	cm := o.configMaps[proxyConfigName("client-0")]
	if cm == nil {
		t.Fatal("no ConfigMap for the client's sidecar")
	}
	cfg := cm.Data["config.haproxy.cfg"]
	for _, pod := range []string{"echo-0", "echo-1", "echo-2"} {
		if !strings.Contains(cfg, tg.PodIPs[pod]+":4143") {
			t.Errorf("the client's haproxy.cfg does not name %s (%s:4143):\n%s", pod, tg.PodIPs[pod], cfg)
		}
	}
	job := o.jobs[0]
	if ic := job.Spec.Template.Spec.InitContainers; len(ic) != 1 || ic[0].Image != "meshbench/peer-haproxy:test" {
		t.Errorf("the load job's sidecar: %+v", ic)
	}
}

// TestPeerNodeProxies: a peer's node proxies read their node's files
// through $(NODE_NAME) and reach the other node's pods through its proxy.
func TestPeerNodeProxies(t *testing.T) {
	_, tg, o := cellObjectsOf(t, "peers", peerScenario, "daemonset-haproxy-round_robin", testPeer())
	ds := o.daemonsets[nodeProxyName]
	if ds == nil {
		t.Fatal("no node proxy DaemonSet")
	}
	c := ds.Spec.Template.Spec.Containers[0]
	m, ok := mountOf(c, peerDir+"/haproxy.cfg")
	if !ok || m.SubPathExpr != "$("+nodeNameVar+").haproxy.cfg" {
		t.Errorf("node proxy haproxy.cfg mount %+v", m)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == nodeNameVar }) {
		t.Errorf("no %s in the node proxy's environment", nodeNameVar)
	}
	cm := o.configMaps[nodeProxyName]
	cfg := cm.Data["kind-control-plane.haproxy.cfg"]
	if !strings.Contains(cfg, "http-send-name-header X-Meshbench-Dst") || !strings.Contains(cfg, tg.NodeIPs["node-1"]+":4143") {
		t.Errorf("node-0's haproxy.cfg does not reach node-1's pods through node-1's proxy:\n%s", cfg)
	}
	if _, ok := cm.Data["kind-worker.haproxy.cfg"]; !ok {
		t.Errorf("no configuration for kind-worker: keys %v", cm.Data)
	}
}

// TestNamespaceName: a cell ID with a balancer's '_' still makes a valid
// namespace name.
func TestNamespaceName(t *testing.T) {
	for _, id := range []string{"sidecar-haproxy-round_robin-r1", "a.b_c-r2", strings.Repeat("x_", 40)} {
		if got := dnsLabel("meshbench-1-" + id); !names.DNSLabel(got) {
			t.Errorf("dnsLabel(%q) = %q: not an RFC 1123 label", id, got)
		}
	}
}

// TestProxyWorkers: meshproxy and a peer get the same number of workers.
func TestProxyWorkers(t *testing.T) {
	_, _, ref := cellObjects(t, "quick", "sidecar")
	_, _, peer := cellObjectsOf(t, "peers", peerScenario, "sidecar-haproxy-round_robin", testPeer())
	for name, o := range map[string]*objects{"meshproxy": ref, "haproxy": peer} {
		c := o.deployments["echo-0"].Spec.Template.Spec.Containers
		i := slices.IndexFunc(c, func(c corev1.Container) bool { return c.Name == "proxy" })
		if i < 0 || !slices.Contains(c[i].Env, corev1.EnvVar{Name: "GOMAXPROCS", Value: "1"}) {
			t.Errorf("%s sidecar: no GOMAXPROCS=1 in %+v", name, c)
		}
	}
}

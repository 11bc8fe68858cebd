package kube

import (
	"fmt"
	"github.com/meshbench/meshbench/scenarios/platform"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/scenarios"
)

// objects is a cell's manifests decoded back, strictly, into their types.
type objects struct {
	deployments map[string]*appsv1.Deployment
	daemonsets  map[string]*appsv1.DaemonSet
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	services    map[string]*corev1.Service
	roles       []*rbacv1.Role
	jobs        []*batchv1.Job
	kinds       []string
}

// decode renders objs with Manifests and decodes every document strictly
// (an unknown field fails) into the type its kind names.
func decode(t *testing.T, objs []runtime.Object) *objects {
	t.Helper()
	b, err := Manifests(objs)
	if err != nil {
		t.Fatal(err)
	}
	o := &objects{deployments: map[string]*appsv1.Deployment{}, daemonsets: map[string]*appsv1.DaemonSet{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}, services: map[string]*corev1.Service{}}
	for _, doc := range strings.Split(string(b), "---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var head struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatal(err)
		}
		o.kinds = append(o.kinds, head.Kind)
		strict := func(v any) {
			t.Helper()
			if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
				t.Fatalf("%s: %v\n%s", head.Kind, err, doc)
			}
		}
		switch head.Kind {
		case "Deployment":
			var d appsv1.Deployment
			strict(&d)
			o.deployments[d.Name] = &d
		case "DaemonSet":
			var d appsv1.DaemonSet
			strict(&d)
			o.daemonsets[d.Name] = &d
		case "ConfigMap":
			var c corev1.ConfigMap
			strict(&c)
			o.configMaps[c.Name] = &c
		case "Secret":
			var s corev1.Secret
			strict(&s)
			o.secrets[s.Name] = &s
		case "Service":
			var s corev1.Service
			strict(&s)
			o.services[s.Name] = &s
		case "Role":
			var r rbacv1.Role
			strict(&r)
			o.roles = append(o.roles, &r)
		case "Job":
			var j batchv1.Job
			strict(&j)
			o.jobs = append(o.jobs, &j)
		case "Namespace", "ServiceAccount", "RoleBinding":
			var u map[string]any
			strict(&u)
		default:
			t.Fatalf("unexpected kind %q", head.Kind)
		}
	}
	return o
}

// cellObjects plans one variant of a scenario and renders all its objects
// for a two-node cluster, with made-up pod IPs (10.244.<node>.<replica>).
func cellObjects(t *testing.T, scenario, variant string) (*scenarios.Plan, *target, *objects) {
	t.Helper()
	return cellObjectsOf(t, scenario, testScenario(scenario), variant, nil)
}

// cellObjectsOf is cellObjects for a scenario file's text, with the cell's
// peer (nil: meshproxy); a peer's client sidecar ConfigMap is made after
// the backends, as Deploy does.
func cellObjectsOf(t *testing.T, scenario, text, variant string, peer *cellPeer) (*scenarios.Plan, *target, *objects) {
	t.Helper()
	s, err := scenarios.Parse(scenario+".yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	var plan *scenarios.Plan
	cells, err := s.Cells(scenarios.CellOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cells {
		if c.Variant == variant {
			if plan, err = s.Plan(c, scenarios.PlanOptions{}); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if plan == nil {
		t.Fatalf("no variant %s", variant)
	}
	tg := &target{Namespace: "mb-test", Image: "meshbench/meshbench:test", ProxyBinary: "/meshproxy",
		Nodes:   map[string]string{"node-0": "kind-control-plane", "node-1": "kind-worker"},
		NodeIPs: map[string]string{"node-0": "172.18.0.2", "node-1": "172.18.0.3"},
		PodIPs:  map[string]string{}, Peer: peer, ServicePods: map[string][]string{}}
	for i, p := range plan.Pods {
		tg.PodIPs[p.Name] = fmt.Sprintf("10.244.%s.%d", strings.TrimPrefix(p.Node, "node-"), 10+i)
		tg.ServicePods[p.Service] = append(tg.ServicePods[p.Service], p.Name)
	}
	if len(plan.Identities) > 0 {
		tg.Certs = map[string][]byte{"ca.pem": []byte("ca")}
		for _, id := range plan.Identities {
			tg.Certs[id+".pem"], tg.Certs[id+"-key.pem"] = []byte(id), []byte(id+"-key")
		}
	}
	var err2 error
	if tg.ProxyResources, err2 = requirements(plan.Kubernetes.ProxyResources, corev1.ResourceRequirements{}); err2 != nil {
		t.Fatal(err2)
	}
	objs, err := namespaceObjects(plan, tg)
	if err != nil {
		t.Fatal(err)
	}
	tg.DiscoveryIP = "10.96.0.42"
	base, err := baseObjects(plan, tg)
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, base...)
	more, err := nodeProxyObjects(plan, tg)
	if err != nil {
		t.Fatal(err)
	}
	if peer != nil {
		for i := range plan.Pods {
			if pod := &plan.Pods[i]; pod.Backend == nil && pod.Sidecar != "" {
				cm, err := sidecarConfigMap(plan, tg, pod)
				if err != nil {
					t.Fatal(err)
				}
				more = append(more, cm)
			}
		}
	}
	for _, g := range platform.GeneratorLoads(plan.Load) {
		job, err := loadJob(plan, tg, g, time.Unix(1700000000, 0))
		if err != nil {
			t.Fatal(err)
		}
		more = append(more, job)
	}
	return plan, tg, decode(t, append(objs, more...))
}

func testScenario(name string) string {
	mtls := ""
	if name == "mtls" {
		mtls = "\n  mtls: [on]"
	}
	return `name: ` + name + `
kubernetes: {proxy_resources: {requests: {cpu: 100m, memory: 32Mi}, limits: {memory: 128Mi}}}
nodes: 2
services: [{name: echo, replicas: 3, backend: {latency: "fixed:1ms"}}]
load: {rate: 100, connections: 3, duration: 2s, warmup: 1s, timeout: 2s}
matrix:
  topology: [baseline, sidecar, daemonset]` + mtls + "\n"
}

// proxyConfig decodes a configuration from a ConfigMap and validates it
// as meshproxy would (certificate files aside: they exist only in pods).
func proxyConfig(t *testing.T, data string, mtls bool) *config.Config {
	t.Helper()
	if mtls {
		var c config.Config
		if err := yaml.UnmarshalStrict([]byte(data), &c); err != nil {
			t.Fatalf("%v\n%s", err, data)
		}
		return &c
	}
	c, err := config.Parse("config.yaml", []byte(data))
	if err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return c
}

func TestSidecarManifests(t *testing.T) {
	plan, tg, o := cellObjects(t, "topologies", "sidecar")
	if len(o.roles) != 1 || len(o.roles[0].Rules) != 1 || !slices.Equal(o.roles[0].Rules[0].Resources, []string{"endpointslices"}) ||
		!slices.Equal(o.roles[0].Rules[0].Verbs, []string{"get", "list", "watch"}) || o.roles[0].Name != discoveryName {
		t.Errorf("the discovery server's Role is not read-only access to EndpointSlices: %+v", o.roles)
	}
	// The discovery server: one pod with the only token, on the first
	// node, found through a headless Service.
	dd := o.deployments[discoveryName]
	if dd == nil {
		t.Fatal("no discovery server Deployment")
	}
	if ds := dd.Spec.Template.Spec; ds.ServiceAccountName != discoveryName || !*ds.AutomountServiceAccountToken ||
		!slices.Equal(ds.Containers[0].Command, []string{"/meshbench", "discovery", "--listen", ":9200"}) ||
		ds.NodeSelector["kubernetes.io/hostname"] != tg.Nodes[plan.Nodes[0].Name] {
		t.Errorf("discovery server pod: %+v", ds)
	}
	if svc := o.services[discoveryName]; svc == nil || svc.Spec.ClusterIP != "" || svc.Spec.Ports[0].Port != PortDiscovery {
		t.Errorf("discovery Service: %+v", svc)
	}
	svc := o.services["echo"]
	if svc == nil || svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.Ports) != 3 || svc.Spec.Ports[2].Name != portNameMesh {
		t.Fatalf("Service echo: %+v", svc)
	}
	for _, p := range plan.Pods {
		if p.Backend == nil {
			continue
		}
		d := o.deployments[p.Name]
		if d == nil {
			t.Fatalf("no Deployment for %s", p.Name)
		}
		spec := d.Spec.Template.Spec
		if *d.Spec.Replicas != 1 || spec.NodeSelector["kubernetes.io/hostname"] != tg.Nodes[p.Node] {
			t.Errorf("%s: replicas %d on %v, want 1 on %s", p.Name, *d.Spec.Replicas, spec.NodeSelector, tg.Nodes[p.Node])
		}
		if len(spec.Containers) != 2 || spec.Containers[1].Name != "proxy" || spec.Containers[0].Image != tg.Image ||
			spec.Containers[0].ImagePullPolicy != corev1.PullIfNotPresent {
			t.Fatalf("%s: containers %+v", p.Name, spec.Containers)
		}
		if r := spec.Containers[1].Resources; r.Requests.Cpu().MilliValue() != 100 || r.Limits.Memory().Value() != 128<<20 || len(spec.Containers[0].Resources.Requests) != 0 {
			t.Errorf("%s: proxy resources %+v, app %+v; want the scenario's for the proxy only", p.Name, r, spec.Containers[0].Resources)
		}
		if *spec.AutomountServiceAccountToken {
			t.Errorf("%s: a server sidecar follows no EndpointSlices but gets a token", p.Name)
		}
		cm := o.configMaps[proxyConfigName(p.Name)]
		c := proxyConfig(t, cm.Data["config.yaml"], false)
		in := c.Listeners[0]
		if in.Address != "0.0.0.0:4143" || c.Clusters[0].Endpoints[0] != "127.0.0.1:8080" || c.Admin != "0.0.0.0:9901" || c.AdminDebug {
			t.Errorf("%s sidecar: listener %s, app %v, admin %s (debug %v)", p.Name, in.Address, c.Clusters[0].Endpoints, c.Admin, c.AdminDebug)
		}
	}
	// The client's sidecar runs beside the load generator and follows
	// the service's EndpointSlices on its mesh port.
	job := o.jobs[0]
	spec := job.Spec.Template.Spec
	if len(spec.InitContainers) != 1 || *spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways ||
		spec.InitContainers[0].StartupProbe == nil || *spec.AutomountServiceAccountToken || spec.ServiceAccountName != "" {
		t.Fatalf("load Job's sidecar: %+v", spec)
	}
	if !slices.Contains(spec.Containers[0].Command, "http://127.0.0.1:4140") && !slices.Contains(spec.Containers[0].Command, "http://127.0.0.1:4140/") {
		t.Errorf("the load does not go to its own sidecar: %v", spec.Containers[0].Command)
	}
	c := proxyConfig(t, o.configMaps[proxyConfigName(plan.Load.ClientPod)].Data["config.yaml"], false)
	if want := "http://10.96.0.42:9200"; c.DiscoveryServer != want {
		t.Errorf("client sidecar's discovery server %q, want %q", c.DiscoveryServer, want)
	}
	for _, cl := range c.Clusters {
		if k := cl.Kubernetes; k == nil || k.Service != "echo" || k.Namespace != tg.Namespace || len(cl.Endpoints) != 0 {
			t.Errorf("client cluster %s does not follow echo's EndpointSlices: %+v", cl.Name, cl)
		}
	}
	if c.Clusters[0].Kubernetes.Port != portNameGRPC && c.Clusters[0].Kubernetes.Port != portNameMesh {
		t.Errorf("client cluster port %q", c.Clusters[0].Kubernetes.Port)
	}
}

func TestDaemonsetManifests(t *testing.T) {
	plan, _, o := cellObjects(t, "topologies", "daemonset")
	ds := o.daemonsets[nodeProxyName]
	if ds == nil {
		t.Fatal("no DaemonSet")
	}
	c := ds.Spec.Template.Spec.Containers[0]
	hostPorts := map[int32]bool{}
	for _, p := range c.Ports {
		if p.HostPort != 0 {
			hostPorts[p.HostPort] = true
		}
	}
	if !hostPorts[4140] || !hostPorts[4143] || !slices.Contains(c.Command, "/etc/meshproxy/config/$(NODE_NAME).yaml") {
		t.Errorf("node proxy container: ports %+v command %v", c.Ports, c.Command)
	}
	terms := ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if !slices.Equal(terms[0].MatchExpressions[0].Values, []string{"kind-control-plane", "kind-worker"}) {
		t.Errorf("node proxies on %v", terms[0].MatchExpressions[0].Values)
	}
	cm := o.configMaps[nodeProxyName]
	if len(cm.Data) != 2 {
		t.Fatalf("node configurations %v", cm.Data)
	}
	n0 := proxyConfig(t, cm.Data["kind-control-plane.yaml"], false)
	// The client's node balances over echo's pods found in EndpointSlices
	// and hands those of the other node to that node's proxy.
	for _, cl := range n0.Clusters {
		if cl.Name == "local" {
			for _, a := range cl.OriginalDst.Allowed {
				if host, _, _ := net.SplitHostPort(a); !strings.HasPrefix(host, "10.244.0.") {
					t.Errorf("node-0 delivers to %s, not one of its pods", a)
				}
			}
			continue
		}
		if cl.Kubernetes == nil || cl.Kubernetes.Service != "echo" {
			t.Errorf("node-0 cluster %s: %+v", cl.Name, cl)
		}
		for ep, gw := range cl.Via.Gateways {
			if host, _, _ := net.SplitHostPort(ep); !strings.HasPrefix(host, "10.244.1.") || gw != "172.18.0.3:4143" {
				t.Errorf("node-0 cluster %s: %s through %s", cl.Name, ep, gw)
			}
		}
	}
	job := o.jobs[0]
	if cmd := strings.Join(job.Spec.Template.Spec.Containers[0].Command, " "); !strings.Contains(cmd, "http://$(HOST_IP):4140") {
		t.Errorf("the load does not go to its node's proxy: %s", cmd)
	}
	if len(job.Spec.Template.Spec.InitContainers) != 0 {
		t.Errorf("daemonset load has a sidecar")
	}
	for _, p := range plan.Pods {
		if d := o.deployments[p.Name]; d != nil && len(d.Spec.Template.Spec.Containers) != 1 {
			t.Errorf("%s has %d containers in daemonset", p.Name, len(d.Spec.Template.Spec.Containers))
		}
	}
}

func TestMTLSManifests(t *testing.T) {
	_, _, o := cellObjects(t, "mtls", "daemonset-on")
	sec := o.secrets[nodeCertsName]
	if sec == nil {
		t.Fatal("no node certificates Secret")
	}
	// node-0 runs the client and echo pods, node-1 only echo pods: each
	// node proxy holds the certificates of its own node's services.
	want := []string{"node-0.ca.pem", "node-0.client-key.pem", "node-0.client.pem", "node-0.echo-key.pem", "node-0.echo.pem",
		"node-1.ca.pem", "node-1.echo-key.pem", "node-1.echo.pem"}
	var got []string
	for k := range sec.Data {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("node certificates %v, want %v", got, want)
	}
	n1 := proxyConfig(t, o.configMaps[nodeProxyName].Data["kind-worker.yaml"], true)
	if tls := n1.Listeners[0].TLS; tls == nil || tls.CertFile != "certs/node-1/echo.pem" {
		t.Errorf("node-1 inbound tls %+v", n1.Listeners[0].TLS)
	}
	_, _, o = cellObjects(t, "mtls", "sidecar-on")
	if s := o.secrets[certSecret("echo")]; s == nil || len(s.Data) != 3 {
		t.Errorf("echo's certificates: %+v", s)
	}
	d := o.deployments["echo-0"]
	var mounted string
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			mounted = v.Secret.SecretName
		}
	}
	if mounted != certSecret("echo") {
		t.Errorf("echo-0 mounts %q", mounted)
	}
}

func TestBaselineManifests(t *testing.T) {
	plan, tg, o := cellObjects(t, "topologies", "baseline")
	cmd := strings.Join(o.jobs[0].Spec.Template.Spec.Containers[0].Command, " ")
	for _, p := range plan.Pods {
		if p.Backend != nil && !strings.Contains(cmd, tg.PodIPs[p.Name]+":8080") {
			t.Errorf("the baseline load does not reach %s directly: %s", p.Name, cmd)
		}
	}
	if len(o.daemonsets) != 0 || len(o.jobs[0].Spec.Template.Spec.InitContainers) != 0 {
		t.Error("baseline has proxies")
	}
}

func TestProxyBinaryOfABuild(t *testing.T) {
	for impl, want := range map[string]string{
		"reference": "/meshproxy", "none": "/meshproxy", "nginx": "/meshproxy",
		"reference@base": "/meshproxy-base", "reference@candidate": "/meshproxy-candidate",
	} {
		got, err := proxyBinary(impl, []string{"base", "candidate"})
		if err != nil || got != want {
			t.Errorf("proxyBinary(%q) = %q, %v; want %q", impl, got, err, want)
		}
	}
	if _, err := proxyBinary("reference@other", []string{"base"}); err == nil || !strings.Contains(err.Error(), `no build "other"`) {
		t.Errorf("a build the image lacks: %v", err)
	}
	// A proxy of a build runs the build's binary.
	tg := &target{ProxyBinary: BuildBinary("base")}
	c, _ := proxyContainer(tg, &scenarios.Proxy{Name: "sidecar-echo-0", Kind: scenarios.KindSidecar, Config: &config.Config{}}, "cm", "key", "")
	if c.Command[0] != "/meshproxy-base" {
		t.Errorf("command %q", c.Command)
	}
}

// TestGeneratorJobs: a load shared by two generators is two Jobs, one
// per node, each with half the rate and connections, the common start
// and its generator's label.
func TestGeneratorJobs(t *testing.T) {
	text := strings.Replace(testScenario("gens"), "timeout: 2s}", "timeout: 2s, generators: 2}", 1)
	for _, variant := range []string{"sidecar", "daemonset"} {
		_, _, o := cellObjectsOf(t, "gens", text, variant, nil)
		if len(o.jobs) != 2 {
			t.Fatalf("%s: %d jobs", variant, len(o.jobs))
		}
		var nodes []string
		for i, j := range o.jobs {
			spec := j.Spec.Template.Spec
			args := strings.Join(spec.Containers[0].Command, " ")
			g := fmt.Sprintf("g%d", i)
			if j.Name != "load-"+g || j.Labels[LabelGenerator] != g || !strings.Contains(args, "--rate 50 ") ||
				!strings.Contains(args, "--connections 2 ") || !strings.Contains(args, "--label generator="+g) ||
				!strings.Contains(args, "--start-at 2023-11-14T22:13:20Z") {
				t.Errorf("%s job %s: labels %v, command %s", variant, j.Name, j.Labels, args)
			}
			nodes = append(nodes, spec.NodeSelector["kubernetes.io/hostname"]+spec.NodeName)
			if variant == "sidecar" && len(spec.InitContainers) != 1 {
				t.Errorf("%s job %s: %d sidecars, want its own", variant, j.Name, len(spec.InitContainers))
			}
		}
		if nodes[0] == nodes[1] || nodes[0] == "" {
			t.Errorf("%s: generators placed on %q", variant, nodes)
		}
	}
}

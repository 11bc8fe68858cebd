package kube

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/reports/result"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/platform"
)

// Labels and names of the objects a cell creates.
const (
	LabelPod     = "meshbench.io/pod"     // a plan pod's name
	LabelService = "meshbench.io/service" // a plan service's name
	LabelRole    = "meshbench.io/role"    // backend, node-proxy or load
	LabelCell    = "meshbench.io/cell"    // the cell's id

	RoleBackend   = "backend"
	RoleNodeProxy = "node-proxy"
	RoleLoad      = "load"
	RoleDiscovery = "discovery"
	// LabelGenerator names the generator of a load pod when several share
	// the load.
	LabelGenerator = "meshbench.io/generator"

	// discoveryName names the discovery server's Deployment, Service and
	// ServiceAccount (the one account that may read EndpointSlices).
	discoveryName = "meshbench-discovery"
	nodeProxyName = "meshproxy-node"
	loadJobName   = "load"
	nodeCertsName = "certs-nodes"

	// PortLoad is where the load generator serves its status and result
	// (meshbench load --serve).
	PortLoad = 9100
	// PortDiscovery is where the discovery server (meshbench discovery)
	// answers the reference proxies.
	PortDiscovery = 9200

	proxyDir       = "/etc/meshproxy"
	proxyConfigDir = proxyDir + "/config"
	resultsDir     = "/results"
	hostIPVar      = "HOST_IP"
	nodeNameVar    = "NODE_NAME"
)

// target is where and how a plan's objects are made.
type target struct {
	Namespace string
	Image     string
	// Nodes are the cluster's node names by plan node name, NodeIPs
	// their InternalIPs by plan node name.
	Nodes   map[string]string
	NodeIPs map[string]string
	// PodIPs are the backend pods' IPs by plan pod name, once known.
	PodIPs map[string]string
	// DiscoveryIP is the ClusterIP of the discovery server's Service,
	// once created.
	DiscoveryIP string
	// Certs holds the plan's certificate files by name (mTLS only).
	Certs map[string][]byte
	// Resources of the proxy and app containers (zero: none set).
	ProxyResources, AppResources corev1.ResourceRequirements
	// ProxyBinary is the image's meshproxy binary the proxies run
	// (/meshproxy, or a build's).
	ProxyBinary string
	// Peer is the peer proxy the cell runs instead of meshproxy, or nil.
	Peer *cellPeer
	// ServicePods lists each service's plan pods, for a peer's static
	// endpoints.
	ServicePods map[string][]string
	// Notes are the peer adapter's parity notes for the cell, each once.
	Notes []string
}

// podResolver resolves the references of a process in pod.
func (t *target) podResolver(pod string) *resolver {
	return &resolver{t: t, self: scenarios.Ref{Kind: scenarios.RefPod, Name: pod}}
}

func (t *target) meta(name string, labels map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: t.Namespace, Labels: labels}
}

// namespaceObjects are what a cell creates first: its namespace and, when
// a reference proxy follows a Service, the discovery server, whose
// Service's ClusterIP the proxies' configurations name (t.DiscoveryIP).
func namespaceObjects(plan *scenarios.Plan, t *target) ([]runtime.Object, error) {
	cellLabels := map[string]string{LabelCell: dnsSafe(plan.Cell.ID)}
	objs := []runtime.Object{
		&corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: t.Namespace, Labels: cellLabels}},
	}
	if needsDiscoveryServer(plan, t) {
		d, err := discoveryObjects(plan, t)
		if err != nil {
			return nil, err
		}
		objs = append(objs, d...)
	}
	return objs, nil
}

// baseObjects are what a cell needs before its backends run, once its
// namespace exists: a headless Service per service, the certificates, the
// sidecars' configurations and a Deployment per backend pod.
func baseObjects(plan *scenarios.Plan, t *target) ([]runtime.Object, error) {
	var objs []runtime.Object
	for _, svc := range services(plan) {
		ports := []corev1.ServicePort{
			{Name: portNameHTTP, Port: scenarios.PortHTTP, TargetPort: intstr.FromInt32(scenarios.PortHTTP)},
			{Name: portNameGRPC, Port: scenarios.PortGRPC, TargetPort: intstr.FromInt32(scenarios.PortGRPC)},
		}
		if hasSidecar(plan, svc) {
			ports = append(ports, corev1.ServicePort{Name: portNameMesh, Port: scenarios.PortInbound, TargetPort: intstr.FromInt32(scenarios.PortInbound)})
		}
		objs = append(objs, &corev1.Service{TypeMeta: typeMeta("v1", "Service"), ObjectMeta: t.meta(svc, map[string]string{LabelService: svc}),
			Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone, Selector: map[string]string{LabelService: svc}, Ports: ports}})
	}
	// Certificates: one Secret per service, holding the trust bundle and
	// that service's certificate and key.
	if len(t.Certs) > 0 {
		for _, svc := range identities(plan) {
			data := map[string][]byte{}
			for _, f := range []string{"ca.pem", svc + ".pem", svc + "-key.pem"} {
				b, ok := t.Certs[f]
				if !ok {
					return nil, fmt.Errorf("certificates of %s: no %s", svc, f)
				}
				data[f] = b
			}
			objs = append(objs, &corev1.Secret{TypeMeta: typeMeta("v1", "Secret"), ObjectMeta: t.meta(certSecret(svc), map[string]string{LabelService: svc}), Data: data})
		}
	}
	for i := range plan.Pods {
		pod := &plan.Pods[i]
		// A peer's client sidecar names the backends' IPs: its ConfigMap
		// comes with the load Job, once they run (clientObjects).
		if pod.Sidecar != "" && (pod.Backend != nil || t.Peer == nil) {
			cm, err := sidecarConfigMap(plan, t, pod)
			if err != nil {
				return nil, err
			}
			objs = append(objs, cm)
		}
		if pod.Backend == nil {
			continue
		}
		d, err := backendDeployment(plan, t, pod)
		if err != nil {
			return nil, err
		}
		objs = append(objs, d)
	}
	return objs, nil
}

// sidecarConfigMap holds a pod's sidecar configuration, rendered for the
// pod.
func sidecarConfigMap(plan *scenarios.Plan, t *target, pod *scenarios.Pod) (*corev1.ConfigMap, error) {
	px := proxyNamed(plan, pod.Sidecar)
	if px == nil {
		return nil, fmt.Errorf("pod %s: no proxy %s in the plan", pod.Name, pod.Sidecar)
	}
	files, _, err := t.proxyFiles(px, t.podResolver(pod.Name), sidecarPrefix)
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{TypeMeta: typeMeta("v1", "ConfigMap"), ObjectMeta: t.meta(proxyConfigName(pod.Name), map[string]string{LabelPod: pod.Name}),
		Data: files}, nil
}

// sidecarPrefix prefixes the keys of a sidecar's ConfigMap: config.yaml
// for meshproxy.
const sidecarPrefix = "config."

// backendDeployment is one backend pod: its app and, in sidecar
// topologies, its proxy, pinned to the pod's node.
func backendDeployment(plan *scenarios.Plan, t *target, pod *scenarios.Pod) (*appsv1.Deployment, error) {
	app := corev1.Container{
		Name: "app", Image: t.Image, ImagePullPolicy: corev1.PullIfNotPresent,
		Command: append([]string{"/meshbench"}, platform.BackendArgs(pod, ":"+strconv.Itoa(scenarios.PortHTTP), ":"+strconv.Itoa(scenarios.PortGRPC))...),
		Ports:   []corev1.ContainerPort{{Name: portNameHTTP, ContainerPort: scenarios.PortHTTP}, {Name: portNameGRPC, ContainerPort: scenarios.PortGRPC}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(scenarios.PortHTTP)}},
			PeriodSeconds: 1},
		Resources: t.AppResources,
	}
	spec := corev1.PodSpec{Containers: []corev1.Container{app}}
	if pod.Sidecar != "" {
		px := proxyNamed(plan, pod.Sidecar)
		c, vols, err := t.sidecarContainer(px, pod)
		if err != nil {
			return nil, err
		}
		spec.Containers = append(spec.Containers, c)
		spec.Volumes = vols
	}
	labels := map[string]string{LabelPod: pod.Name, LabelService: pod.Service, LabelRole: RoleBackend}
	if err := t.place(&spec, pod.Node); err != nil {
		return nil, err
	}
	one := int32(1)
	return &appsv1.Deployment{TypeMeta: typeMeta("apps/v1", "Deployment"), ObjectMeta: t.meta(pod.Name, labels),
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{LabelPod: pod.Name}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		}}, nil
}

// place pins a pod spec to a plan node, tolerating any taint (the control
// plane's included), with a short termination grace and no ServiceAccount
// token: only the discovery server talks to the Kubernetes API.
func (t *target) place(spec *corev1.PodSpec, planNode string) error {
	node, ok := t.Nodes[planNode]
	if !ok {
		return fmt.Errorf("plan node %s has no cluster node", planNode)
	}
	spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node}
	spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	grace := int64(2)
	spec.TerminationGracePeriodSeconds = &grace
	noToken := false
	spec.AutomountServiceAccountToken = &noToken
	return nil
}

// sidecarContainer is a pod's sidecar: meshproxy or the cell's peer.
func (t *target) sidecarContainer(px *scenarios.Proxy, pod *scenarios.Pod) (corev1.Container, []corev1.Volume, error) {
	if t.Peer == nil {
		c, vols := proxyContainer(t, px, proxyConfigName(pod.Name), sidecarPrefix+"yaml", certSecretFor(t, px))
		return c, vols, nil
	}
	files, args, err := t.proxyFiles(px, t.podResolver(pod.Name), sidecarPrefix)
	if err != nil {
		return corev1.Container{}, nil, err
	}
	c, vols := peerContainer(t, px, proxyConfigName(pod.Name), sidecarPrefix, peerFileNames(files, sidecarPrefix), args)
	return c, vols, nil
}

// proxyContainer runs meshproxy with the configuration key of a ConfigMap
// and, when secret is not "", the certificates of that Secret in certs/.
func proxyContainer(t *target, px *scenarios.Proxy, configMap, key, secret string) (corev1.Container, []corev1.Volume) {
	c := corev1.Container{
		Name: "proxy", Image: t.Image, ImagePullPolicy: corev1.PullIfNotPresent,
		Command:    []string{t.ProxyBinary, "--config", proxyConfigDir + "/" + key},
		WorkingDir: proxyDir,
		// One worker, as every proxy on every platform (peers included).
		Env:   []corev1.EnvVar{{Name: "GOMAXPROCS", Value: strconv.Itoa(platform.ProxyWorkers)}},
		Ports: proxyPorts(px.Config),
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(scenarios.PortAdmin)}},
			PeriodSeconds: 1},
		VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: proxyConfigDir, ReadOnly: true}},
		Resources:    t.ProxyResources,
	}
	vols := []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: configMap}}}}}
	if secret != "" {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "certs", MountPath: proxyDir + "/" + scenarios.CertsDir, ReadOnly: true})
		vols = append(vols, corev1.Volume{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret}}})
	}
	return c, vols
}

// proxyPorts declares the listener and admin ports of a proxy's plan
// configuration (its addresses are references).
func proxyPorts(c *config.Config) []corev1.ContainerPort {
	var ports []corev1.ContainerPort
	add := func(name, addr string) {
		if r, err := scenarios.ParseRef(addr); err == nil {
			n, _ := scenarios.PortNumber(r.Port)
			ports = append(ports, corev1.ContainerPort{Name: name, ContainerPort: int32(n)})
		}
	}
	for _, l := range c.Listeners {
		add(portNameOf(l), l.Address)
	}
	add("admin", c.Admin)
	return ports
}

func portNameOf(l config.Listener) string {
	if l.Direction == config.Inbound {
		return "inbound"
	}
	return "outbound"
}

// nodeProxyObjects are the node proxies: one DaemonSet over the plan's
// nodes whose pods read their node's configuration ($(NODE_NAME).yaml of
// one ConfigMap) and listen on host ports, and, with mTLS, one Secret that
// holds every node's certificates, each node's in its own directory.
func nodeProxyObjects(plan *scenarios.Plan, t *target) ([]runtime.Object, error) {
	var nodes []*scenarios.Proxy
	for i := range plan.Proxies {
		if plan.Proxies[i].Kind == scenarios.KindNode {
			nodes = append(nodes, &plan.Proxies[i])
		}
	}
	if len(nodes) == 0 {
		return nil, nil
	}
	configs := map[string]string{}
	var args, names []string // a peer's command line and file names, the same on every node
	certs := map[string][]byte{}
	var items []corev1.KeyToPath
	var clusterNodes []string
	for _, px := range nodes {
		node, ok := t.Nodes[px.Node]
		if !ok {
			return nil, fmt.Errorf("plan node %s has no cluster node", px.Node)
		}
		clusterNodes = append(clusterNodes, node)
		// Every node's certificates in one Secret, each node's in its
		// own directory.
		certPath := func(p string) (string, error) {
			base, err := certBase(p)
			if err != nil {
				return "", err
			}
			b, ok := t.Certs[base]
			if !ok {
				return "", fmt.Errorf("no certificate file %s", base)
			}
			key := px.Node + "." + base
			if _, dup := certs[key]; !dup {
				certs[key] = b
				items = append(items, corev1.KeyToPath{Key: key, Path: px.Node + "/" + base})
			}
			return scenarios.CertsDir + "/" + px.Node + "/" + base, nil
		}
		r := &resolver{t: t, self: scenarios.Ref{Kind: scenarios.RefNode, Name: px.Node}, certPath: certPath}
		files, a, err := t.proxyFiles(px, r, node+".")
		if err != nil {
			return nil, err
		}
		maps.Copy(configs, files)
		args, names = a, peerFileNames(files, node+".")
	}
	labels := map[string]string{LabelRole: RoleNodeProxy}
	objs := []runtime.Object{&corev1.ConfigMap{TypeMeta: typeMeta("v1", "ConfigMap"), ObjectMeta: t.meta(nodeProxyName, labels), Data: configs}}
	secret := ""
	if len(certs) > 0 {
		secret = nodeCertsName
		objs = append(objs, &corev1.Secret{TypeMeta: typeMeta("v1", "Secret"), ObjectMeta: t.meta(nodeCertsName, labels), Data: certs})
	}
	// Every node's configuration has the same listeners' ports; the
	// first one's declare them, as host ports.
	c, vols := proxyContainer(t, nodes[0], nodeProxyName, "$("+nodeNameVar+").yaml", "")
	if t.Peer != nil {
		c, vols = peerContainer(t, nodes[0], nodeProxyName, "$("+nodeNameVar+").", names, args)
	}
	for i := range c.Ports {
		if c.Ports[i].Name != "admin" {
			c.Ports[i].HostPort = c.Ports[i].ContainerPort
		}
	}
	c.Env = append(c.Env, corev1.EnvVar{Name: nodeNameVar, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}})
	if secret != "" {
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "certs", MountPath: proxyDir + "/" + scenarios.CertsDir, ReadOnly: true})
		slices.SortFunc(items, func(x, y corev1.KeyToPath) int { return strings.Compare(x.Key, y.Key) })
		vols = append(vols, corev1.Volume{Name: "certs", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: secret, Items: items}}})
	}
	grace := int64(2)
	noToken := false
	spec := corev1.PodSpec{
		Containers: []corev1.Container{c}, Volumes: vols,
		AutomountServiceAccountToken:  &noToken,
		Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		TerminationGracePeriodSeconds: &grace,
		Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: clusterNodes}}}}}}},
	}
	objs = append(objs, &appsv1.DaemonSet{TypeMeta: typeMeta("apps/v1", "DaemonSet"), ObjectMeta: t.meta(nodeProxyName, labels),
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		}})
	return objs, nil
}

// loadJob is the load generator: a Job on the client pod's node, with the
// client's sidecar as a native sidecar (an init container that keeps
// running) when the topology gives it one. It serves its status and
// result on PortLoad (meshbench load --serve).
func loadJob(plan *scenarios.Plan, t *target, g platform.Generator, start time.Time) (*batchv1.Job, error) {
	var client *scenarios.Pod
	for i := range plan.Pods {
		if plan.Pods[i].Name == plan.Load.ClientPod {
			client = &plan.Pods[i]
		}
	}
	if client == nil {
		return nil, fmt.Errorf("the load's client pod %q is not in the plan", plan.Load.ClientPod)
	}
	// The load's targets: the client's own sidecar, its node's proxy
	// (through the downward API's host IP) or other pods.
	r := t.podResolver(client.Name)
	r.hostIP, r.hostNode = "$("+hostIPVar+")", client.Node
	l := g.Load
	args, err := platform.LoadArgs(l, plan.Cell, r, resultsDir+"/"+loadResultFile, resultsDir+"/"+result.HdrLogFile)
	if err != nil {
		return nil, err
	}
	args = platform.GeneratorArgs(args, g, start)
	args = append(args, "--serve", ":"+strconv.Itoa(PortLoad))
	load := corev1.Container{
		Name: "load", Image: t.Image, ImagePullPolicy: corev1.PullIfNotPresent,
		Command:      append([]string{"/meshbench"}, args...),
		Env:          []corev1.EnvVar{{Name: hostIPVar, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}}},
		Ports:        []corev1.ContainerPort{{Name: "load", ContainerPort: PortLoad}},
		VolumeMounts: []corev1.VolumeMount{{Name: "results", MountPath: resultsDir}},
	}
	spec := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{load},
		Volumes:       []corev1.Volume{{Name: "results", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	}
	if client.Sidecar != "" {
		px := proxyNamed(plan, client.Sidecar)
		c, vols, err := t.sidecarContainer(px, client)
		if err != nil {
			return nil, err
		}
		always := corev1.ContainerRestartPolicyAlways
		c.RestartPolicy = &always
		c.StartupProbe = &corev1.Probe{ProbeHandler: c.ReadinessProbe.ProbeHandler, PeriodSeconds: 1, FailureThreshold: 60}
		spec.InitContainers = []corev1.Container{c}
		spec.Volumes = append(spec.Volumes, vols...)
	}
	if err := t.place(&spec, cmp.Or(g.Node, client.Node)); err != nil {
		return nil, err
	}
	labels := map[string]string{LabelPod: client.Name, LabelService: client.Service, LabelRole: RoleLoad}
	name := loadJobName
	if g.Name != "" {
		labels[LabelGenerator] = g.Name
		name += "-" + g.Name
	}
	backoff := int32(0)
	deadline := int64((l.Warmup + l.Duration + l.Timeout + 15*time.Minute).Seconds())
	return &batchv1.Job{TypeMeta: typeMeta("batch/v1", "Job"), ObjectMeta: t.meta(name, labels),
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff, ActiveDeadlineSeconds: &deadline,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		}}, nil
}

// loadResultFile is the load generator's result file name.
const loadResultFile = "result-load.json"

// needsDiscoveryServer reports whether a reference proxy of the cell
// follows a service's endpoints (a peer gets them as static addresses).
func needsDiscoveryServer(plan *scenarios.Plan, t *target) bool {
	if t.Peer != nil {
		return false
	}
	for _, px := range plan.Proxies {
		for i := range px.Config.Clusters {
			if _, ok := scenarios.ServiceOf(&px.Config.Clusters[i]); ok {
				return true
			}
		}
	}
	return false
}

// discoveryServer is the discovery server's URL as the cell's proxies
// reach it: its Service's ClusterIP. Not its DNS name: a cell may start
// before the cluster's DNS answers (CoreDNS is not ready for the first
// half-minute of a new kind cluster), and kube-proxy forwards a ClusterIP
// from the start; the ClusterIP also survives a restart of the pod.
func (t *target) discoveryServer() (string, error) {
	if t.DiscoveryIP == "" {
		return "", errors.New("the discovery server's Service has no ClusterIP yet")
	}
	return "http://" + net.JoinHostPort(t.DiscoveryIP, strconv.Itoa(PortDiscovery)), nil
}

// discoveryObjects are the cell's discovery server (meshbench discovery):
// the only ServiceAccount that may read EndpointSlices, its Role, a
// Deployment of one pod on the plan's first node and a Service whose
// ClusterIP the proxies reach it at.
func discoveryObjects(plan *scenarios.Plan, t *target) ([]runtime.Object, error) {
	labels := map[string]string{LabelRole: RoleDiscovery}
	c := corev1.Container{
		Name: "discovery", Image: t.Image, ImagePullPolicy: corev1.PullIfNotPresent,
		Command: []string{"/meshbench", "discovery", "--listen", ":" + strconv.Itoa(PortDiscovery)},
		Ports:   []corev1.ContainerPort{{Name: "discovery", ContainerPort: PortDiscovery}},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(PortDiscovery)}},
			PeriodSeconds: 1},
	}
	spec := corev1.PodSpec{Containers: []corev1.Container{c}}
	if err := t.place(&spec, plan.Nodes[0].Name); err != nil {
		return nil, err
	}
	token := true
	spec.ServiceAccountName, spec.AutomountServiceAccountToken = discoveryName, &token
	one := int32(1)
	return []runtime.Object{
		&corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: t.meta(discoveryName, nil)},
		&rbacv1.Role{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "Role"), ObjectMeta: t.meta(discoveryName, nil),
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}}}},
		&rbacv1.RoleBinding{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "RoleBinding"), ObjectMeta: t.meta(discoveryName, nil),
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: discoveryName},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: discoveryName, Namespace: t.Namespace}}},
		&corev1.Service{TypeMeta: typeMeta("v1", "Service"), ObjectMeta: t.meta(discoveryName, labels),
			Spec: corev1.ServiceSpec{Selector: labels,
				Ports: []corev1.ServicePort{{Name: "discovery", Port: PortDiscovery, TargetPort: intstr.FromInt32(PortDiscovery)}}}},
		&appsv1.Deployment{TypeMeta: typeMeta("apps/v1", "Deployment"), ObjectMeta: t.meta(discoveryName, labels),
			Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec}}},
	}, nil
}

// certSecretFor is the Secret a sidecar mounts: its service's, when its
// configuration names certificates.
func certSecretFor(t *target, px *scenarios.Proxy) string {
	files := certFiles(px.Config)
	if len(files) == 0 || len(t.Certs) == 0 {
		return ""
	}
	for _, f := range files {
		if base, err := certBase(f); err == nil && base != "ca.pem" {
			return certSecret(strings.TrimSuffix(strings.TrimSuffix(base, "-key.pem"), ".pem"))
		}
	}
	return ""
}

func certSecret(svc string) string              { return "certs-" + svc }
func proxyConfigName(pod string) string         { return "proxy-" + pod }
func typeMeta(api, kind string) metav1.TypeMeta { return metav1.TypeMeta{APIVersion: api, Kind: kind} }

func proxyNamed(plan *scenarios.Plan, name string) *scenarios.Proxy {
	for i := range plan.Proxies {
		if plan.Proxies[i].Name == name {
			return &plan.Proxies[i]
		}
	}
	return nil
}

// services returns the plan's backend services in order of appearance.
func services(plan *scenarios.Plan) []string {
	var out []string
	for _, p := range plan.Pods {
		if p.Backend != nil && !slices.Contains(out, p.Service) {
			out = append(out, p.Service)
		}
	}
	return out
}

// identities returns the services with a certificate: the plan's.
func identities(plan *scenarios.Plan) []string {
	ids := slices.Clone(plan.Identities)
	slices.Sort(ids)
	return slices.Compact(ids)
}

func hasSidecar(plan *scenarios.Plan, svc string) bool {
	for _, p := range plan.Pods {
		if p.Service == svc && p.Backend != nil && p.Sidecar != "" {
			return true
		}
	}
	return false
}

// dnsSafe makes s a label value: at most 63 characters of [a-z0-9.-_].
func dnsSafe(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_') {
			b[i] = '-'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return strings.Trim(string(b), "-._")
}

// dnsLabel makes s an RFC 1123 label, as a namespace's name must be:
// lower case, digits and '-' (a cell ID's '_' and '.' become '-'), at most
// 63 characters.
func dnsLabel(s string) string {
	return strings.Trim(strings.NewReplacer("_", "-", ".", "-").Replace(dnsSafe(s)), "-")
}

// Manifests renders objects as one multi-document YAML stream, in order.
func Manifests(objs []runtime.Object) ([]byte, error) {
	var b strings.Builder
	for _, o := range objs {
		y, err := yaml.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("encoding %T: %w", o, err)
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return []byte(b.String()), nil
}

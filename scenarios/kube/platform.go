package kube

import (
	"github.com/meshbench/meshbench/scenarios/platform"

	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/scenarios"
)

// Options configure a Platform.
type Options struct {
	// Name is the platform's name in results: kind or kube.
	Name string
	// RESTConfig reaches the cluster's API server.
	RESTConfig *rest.Config
	// Image holds /meshproxy and /meshbench (kind/image); the cluster's
	// nodes must have it or be able to pull it.
	Image string
	// Nodes are the cluster nodes plan nodes map to, in order; empty
	// takes the Ready nodes, control plane first, then by name.
	Nodes []string
	// Builds lists the build names of the reference proxy whose binaries
	// the image holds as /meshproxy-<build> (BuildBinary), beside
	// /meshproxy: the cells of proxy reference@<build> run those.
	Builds []string
	// Facts are added to the platform's facts (a kind cluster's name and
	// node image).
	Facts map[string]any
	// SampleInterval is how often the kubelets' /stats/summary is read
	// during the measured part. Default 1s.
	SampleInterval time.Duration
	// ReadyTimeout bounds waiting for a cell's pods. Default 3m.
	ReadyTimeout time.Duration
	// CertLifetime is the lifetime of a cell's mTLS certificates.
	// Default 24h.
	CertLifetime time.Duration
	// Peers are the images of the peer proxies the cluster can run, by
	// peer name; a cell of another peer fails (or, for Envoy, which no
	// package provides, is not applicable).
	Peers map[string]PeerImage
	// ProxyResources and AppResources are the proxy and app containers'
	// requests and limits (none by default).
	ProxyResources, AppResources corev1.ResourceRequirements
	Log                          *slog.Logger
}

// Platform runs plans on a Kubernetes cluster (see the package comment).
// Not safe for concurrent use.
type Platform struct {
	opts Options
	cs   kubernetes.Interface
	rc   rest.Interface // the core API's REST client, for pod and node proxies
	log  *slog.Logger

	cells int // cells deployed, for unique namespaces
	plan  *scenarios.Plan
	dir   string
	t     *target
	last  *measurement
}

var _ platform.Platform = (*Platform)(nil)

// New returns a Platform on the cluster opts.RESTConfig reaches.
func New(opts Options) (*Platform, error) {
	if opts.RESTConfig == nil {
		return nil, errors.New("kubernetes platform: no cluster configuration")
	}
	if opts.Image == "" {
		return nil, errors.New("kubernetes platform: no image")
	}
	if opts.Name == "" {
		opts.Name = "kube"
	}
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = time.Second
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	if opts.CertLifetime <= 0 {
		opts.CertLifetime = 24 * time.Hour
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	cfg := rest.CopyConfig(opts.RESTConfig)
	cfg.QPS, cfg.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes platform: %w", err)
	}
	return &Platform{opts: opts, cs: cs, rc: cs.CoreV1().RESTClient(), log: opts.Log}, nil
}

// Name is the platform's name (kind or kube).
func (p *Platform) Name() string { return p.opts.Name }

// Facts describes the cluster: its node count, Kubernetes version, and the
// nodes' OS, kernel and container runtime, plus Options.Facts.
func (p *Platform) Facts() map[string]any {
	f := map[string]any{}
	for k, v := range p.opts.Facts {
		f[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := p.cs.Discovery().ServerVersion(); err == nil {
		f["kubernetes_version"] = v.GitVersion
	}
	if len(p.opts.Peers) > 0 {
		vers := map[string]string{}
		for name, img := range p.opts.Peers {
			vers[name] = img.Version
		}
		f["peers"] = vers
	}
	f["proxy_workers"] = platform.ProxyWorkers
	if nodes, err := p.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		f["nodes"] = len(nodes.Items)
		if len(nodes.Items) > 0 {
			ni := nodes.Items[0].Status.NodeInfo
			f["node_os"] = ni.OSImage
			f["node_kernel"] = ni.KernelVersion
			f["container_runtime"] = ni.ContainerRuntimeVersion
		}
	}
	return f
}

// clusterNodes maps the plan's nodes to cluster nodes and their
// InternalIPs.
func (p *Platform) clusterNodes(ctx context.Context, plan *scenarios.Plan) (names, ips map[string]string, err error) {
	list, err := p.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("listing nodes: %w", err)
	}
	ready := map[string]corev1.Node{}
	for _, n := range list.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready[n.Name] = n
			}
		}
	}
	order := slices.Clone(p.opts.Nodes)
	if len(order) == 0 {
		for name := range ready {
			order = append(order, name)
		}
		slices.SortFunc(order, func(a, b string) int {
			ca, cb := isControlPlane(ready[a]), isControlPlane(ready[b])
			if ca != cb {
				if ca {
					return -1
				}
				return 1
			}
			return strings.Compare(a, b)
		})
	}
	if len(order) < len(plan.Nodes) {
		return nil, nil, fmt.Errorf("the scenario needs %d nodes; the cluster has %d Ready: %v", len(plan.Nodes), len(order), order)
	}
	names, ips = map[string]string{}, map[string]string{}
	for i, pn := range plan.Nodes {
		n, ok := ready[order[i]]
		if !ok {
			return nil, nil, fmt.Errorf("node %s is not Ready", order[i])
		}
		names[pn.Name] = n.Name
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && ips[pn.Name] == "" {
				ips[pn.Name] = a.Address
			}
		}
		if ips[pn.Name] == "" {
			return nil, nil, fmt.Errorf("node %s has no InternalIP", n.Name)
		}
	}
	return names, ips, nil
}

func isControlPlane(n corev1.Node) bool {
	_, ok := n.Labels["node-role.kubernetes.io/control-plane"]
	return ok
}

// Deploy creates the cell's namespace and objects: the backends first;
// once they run, their IPs complete the node proxies' configurations.
// The load generator's Job is created by Run. The manifests applied are
// written to dir/manifests.yaml.
func (p *Platform) Deploy(ctx context.Context, plan *scenarios.Plan, dir string) (err error) {
	if p.plan != nil {
		return errors.New("deploying: a cell is still deployed")
	}
	peer, err := p.cellPeer(plan)
	if err != nil {
		return err
	}
	p.cells++
	nodes, ips, err := p.clusterNodes(ctx, plan)
	if err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	t := &target{
		Namespace: dnsLabel(fmt.Sprintf("meshbench-%d-%s", p.cells, plan.Cell.ID)),
		Image:     p.opts.Image, Nodes: nodes, NodeIPs: ips, PodIPs: map[string]string{},
		ProxyResources: p.opts.ProxyResources, AppResources: p.opts.AppResources,
		Peer: peer, ServicePods: map[string][]string{},
	}
	if t.ProxyBinary, err = proxyBinary(plan.ProxyImpl, p.opts.Builds); err != nil {
		return err
	}
	for _, pod := range plan.Pods {
		t.ServicePods[pod.Service] = append(t.ServicePods[pod.Service], pod.Name)
	}
	if t.ProxyResources, err = requirements(plan.Kubernetes.ProxyResources, p.opts.ProxyResources); err != nil {
		return fmt.Errorf("deploying: proxy resources: %w", err)
	}
	if t.AppResources, err = requirements(plan.Kubernetes.AppResources, p.opts.AppResources); err != nil {
		return fmt.Errorf("deploying: app resources: %w", err)
	}
	if len(plan.Identities) > 0 {
		if t.Certs, err = p.certificates(plan, dir); err != nil {
			return fmt.Errorf("deploying: %w", err)
		}
	}
	p.plan, p.dir, p.t = plan, dir, t
	p.last = nil

	objs, err := namespaceObjects(plan, t)
	if err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	if err := p.apply(ctx, objs); err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	discovery := needsDiscoveryServer(plan, t)
	if discovery {
		svc, err := p.cs.CoreV1().Services(t.Namespace).Get(ctx, discoveryName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("deploying: the discovery server's Service: %w", err)
		}
		if t.DiscoveryIP = svc.Spec.ClusterIP; t.DiscoveryIP == "" || t.DiscoveryIP == corev1.ClusterIPNone {
			return fmt.Errorf("deploying: the discovery server's Service has no ClusterIP (%q)", t.DiscoveryIP)
		}
	}
	if objs, err = baseObjects(plan, t); err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	if err := p.apply(ctx, objs); err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	if discovery {
		if _, err := p.waitPods(ctx, RoleDiscovery, 1); err != nil {
			return fmt.Errorf("deploying: discovery server: %w", err)
		}
	}
	backends := 0
	for _, pod := range plan.Pods {
		if pod.Backend != nil {
			backends++
		}
	}
	pods, err := p.waitPods(ctx, RoleBackend, backends)
	if err != nil {
		return fmt.Errorf("deploying: backends: %w", err)
	}
	for _, pod := range pods {
		t.PodIPs[pod.Labels[LabelPod]] = pod.Status.PodIP
	}
	more, err := nodeProxyObjects(plan, t)
	if err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	if len(more) > 0 {
		if err := p.apply(ctx, more); err != nil {
			return fmt.Errorf("deploying: %w", err)
		}
		n := 0
		for _, px := range plan.Proxies {
			if px.Kind == scenarios.KindNode {
				n++
			}
		}
		if _, err := p.waitPods(ctx, RoleNodeProxy, n); err != nil {
			return fmt.Errorf("deploying: node proxies: %w", err)
		}
	}
	if peer != nil {
		// A peer's client sidecar names the backends' IPs, known now.
		for i := range plan.Pods {
			if pod := &plan.Pods[i]; pod.Backend == nil && pod.Sidecar != "" {
				cm, err := sidecarConfigMap(plan, t, pod)
				if err != nil {
					return fmt.Errorf("deploying: %w", err)
				}
				if err := p.apply(ctx, []runtime.Object{cm}); err != nil {
					return fmt.Errorf("deploying: %w", err)
				}
			}
		}
	}
	for _, g := range platform.GeneratorLoads(plan.Load) {
		// Checked now, created and recorded by Run on a common start.
		if _, err := loadJob(plan, t, g, time.Now()); err != nil {
			return fmt.Errorf("deploying: %w", err)
		}
	}
	return nil
}

// certificates issues the plan's certificates into dir/certs and returns
// them by file name.
func (p *Platform) certificates(plan *scenarios.Plan, dir string) (map[string][]byte, error) {
	if err := platform.WriteCertificates(plan, dir, p.opts.CertLifetime); err != nil {
		return nil, fmt.Errorf("issuing certificates: %w", err)
	}
	certDir := filepath.Join(dir, scenarios.CertsDir)
	entries, err := os.ReadDir(certDir)
	if err != nil {
		return nil, fmt.Errorf("reading certificates: %w", err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(certDir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading certificates: %w", err)
		}
		out[e.Name()] = b
	}
	return out, nil
}

// record appends objects to dir/manifests.yaml.
func (p *Platform) record(objs ...runtime.Object) error {
	b, err := Manifests(objs)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(p.dir, "manifests.yaml"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("recording manifests: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("recording manifests: %w", err)
	}
	return nil
}

// apply records and creates objects in order.
func (p *Platform) apply(ctx context.Context, objs []runtime.Object) error {
	if err := p.record(objs...); err != nil {
		return err
	}
	for _, o := range objs {
		if err := p.create(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

func (p *Platform) create(ctx context.Context, o runtime.Object) error {
	ns := p.t.Namespace
	c := metav1.CreateOptions{FieldManager: "meshbench"}
	var err error
	var name string
	switch x := o.(type) {
	case *corev1.Namespace:
		name = x.Name
		_, err = p.cs.CoreV1().Namespaces().Create(ctx, x, c)
	case *corev1.ServiceAccount:
		name = x.Name
		_, err = p.cs.CoreV1().ServiceAccounts(ns).Create(ctx, x, c)
	case *rbacv1.Role:
		name = x.Name
		_, err = p.cs.RbacV1().Roles(ns).Create(ctx, x, c)
	case *rbacv1.RoleBinding:
		name = x.Name
		_, err = p.cs.RbacV1().RoleBindings(ns).Create(ctx, x, c)
	case *corev1.Service:
		name = x.Name
		_, err = p.cs.CoreV1().Services(ns).Create(ctx, x, c)
	case *corev1.Secret:
		name = x.Name
		_, err = p.cs.CoreV1().Secrets(ns).Create(ctx, x, c)
	case *corev1.ConfigMap:
		name = x.Name
		_, err = p.cs.CoreV1().ConfigMaps(ns).Create(ctx, x, c)
	case *appsv1.Deployment:
		name = x.Name
		_, err = p.cs.AppsV1().Deployments(ns).Create(ctx, x, c)
	case *appsv1.DaemonSet:
		name = x.Name
		_, err = p.cs.AppsV1().DaemonSets(ns).Create(ctx, x, c)
	case *batchv1.Job:
		name = x.Name
		_, err = p.cs.BatchV1().Jobs(ns).Create(ctx, x, c)
	default:
		return fmt.Errorf("creating %T: not a kind this platform makes", o)
	}
	if err != nil {
		return fmt.Errorf("creating %s %s/%s: %w", o.GetObjectKind().GroupVersionKind().Kind, ns, name, err)
	}
	return nil
}

// waitPods waits until n pods of a role run and are Ready, and returns
// them. It fails early on a pod that cannot start (an image that cannot
// be pulled, a container that keeps crashing), naming it and why.
func (p *Platform) waitPods(ctx context.Context, role string, n int) ([]corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.ReadyTimeout)
	defer cancel()
	var last string
	for {
		list, err := p.cs.CoreV1().Pods(p.t.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRole + "=" + role})
		if err == nil {
			var ready []corev1.Pod
			var waiting []string
			for _, pod := range list.Items {
				if pod.DeletionTimestamp != nil {
					continue
				}
				if why := stuck(pod); why != "" {
					return nil, fmt.Errorf("pod %s cannot start: %s", pod.Name, why)
				}
				if podReady(pod) {
					ready = append(ready, pod)
				} else {
					waiting = append(waiting, pod.Name+" ("+string(pod.Status.Phase)+")")
				}
			}
			if len(ready) >= n {
				return ready, nil
			}
			last = fmt.Sprintf("%d of %d Ready; waiting for %v", len(ready), n, waiting)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s pods: %s: %w", role, last, context.Cause(ctx))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func podReady(pod corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// stuck says why a pod will not start by itself, or "".
func stuck(pod corev1.Pod) string {
	statuses := append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...)
	for _, s := range statuses {
		if w := s.State.Waiting; w != nil {
			switch w.Reason {
			case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError":
				return fmt.Sprintf("container %s: %s: %s", s.Name, w.Reason, w.Message)
			case "CrashLoopBackOff":
				msg := w.Message
				if t := s.LastTerminationState.Terminated; t != nil {
					msg = fmt.Sprintf("exit %d: %s", t.ExitCode, t.Message)
				}
				return fmt.Sprintf("container %s keeps crashing: %s", s.Name, msg)
			}
		}
	}
	if pod.Status.Phase == corev1.PodFailed {
		return "pod failed: " + pod.Status.Message
	}
	return ""
}

// Teardown deletes the cell's namespace and waits until it is gone, so
// that the next cell runs on a quiet cluster. Safe to call twice.
func (p *Platform) Teardown(ctx context.Context) error {
	if p.t == nil {
		return nil
	}
	ns := p.t.Namespace
	p.plan = nil
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	err := p.cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("tearing down: deleting namespace %s: %w", ns, err)
	}
	for {
		_, err := p.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			p.t = nil
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tearing down: namespace %s still there: %w", ns, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// requirements converts a scenario's container resources; unset ones
// leave def.
func requirements(r scenarios.ContainerResources, def corev1.ResourceRequirements) (corev1.ResourceRequirements, error) {
	if r == (scenarios.ContainerResources{}) {
		return def, nil
	}
	list := func(l scenarios.ResourceList) (corev1.ResourceList, error) {
		out := corev1.ResourceList{}
		for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: l.CPU, corev1.ResourceMemory: l.Memory} {
			if v == "" {
				continue
			}
			q, err := resource.ParseQuantity(v)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", name, v, err)
			}
			out[name] = q
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	var out corev1.ResourceRequirements
	var err error
	if out.Requests, err = list(r.Requests); err != nil {
		return out, err
	}
	if out.Limits, err = list(r.Limits); err != nil {
		return out, err
	}
	return out, nil
}

// cellPeer returns the peer a plan runs instead of meshproxy, or nil. It
// never runs meshproxy under a peer's name: a peer without an image is an
// error, or for Envoy not applicable.
func (p *Platform) cellPeer(plan *scenarios.Plan) (*cellPeer, error) {
	if _, ref := scenarios.ReferenceBuild(plan.ProxyImpl); ref || plan.ProxyImpl == "" || plan.ProxyImpl == scenarios.None {
		return nil, nil
	}
	a, ok := peers.Lookup(plan.ProxyImpl)
	if !ok {
		return nil, fmt.Errorf("deploying: proxy %q: not a peer (known: %v)", plan.ProxyImpl, peers.Names())
	}
	img, ok := p.opts.Peers[a.Name()]
	if !ok {
		if a.Package() == "" {
			return nil, &peers.NotApplicable{Peer: a.Name(), Reason: "not run: no " + a.Name() + " image (no package provides its binary on this machine)"}
		}
		return nil, fmt.Errorf("deploying: no image of %s for the cluster: name one with --peer-image %s=REF (the kind platform builds one from the %s binary on PATH: apt-get install %s)", a.Name(), a.Name(), a.Binary(), a.Package())
	}
	return &cellPeer{adapter: a, image: img, traffic: plan.Load.Protocols()}, nil
}

// proxyBinary is the image's meshproxy binary for a plan's proxy: a
// build's, or /meshproxy (also for peers and baselines, which run none).
func proxyBinary(impl string, builds []string) (string, error) {
	build, _ := scenarios.ReferenceBuild(impl)
	if build == "" {
		return "/meshproxy", nil
	}
	if !slices.Contains(builds, build) {
		return "", fmt.Errorf("deploying: proxy %s: the image holds no build %q (meshbench run --proxy-binary %s=PATH)", impl, build, build)
	}
	return BuildBinary(build), nil
}

// BuildBinary is where the image holds the meshproxy binary of a build.
func BuildBinary(build string) string { return "/meshproxy-" + build }

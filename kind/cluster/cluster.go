package cluster

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
)

const (
	// DefaultName is the cluster name when Config.Name is empty.
	DefaultName = "meshbench"
	// DefaultWait is how long Create waits for the nodes to be Ready when
	// Config.Wait is zero.
	DefaultWait = 3 * time.Minute
	// NodeImageEnv is the environment variable Config.NodeImage defaults
	// to. ../shared/kind-offline/env.sh sets it.
	NodeImageEnv = "KIND_NODE_IMAGE"
	// ControlPlaneLabel marks the control-plane node, and is the key of
	// the NoSchedule taint Create removes from it.
	ControlPlaneLabel = "node-role.kubernetes.io/control-plane"
)

// Config describes a cluster to create.
type Config struct {
	// Name is the kind cluster name; default DefaultName. Lower-case
	// letters, digits, '-' and '.', at most 50 characters.
	Name string
	// Nodes is the total number of nodes: one control plane and Nodes-1
	// workers. It must be at least 1.
	Nodes int
	// NodeImage is the kind node image; default $KIND_NODE_IMAGE.
	NodeImage string
	// Wait is how long Create waits for every node to be Ready; default
	// DefaultWait.
	Wait time.Duration
}

// withDefaults returns cfg with its defaults filled in, or an error naming
// the first invalid field.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if err := CheckName(cfg.Name); err != nil {
		return cfg, err
	}
	if cfg.Nodes < 1 {
		return cfg, fmt.Errorf("nodes is %d: it must be at least 1 (the control plane)", cfg.Nodes)
	}
	if cfg.NodeImage == "" {
		cfg.NodeImage = os.Getenv(NodeImageEnv)
	}
	if cfg.NodeImage == "" {
		return cfg, fmt.Errorf("no node image: set %s (bash ../shared/kind-offline/build.sh builds one, "+
			"source ../shared/kind-offline/env.sh sets it) or pass one explicitly", NodeImageEnv)
	}
	if cfg.Wait < 0 {
		return cfg, fmt.Errorf("wait is %v: it must not be negative", cfg.Wait)
	}
	if cfg.Wait == 0 {
		cfg.Wait = DefaultWait
	}
	return cfg, nil
}

// kindConfig is the kind cluster configuration of cfg: one control-plane
// node and cfg.Nodes-1 workers, all of cfg.NodeImage.
func (cfg Config) kindConfig() *v1alpha4.Cluster {
	kc := &v1alpha4.Cluster{
		TypeMeta: v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Name:     cfg.Name,
	}
	kc.Nodes = append(kc.Nodes, v1alpha4.Node{Role: v1alpha4.ControlPlaneRole, Image: cfg.NodeImage})
	for range cfg.Nodes - 1 {
		kc.Nodes = append(kc.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole, Image: cfg.NodeImage})
	}
	return kc
}

// CheckName returns an error when name cannot be a kind cluster name:
// empty, longer than 50 characters, or holding anything but lower-case
// letters, digits, '-' and '.', or not starting and ending with a letter
// or digit.
func CheckName(name string) error {
	if name == "" || len(name) > 50 {
		return fmt.Errorf("cluster name %q: must be 1 to 50 characters", name)
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if alnum || (r == '-' || r == '.') && i > 0 && i < len(name)-1 {
			continue
		}
		return fmt.Errorf("cluster name %q: only lower-case letters, digits, '-' and '.' are allowed, "+
			"starting and ending with a letter or digit", name)
	}
	return nil
}

// Cluster is a kind cluster that exists: made by Create or found by Open.
type Cluster struct {
	name      string
	nodeImage string
	provider  *kindcluster.Provider
	log       *slog.Logger
}

// newProvider returns a kind provider on docker that logs to log.
func newProvider(log *slog.Logger) *kindcluster.Provider {
	return kindcluster.NewProvider(
		kindcluster.ProviderWithLogger(kindLogger{log: log.With("component", "kind")}),
		kindcluster.ProviderWithDocker(),
	)
}

// Create creates the cluster cfg describes and waits, at most cfg.Wait
// and while ctx lasts, for every node to be Ready. Then it removes the
// control plane's NoSchedule taint, so ordinary pods run on every node.
// It fails if a cluster with that name exists. kind's own creation step
// cannot be interrupted; when ctx ends during it, or waiting or untainting
// fails, Create deletes the cluster before it returns the error.
func Create(ctx context.Context, cfg Config, log *slog.Logger) (*Cluster, error) {
	log = orDiscard(log)
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating cluster: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("creating cluster %s: %w", cfg.Name, err)
	}
	c := &Cluster{name: cfg.Name, nodeImage: cfg.NodeImage, provider: newProvider(log), log: log}
	exists, err := c.exists()
	if err != nil {
		return nil, fmt.Errorf("creating cluster %s: %w", cfg.Name, err)
	}
	if exists {
		return nil, fmt.Errorf("creating cluster %s: a kind cluster with that name exists (open or delete it)", cfg.Name)
	}

	// kind writes the kubeconfig into a file; give it a throwaway one so
	// the user's kubeconfig is left alone.
	dir, err := os.MkdirTemp("", "meshbench-kind-")
	if err != nil {
		return nil, fmt.Errorf("creating cluster %s: %w", cfg.Name, err)
	}
	defer os.RemoveAll(dir)

	start := time.Now()
	log.Info("creating kind cluster", "name", cfg.Name, "nodes", cfg.Nodes, "image", cfg.NodeImage)
	err = c.provider.Create(cfg.Name,
		kindcluster.CreateWithV1Alpha4Config(cfg.kindConfig()),
		kindcluster.CreateWithKubeconfigPath(filepath.Join(dir, "kubeconfig")),
		kindcluster.CreateWithDisplayUsage(false),
		kindcluster.CreateWithDisplaySalutation(false),
	)
	if err != nil {
		return nil, fmt.Errorf("creating cluster %s: %w", cfg.Name, err)
	}
	if err := c.settle(ctx, cfg); err != nil {
		err = fmt.Errorf("creating cluster %s: %w", cfg.Name, err)
		if derr := c.Delete(context.WithoutCancel(ctx)); derr != nil {
			return nil, errors.Join(err, derr)
		}
		return nil, err
	}
	log.Info("kind cluster ready", "name", cfg.Name, "nodes", cfg.Nodes, "took", time.Since(start).Round(time.Millisecond))
	return c, nil
}

// settle waits for cfg.Nodes Ready nodes, then makes the control plane
// schedulable.
func (c *Cluster) settle(ctx context.Context, cfg Config) error {
	client, err := c.Client()
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, cfg.Wait)
	defer cancel()
	if err := waitReady(waitCtx, client, cfg.Nodes); err != nil {
		return fmt.Errorf("waiting %v for %d nodes to be Ready: %w", cfg.Wait, cfg.Nodes, err)
	}
	return untaintControlPlane(ctx, client)
}

// waitReady polls the nodes until want of them are registered and Ready,
// or ctx ends. Its error then says what the nodes last looked like.
func waitReady(ctx context.Context, client kubernetes.Interface, want int) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			last = "listing nodes: " + err.Error()
			return false, nil
		}
		var notReady []string
		for _, n := range list.Items {
			if !NodeReady(&n) {
				notReady = append(notReady, n.Name)
			}
		}
		last = fmt.Sprintf("%d of %d nodes registered, not Ready: %v", len(list.Items), want, notReady)
		return len(list.Items) >= want && len(notReady) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%w (%s)", err, last)
	}
	return nil
}

// NodeReady reports whether the node's Ready condition is True.
func NodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// untaintControlPlane removes the control-plane NoSchedule taint from the
// control-plane nodes.
func untaintControlPlane(ctx context.Context, client kubernetes.Interface) error {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: ControlPlaneLabel})
	if err != nil {
		return fmt.Errorf("listing control-plane nodes: %w", err)
	}
	for _, item := range list.Items {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			n, err := client.CoreV1().Nodes().Get(ctx, item.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			kept := slices.DeleteFunc(slices.Clone(n.Spec.Taints), func(t corev1.Taint) bool {
				return t.Key == ControlPlaneLabel && t.Effect == corev1.TaintEffectNoSchedule
			})
			if len(kept) == len(n.Spec.Taints) {
				return nil
			}
			n.Spec.Taints = kept
			_, err = client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("removing the NoSchedule taint of node %s: %w", item.Name, err)
		}
	}
	return nil
}

// Open returns the existing kind cluster name (DefaultName when empty).
// It fails if there is none.
func Open(ctx context.Context, name string, log *slog.Logger) (*Cluster, error) {
	log = orDiscard(log)
	if name == "" {
		name = DefaultName
	}
	c := &Cluster{name: name, provider: newProvider(log), log: log}
	ns, err := c.provider.ListInternalNodes(name)
	if err != nil {
		return nil, fmt.Errorf("opening cluster %s: listing its nodes: %w", name, err)
	}
	if len(ns) == 0 {
		return nil, fmt.Errorf("opening cluster %s: no kind cluster with that name", name)
	}
	node := ns[0]
	if cps, err := nodeutils.ControlPlaneNodes(ns); err == nil && len(cps) > 0 {
		node = cps[0]
	}
	image, err := docker(ctx, "inspect", "--format", "{{.Config.Image}}", node.String())
	if err != nil {
		return nil, fmt.Errorf("opening cluster %s: reading the image of node %s: %w", name, node, err)
	}
	c.nodeImage = image
	return c, nil
}

// Exists reports whether a kind cluster called name (DefaultName when
// empty) exists.
func Exists(name string, log *slog.Logger) (bool, error) {
	if name == "" {
		name = DefaultName
	}
	c := &Cluster{name: name, provider: newProvider(orDiscard(log))}
	ok, err := c.exists()
	if err != nil {
		return false, fmt.Errorf("looking for cluster %s: %w", name, err)
	}
	return ok, nil
}

// exists reports whether kind lists c's name.
func (c *Cluster) exists() (bool, error) {
	names, err := c.provider.List()
	if err != nil {
		return false, fmt.Errorf("listing kind clusters: %w", err)
	}
	return slices.Contains(names, c.name), nil
}

// Name returns the kind cluster name.
func (c *Cluster) Name() string { return c.name }

// NodeImage returns the image the nodes run: the configured one after
// Create, the control-plane container's after Open.
func (c *Cluster) NodeImage() string { return c.nodeImage }

// Kubeconfig returns a kubeconfig (YAML) that reaches the cluster's API
// server from the host.
func (c *Cluster) Kubeconfig() (string, error) {
	kc, err := c.provider.KubeConfig(c.name, false)
	if err != nil {
		return "", fmt.Errorf("reading the kubeconfig of cluster %s: %w", c.name, err)
	}
	return kc, nil
}

// RESTConfig returns the client-go configuration of Kubeconfig.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	kc, err := c.Kubeconfig()
	if err != nil {
		return nil, err
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig([]byte(kc))
	if err != nil {
		return nil, fmt.Errorf("parsing the kubeconfig of cluster %s: %w", c.name, err)
	}
	return rc, nil
}

// Client returns a client-go clientset for the cluster.
func (c *Cluster) Client() (*kubernetes.Clientset, error) {
	rc, err := c.RESTConfig()
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("making a client for cluster %s: %w", c.name, err)
	}
	return cs, nil
}

// Nodes returns the Kubernetes node names: the control plane first, then
// the workers in name order.
func (c *Cluster) Nodes(ctx context.Context) ([]string, error) {
	client, err := c.Client()
	if err != nil {
		return nil, err
	}
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the nodes of cluster %s: %w", c.name, err)
	}
	return orderNodes(list.Items), nil
}

// orderNodes returns the names of ns, control-plane nodes first, each
// group in name order.
func orderNodes(ns []corev1.Node) []string {
	ns = slices.Clone(ns)
	slices.SortFunc(ns, func(a, b corev1.Node) int {
		_, acp := a.Labels[ControlPlaneLabel]
		_, bcp := b.Labels[ControlPlaneLabel]
		if acp != bcp {
			if acp {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Name, b.Name)
	})
	names := make([]string, len(ns))
	for i, n := range ns {
		names[i] = n.Name
	}
	return names
}

// LoadImage copies the local docker image into every node's containerd,
// as `kind load docker-image` does: one `docker save`, then an import on
// each node that does not have that image ID under that name yet.
func (c *Cluster) LoadImage(ctx context.Context, image string) error {
	if err := c.loadImage(ctx, image); err != nil {
		return fmt.Errorf("loading image %s into cluster %s: %w", image, c.name, err)
	}
	return nil
}

func (c *Cluster) loadImage(ctx context.Context, image string) error {
	id, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", image)
	if err != nil {
		return fmt.Errorf("reading the local image ID: %w", err)
	}
	all, err := c.provider.ListInternalNodes(c.name)
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	var need []nodes.Node
	for _, n := range all {
		if got, err := nodeutils.ImageID(n, image); err == nil && got == id {
			c.log.Debug("image already on node", "image", image, "node", n.String())
			continue
		}
		need = append(need, n)
	}
	if len(need) == 0 {
		c.log.Info("image already on every node", "image", image, "nodes", len(all))
		return nil
	}

	start := time.Now()
	dir, err := os.MkdirTemp("", "meshbench-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	archive := filepath.Join(dir, "image.tar")
	if _, err := docker(ctx, "save", "--output", archive, image); err != nil {
		return fmt.Errorf("saving the image: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	errs := make([]error, len(need))
	var wg sync.WaitGroup
	for i, n := range need {
		wg.Go(func() {
			errs[i] = importArchive(n, archive)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	names := make([]string, len(need))
	for i, n := range need {
		names[i] = n.String()
	}
	c.log.Info("loaded image", "image", image, "nodes", names, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// importArchive imports the image archive file into node n.
func importArchive(n nodes.Node, archive string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := nodeutils.LoadImageArchive(n, f); err != nil {
		return fmt.Errorf("importing into node %s: %w", n, err)
	}
	return nil
}

// Delete deletes the cluster's nodes. It does not touch the user's
// kubeconfig files.
func (c *Cluster) Delete(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting cluster %s: %w", c.name, err)
	}
	dir, err := os.MkdirTemp("", "meshbench-kind-")
	if err != nil {
		return fmt.Errorf("deleting cluster %s: %w", c.name, err)
	}
	defer os.RemoveAll(dir)
	start := time.Now()
	if err := c.provider.Delete(c.name, filepath.Join(dir, "kubeconfig")); err != nil {
		return fmt.Errorf("deleting cluster %s: %w", c.name, err)
	}
	c.log.Info("deleted kind cluster", "name", c.name, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Available returns nil when kind clusters can be made here: docker
// answers, $KIND_NODE_IMAGE is set and docker has that image. Otherwise
// its error says what is missing. Tests that need a cluster skip or fail
// on it.
func Available() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := docker(ctx, "info", "--format", "{{.ServerVersion}}"); err != nil {
		return fmt.Errorf("docker does not answer (bash ../shared/kind-offline/build.sh starts dockerd): %w", err)
	}
	image := os.Getenv(NodeImageEnv)
	if image == "" {
		return fmt.Errorf("%s is not set: source ../shared/kind-offline/env.sh", NodeImageEnv)
	}
	if _, err := docker(ctx, "image", "inspect", "--format", "{{.Id}}", image); err != nil {
		return fmt.Errorf("node image %s (from %s) is not in docker: run bash ../shared/kind-offline/build.sh: %w",
			image, NodeImageEnv, err)
	}
	return nil
}

// docker runs the docker command and returns its trimmed standard output.
// Its error holds the command and its standard error.
func docker(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

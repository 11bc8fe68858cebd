package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/meshbench/meshbench/kind/cluster"
	"github.com/meshbench/meshbench/kind/image"
	"github.com/meshbench/meshbench/kind/kindtest"
)

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// nodeHasImage reports whether the node container's containerd has ref.
func nodeHasImage(ctx context.Context, node, ref string) bool {
	return exec.CommandContext(ctx, "docker", "exec", node, "crictl", "inspecti", ref).Run() == nil
}

func TestClusterLifecycle(t *testing.T) {
	kindtest.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), &logs), nil))
	name := fmt.Sprintf("meshbench-test-%d-%d", os.Getpid(), time.Now().Unix()%100000)
	t.Cleanup(func() {
		if ok, err := cluster.Exists(name, log); err != nil || !ok {
			return
		}
		if c, err := cluster.Open(context.Background(), name, log); err == nil {
			if err := c.Delete(context.Background()); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})

	start := time.Now()
	c, err := cluster.Create(ctx, cluster.Config{Name: name, Nodes: 2}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("create (2 nodes Ready, control plane untainted): %v", time.Since(start).Round(time.Millisecond))
	if c.Name() != name || c.NodeImage() != os.Getenv(cluster.NodeImageEnv) {
		t.Errorf("Name, NodeImage = %s, %s", c.Name(), c.NodeImage())
	}
	if ok, err := cluster.Exists(name, log); err != nil || !ok {
		t.Errorf("Exists(%s) = %v, %v after Create", name, ok, err)
	}
	if _, err := cluster.Create(ctx, cluster.Config{Name: name, Nodes: 1}, log); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("second Create of %s = %v, want an exists error", name, err)
	}

	nodes, err := c.Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	controlPlane := name + "-control-plane"
	if want := []string{controlPlane, name + "-worker"}; !slices.Equal(nodes, want) {
		t.Fatalf("Nodes = %v, want %v", nodes, want)
	}
	client, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		node, err := client.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !cluster.NodeReady(node) {
			t.Errorf("node %s is not Ready", n)
		}
		for _, taint := range node.Spec.Taints {
			if taint.Effect == corev1.TaintEffectNoSchedule {
				t.Errorf("node %s keeps the NoSchedule taint %s", n, taint.Key)
			}
		}
	}

	opened, err := cluster.Open(ctx, name, log)
	if err != nil {
		t.Fatal(err)
	}
	if opened.NodeImage() != c.NodeImage() {
		t.Errorf("Open: NodeImage = %q, want %q", opened.NodeImage(), c.NodeImage())
	}
	kc, err := opened.Kubeconfig()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(kc, "server: https://127.0.0.1:") {
		t.Errorf("kubeconfig is not the host's (no server on 127.0.0.1):\n%s", kc)
	}

	msg := fmt.Sprintf("hello from %s", name)
	ref, err := image.Build(ctx, "meshbench/cluster-test", map[string]string{"/hello": kindtest.StaticBinary(t, t.TempDir(), msg)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "--force", ref).Run() })
	for _, n := range nodes {
		if nodeHasImage(ctx, n, ref) {
			t.Fatalf("node %s has %s before LoadImage", n, ref)
		}
	}
	start = time.Now()
	if err := c.LoadImage(ctx, ref); err != nil {
		t.Fatal(err)
	}
	t.Logf("load image into 2 nodes: %v", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		if !nodeHasImage(ctx, n, ref) {
			t.Errorf("node %s lacks %s after LoadImage", n, ref)
		}
	}
	if err := c.LoadImage(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "image already on every node") {
		t.Error("second LoadImage did not skip the nodes that have the image")
	}
	if err := c.LoadImage(ctx, "meshbench/no-such-image:0"); err == nil {
		t.Error("LoadImage of a missing local image = nil error")
	}

	runOnControlPlane(ctx, t, client, controlPlane, ref, msg)

	start = time.Now()
	if err := c.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("delete: %v", time.Since(start).Round(time.Millisecond))
	if ok, err := cluster.Exists(name, log); err != nil || ok {
		t.Errorf("Exists(%s) = %v, %v after Delete", name, ok, err)
	}
	if _, err := cluster.Open(ctx, name, log); err == nil {
		t.Errorf("Open(%s) after Delete = nil error", name)
	}
}

// runOnControlPlane runs ref's /hello in a pod that the scheduler must
// place on the control-plane node (a nodeSelector, no toleration), and
// checks it prints msg.
func runOnControlPlane(ctx context.Context, t *testing.T, client kubernetes.Interface, node, ref, msg string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "hello"},
		Spec: corev1.PodSpec{
			NodeSelector:  map[string]string{"kubernetes.io/hostname": node},
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "hello", Image: ref, Command: []string{"/hello"},
				ImagePullPolicy: corev1.PullIfNotPresent,
			}},
		},
	}
	pods := client.CoreV1().Pods("default")
	// The default service account appears shortly after the API server.
	var created *corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Logf("creating pod: %v", err)
			return false, nil
		}
		created = p
		return true, nil
	})
	if err != nil {
		t.Fatalf("creating pod: %v", err)
	}
	var last *corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := pods.Get(ctx, created.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = p
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	if err != nil {
		if last == nil {
			t.Fatalf("pod did not finish: %v", err)
		}
		t.Fatalf("pod did not finish: %v; last status %+v", err, last.Status)
	}
	if last.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s: %+v", last.Status.Phase, last.Status)
	}
	if last.Spec.NodeName != node {
		t.Errorf("pod ran on %s, want %s", last.Spec.NodeName, node)
	}
	out, err := pods.GetLogs(created.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != msg {
		t.Errorf("pod printed %q, want %q", got, msg)
	}
}

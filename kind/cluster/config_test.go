package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

func TestConfigDefaults(t *testing.T) {
	t.Setenv(NodeImageEnv, "example/node:v1")
	cfg, err := Config{Nodes: 3}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != DefaultName || cfg.NodeImage != "example/node:v1" || cfg.Wait != DefaultWait || cfg.Nodes != 3 {
		t.Errorf("defaults = %+v", cfg)
	}
	cfg, err = Config{Name: "other", Nodes: 1, NodeImage: "mine/node:v2", Wait: time.Minute}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "other" || cfg.NodeImage != "mine/node:v2" || cfg.Wait != time.Minute {
		t.Errorf("explicit values changed: %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Setenv(NodeImageEnv, "example/node:v1")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"zero nodes", Config{}, "at least 1"},
		{"negative nodes", Config{Nodes: -1}, "at least 1"},
		{"bad name", Config{Name: "Mesh_Bench", Nodes: 1}, "cluster name"},
		{"negative wait", Config{Nodes: 1, Wait: -time.Second}, "wait"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("withDefaults(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
			}
		})
	}
	t.Run("no node image", func(t *testing.T) {
		t.Setenv(NodeImageEnv, "")
		_, err := Config{Nodes: 1}.withDefaults()
		if err == nil || !strings.Contains(err.Error(), NodeImageEnv) || !strings.Contains(err.Error(), "../shared/kind-offline") {
			t.Errorf("withDefaults without an image = %v, want an error naming %s and ../shared/kind-offline", err, NodeImageEnv)
		}
	})
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"meshbench", "meshbench-t1", "a", "x.y-2", strings.Repeat("a", 50)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "MeshBench", "mesh_bench", "-mesh", "mesh-", ".mesh", "mesh bench", strings.Repeat("a", 51)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) = nil", bad)
		}
	}
}

func TestKindConfig(t *testing.T) {
	kc := Config{Name: "mb", Nodes: 3, NodeImage: "img:v1"}.kindConfig()
	if kc.Name != "mb" || kc.APIVersion != "kind.x-k8s.io/v1alpha4" || kc.Kind != "Cluster" {
		t.Errorf("header = %+v %s", kc.TypeMeta, kc.Name)
	}
	want := []v1alpha4.NodeRole{v1alpha4.ControlPlaneRole, v1alpha4.WorkerRole, v1alpha4.WorkerRole}
	if len(kc.Nodes) != len(want) {
		t.Fatalf("%d nodes, want %d", len(kc.Nodes), len(want))
	}
	for i, n := range kc.Nodes {
		if n.Role != want[i] || n.Image != "img:v1" {
			t.Errorf("node %d = %s %s, want %s img:v1", i, n.Role, n.Image, want[i])
		}
	}
	if n := len(Config{Name: "mb", Nodes: 1, NodeImage: "img:v1"}.kindConfig().Nodes); n != 1 {
		t.Errorf("one-node config has %d nodes", n)
	}
}

func TestOrderNodes(t *testing.T) {
	node := func(name string, cp bool) corev1.Node {
		n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
		if cp {
			n.Labels[ControlPlaneLabel] = ""
		}
		return n
	}
	got := orderNodes([]corev1.Node{node("mb-worker2", false), node("mb-worker", false), node("mb-control-plane", true), node("a-worker", false)})
	want := []string{"mb-control-plane", "a-worker", "mb-worker", "mb-worker2"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("orderNodes = %v, want %v", got, want)
	}
}

func TestNodeReady(t *testing.T) {
	n := &corev1.Node{}
	if NodeReady(n) {
		t.Error("a node without conditions is Ready")
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue}, {Type: corev1.NodeReady, Status: corev1.ConditionFalse}}
	if NodeReady(n) {
		t.Error("Ready=False node is Ready")
	}
	n.Status.Conditions[1].Status = corev1.ConditionTrue
	if !NodeReady(n) {
		t.Error("Ready=True node is not Ready")
	}
}

func TestKindLogger(t *testing.T) {
	var buf bytes.Buffer
	l := kindLogger{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	l.V(0).Infof(" • step %d  ...\n", 1)
	l.V(1).Info("debug detail")
	l.Warnf("careful %s", "now")
	l.Errorf("broke %d", 2)
	out := buf.String()
	for _, want := range []string{"level=INFO msg=\"• step 1  ...\"\n", "level=WARN msg=\"careful now\"", "level=ERROR msg=\"broke 2\""} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "debug detail") {
		t.Errorf("V(1) logged at Info level:\n%s", out)
	}
	if !l.V(0).Enabled() || l.V(2).Enabled() {
		t.Error("Enabled does not follow the slog level")
	}
}

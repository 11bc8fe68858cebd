package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/meshbench/meshbench/kind/cluster"
	"github.com/meshbench/meshbench/kind/image"
)

const kindUsage = "usage: meshbench kind up|down|load [flags]   (meshbench kind SUB-VERB --help lists its flags)"

// runKind is `meshbench kind up|down|load`: it creates or reuses, deletes,
// or loads meshbench's image into a kind cluster, for manual use of the
// kind platform.
func runKind(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "meshbench kind: missing sub-verb: up, down or load")
		fmt.Fprintln(stderr, kindUsage)
		return 2
	}
	switch args[0] {
	case "up":
		return runKindUp(ctx, args[1:], stdout, stderr)
	case "down":
		return runKindDown(ctx, args[1:], stdout, stderr)
	case "load":
		return runKindLoad(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, kindUsage)
		fmt.Fprintln(stdout, "  up     create a kind cluster (or reuse the one with that name) and write its kubeconfig")
		fmt.Fprintln(stdout, "  down   delete a kind cluster")
		fmt.Fprintln(stdout, "  load   build meshbench's image from the meshproxy and meshbench binaries and load it into the cluster")
		return 0
	default:
		fmt.Fprintf(stderr, "meshbench kind: unknown sub-verb %q: want up, down or load\n", args[0])
		fmt.Fprintln(stderr, kindUsage)
		return 2
	}
}

// defaultKubeconfig is where `kind up` writes the kubeconfig of cluster
// name when --kubeconfig is not given.
func defaultKubeconfig(name string) string {
	return filepath.Join(os.TempDir(), "meshbench-kind-"+name+".kubeconfig")
}

// runKindUp is `meshbench kind up`.
func runKindUp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("kind up", "meshbench kind up [--name meshbench] [--nodes 2] [--node-image IMG] [--kubeconfig FILE] [--wait 3m]", stderr)
	name := fs.String("name", cluster.DefaultName, "kind cluster `NAME`")
	nodes := fs.Int("nodes", 2, "total `NODES`: one control plane and NODES-1 workers, all schedulable")
	nodeImage := fs.String("node-image", os.Getenv(cluster.NodeImageEnv), "kind node `IMAGE` (default $"+cluster.NodeImageEnv+")")
	kubeconfig := fs.String("kubeconfig", "", "`FILE` to write the cluster's kubeconfig to (default $TMPDIR/meshbench-kind-NAME.kubeconfig)")
	wait := fs.Duration("wait", cluster.DefaultWait, "how long to wait for the nodes to be Ready")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := cluster.CheckName(*name); err != nil {
		fmt.Fprintf(stderr, "meshbench kind up: --name: %v\n", err)
		return 2
	}
	if *nodes < 1 {
		fmt.Fprintf(stderr, "meshbench kind up: --nodes %d: at least 1 (the control plane)\n", *nodes)
		return 2
	}
	if *wait <= 0 {
		fmt.Fprintf(stderr, "meshbench kind up: --wait %v: must be positive\n", *wait)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	start := time.Now()
	exists, err := cluster.Exists(*name, log)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench kind up: %v\n", err)
		return 1
	}
	var c *cluster.Cluster
	if exists {
		c, err = cluster.Open(ctx, *name, log)
	} else {
		c, err = cluster.Create(ctx, cluster.Config{Name: *name, Nodes: *nodes, NodeImage: *nodeImage, Wait: *wait}, log)
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshbench kind up: %v\n", err)
		return 1
	}
	if exists {
		fmt.Fprintf(stdout, "cluster %s exists (image %s): reusing it; --nodes and --node-image do not apply\n", c.Name(), c.NodeImage())
	} else {
		fmt.Fprintf(stdout, "created cluster %s (image %s) in %v\n", c.Name(), c.NodeImage(), time.Since(start).Round(time.Second))
	}
	names, err := c.Nodes(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench kind up: %v\n", err)
		return 1
	}
	for _, n := range names {
		fmt.Fprintf(stdout, "node %s\n", n)
	}
	path := *kubeconfig
	if path == "" {
		path = defaultKubeconfig(c.Name())
	}
	if err := writeKubeconfig(c, path); err != nil {
		fmt.Fprintf(stderr, "meshbench kind up: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "kubeconfig %s\n", path)
	return 0
}

// writeKubeconfig writes c's host kubeconfig to path, readable by its
// owner only.
func writeKubeconfig(c *cluster.Cluster, path string) error {
	kc, err := c.Kubeconfig()
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("writing kubeconfig %s: %w", path, err)
		}
	}
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

// runKindDown is `meshbench kind down`.
func runKindDown(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("kind down", "meshbench kind down [--name meshbench]", stderr)
	name := fs.String("name", cluster.DefaultName, "kind cluster `NAME`")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := cluster.CheckName(*name); err != nil {
		fmt.Fprintf(stderr, "meshbench kind down: --name: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	exists, err := cluster.Exists(*name, log)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench kind down: %v\n", err)
		return 1
	}
	if !exists {
		fmt.Fprintf(stdout, "no kind cluster named %s: nothing to delete\n", *name)
		return 0
	}
	c, err := cluster.Open(ctx, *name, log)
	if err == nil {
		err = c.Delete(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshbench kind down: %v\n", err)
		return 1
	}
	if err := os.Remove(defaultKubeconfig(*name)); err != nil && !os.IsNotExist(err) {
		fmt.Fprintf(stderr, "meshbench kind down: removing the kubeconfig: %v\n", err)
	}
	fmt.Fprintf(stdout, "deleted cluster %s\n", *name)
	return 0
}

// runKindLoad is `meshbench kind load`.
func runKindLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("kind load", "meshbench kind load [--name meshbench] [--bin DIR]", stderr)
	name := fs.String("name", cluster.DefaultName, "kind cluster `NAME`")
	bin := fs.String("bin", "", "`DIR` holding the static meshproxy and meshbench binaries (default: this meshbench's directory)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := cluster.CheckName(*name); err != nil {
		fmt.Fprintf(stderr, "meshbench kind load: --name: %v\n", err)
		return 2
	}
	dir := *bin
	if dir == "" {
		exe, err := os.Executable()
		if err == nil {
			exe, err = filepath.EvalSymlinks(exe)
		}
		if err != nil {
			fmt.Fprintf(stderr, "meshbench kind load: finding this executable's directory (pass --bin): %v\n", err)
			return 1
		}
		dir = filepath.Dir(exe)
	}
	files := image.Binaries(dir)
	for _, dst := range slices.Sorted(maps.Keys(files)) {
		if err := image.CheckStatic(files[dst]); err != nil {
			fmt.Fprintf(stderr, "meshbench kind load: %v (make build writes both binaries into bin/)\n", err)
			return 1
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	exists, err := cluster.Exists(*name, log)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench kind load: %v\n", err)
		return 1
	}
	if !exists {
		fmt.Fprintf(stderr, "meshbench kind load: no kind cluster named %s: run meshbench kind up --name %s first\n", *name, *name)
		return 1
	}
	c, err := cluster.Open(ctx, *name, log)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench kind load: %v\n", err)
		return 1
	}
	ref, err := image.Build(ctx, image.Repo, files)
	if err == nil {
		err = c.LoadImage(ctx, ref)
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshbench kind load: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, ref)
	return 0
}

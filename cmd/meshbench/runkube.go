package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshbench/meshbench/kind/cluster"
	"github.com/meshbench/meshbench/kind/image"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/scenarios"
	"github.com/meshbench/meshbench/scenarios/kube"
	"github.com/meshbench/meshbench/scenarios/platform"
)

// kubeFlags are `meshbench run`'s flags for the kind and kube platforms.
type kubeFlags struct {
	clusterName, nodeImage string
	keepCluster            bool
	kubeconfig, context    string
	image                  string
	peerImages             peerImageFlag
}

// peerImageFlag collects --peer-image NAME=REF[,BINARY]: the image of a
// peer proxy the cluster's nodes can pull, and the binary's path in it
// (default /usr/local/bin/<binary>).
type peerImageFlag map[string]kube.PeerImage

func (f peerImageFlag) String() string { return "" }

func (f peerImageFlag) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	a, known := peers.Lookup(name)
	if !ok || rest == "" || !known {
		return fmt.Errorf("%q: want NAME=REF[,BINARY] with NAME one of %s", v, strings.Join(peers.Names(), ", "))
	}
	ref, bin, _ := strings.Cut(rest, ",")
	if bin == "" {
		bin = "/usr/local/bin/" + a.Binary()
	}
	if !strings.HasPrefix(bin, "/") {
		return fmt.Errorf("%q: the binary's path in the image must be absolute", v)
	}
	f[name] = kube.PeerImage{Ref: ref, Binary: bin, Version: "image " + ref}
	return nil
}

func (k *kubeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.clusterName, "cluster-name", "meshbench", "kind: the cluster's `name` (an existing one is reused and kept)")
	fs.StringVar(&k.nodeImage, "node-image", "", "kind: node `image` (default $KIND_NODE_IMAGE; see ../shared/kind-offline)")
	fs.BoolVar(&k.keepCluster, "keep-cluster", false, "kind: keep the cluster the run created")
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kube: kubeconfig `file` of the cluster")
	fs.StringVar(&k.context, "context", "", "kube: kubeconfig `context` (default: the current one)")
	fs.StringVar(&k.image, "image", "", "kube: the meshbench `image` the cluster's nodes can pull (built with meshbench kind load or pushed by you); kind: built and loaded for you")
	k.peerImages = peerImageFlag{}
	fs.Var(k.peerImages, "peer-image", "kube: a peer proxy's image as `NAME=REF[,BINARY]` (repeatable; BINARY defaults to /usr/local/bin/NAME's binary); kind: built from the peer's binary on PATH and loaded for you")
}

// kubePlatform returns the kind or kube platform for a scenario, and what
// to do once the run ends (delete a kind cluster the run created).
func kubePlatform(ctx context.Context, name string, k kubeFlags, sc *scenarios.Scenario, self, proxyBin string, builds *buildFlag, sample time.Duration, log *slog.Logger, stderr io.Writer) (platform.Platform, func(), error) {
	noop := func() {}
	// The kubelet refreshes container stats every few seconds: reading
	// them more often than once a second only loads the API server.
	opts := kube.Options{Name: name, SampleInterval: max(sample, time.Second), Log: log, Builds: builds.order}
	switch name {
	case "kind":
		c, created, err := kindCluster(ctx, k, sc.Nodes, log, stderr)
		if err != nil {
			return nil, noop, err
		}
		cleanup := noop
		if created && !k.keepCluster {
			cleanup = func() {
				fmt.Fprintf(stderr, "meshbench run: deleting kind cluster %s\n", c.Name())
				dctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				if err := c.Delete(dctx); err != nil {
					fmt.Fprintf(stderr, "meshbench run: %v\n", err)
				}
			}
		}
		fmt.Fprintln(stderr, "meshbench run: building and loading the image")
		files := map[string]string{"/meshbench": self, "/meshproxy": proxyBin}
		for _, b := range builds.order {
			files[kube.BuildBinary(b)] = builds.paths[b]
		}
		ref, err := image.Build(ctx, image.Repo, files)
		if err != nil {
			return nil, cleanup, err
		}
		if err := c.LoadImage(ctx, ref); err != nil {
			return nil, cleanup, err
		}
		if opts.RESTConfig, err = c.RESTConfig(); err != nil {
			return nil, cleanup, err
		}
		opts.Image = ref
		if opts.Peers, err = peerImages(ctx, c, sc, stderr); err != nil {
			return nil, cleanup, err
		}
		if opts.Nodes, err = c.Nodes(ctx); err != nil {
			return nil, cleanup, err
		}
		opts.Facts = map[string]any{"provider": "kind", "cluster": c.Name(), "node_image": c.NodeImage(), "image": ref}
		p, err := kube.New(opts)
		return p, cleanup, err
	case "kube":
		if k.image == "" {
			return nil, noop, errors.New("--platform kube needs --image: a meshbench image the cluster's nodes can pull (docs/kind.md)")
		}
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if k.kubeconfig != "" {
			rules.ExplicitPath = k.kubeconfig
		}
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: k.context}).ClientConfig()
		if err != nil {
			return nil, noop, fmt.Errorf("loading the kubeconfig: %w", err)
		}
		opts.RESTConfig, opts.Image, opts.Peers = cfg, k.image, k.peerImages
		opts.Facts = map[string]any{"provider": "kube", "context": k.context, "image": k.image}
		p, err := kube.New(opts)
		return p, noop, err
	}
	return nil, noop, fmt.Errorf("platform %q", name)
}

// kindCluster opens the named kind cluster, or creates it with the
// scenario's node count; created reports which.
func kindCluster(ctx context.Context, k kubeFlags, nodes int, log *slog.Logger, stderr io.Writer) (c *cluster.Cluster, created bool, err error) {
	exists, err := cluster.Exists(k.clusterName, log)
	if err != nil {
		return nil, false, err
	}
	if exists {
		fmt.Fprintf(stderr, "meshbench run: reusing kind cluster %s\n", k.clusterName)
		c, err := cluster.Open(ctx, k.clusterName, log)
		return c, false, err
	}
	fmt.Fprintf(stderr, "meshbench run: creating kind cluster %s with %d nodes\n", k.clusterName, max(nodes, 1))
	c, err = cluster.Create(ctx, cluster.Config{Name: k.clusterName, Nodes: max(nodes, 1), NodeImage: k.nodeImage}, log)
	return c, err == nil, err
}

// peerImages builds a FROM scratch image of every peer the scenario names
// whose binary is on PATH (the binary, its shared libraries and loader:
// kind/image.PeerFiles), loads it into the cluster and returns them by
// peer. A peer whose binary is missing gets none: its cells fail with the
// package to install (Envoy's are n/a).
func peerImages(ctx context.Context, c *cluster.Cluster, sc *scenarios.Scenario, stderr io.Writer) (map[string]kube.PeerImage, error) {
	cells, err := sc.Cells(scenarios.CellOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]kube.PeerImage{}
	for _, cell := range cells {
		name := cell.Labels[scenarios.DimProxy]
		a, ok := peers.Lookup(name)
		if _, done := out[name]; !ok || done {
			continue
		}
		bin, err := peers.Find(a)
		if err != nil {
			fmt.Fprintf(stderr, "meshbench run: no image for %s: %v\n", name, err)
			continue
		}
		version, err := a.Version(ctx, bin)
		if err != nil {
			return nil, err
		}
		dir, err := os.MkdirTemp("", "meshbench-peer-image-")
		if err != nil {
			return nil, err
		}
		files, err := image.PeerFiles(ctx, bin, dir)
		var ref string
		if err == nil {
			fmt.Fprintf(stderr, "meshbench run: building and loading the %s image\n", name)
			ref, err = image.BuildFiles(ctx, "meshbench/peer-"+name, files)
		}
		os.RemoveAll(dir)
		if err != nil {
			return nil, fmt.Errorf("the %s image: %w", name, err)
		}
		if err := c.LoadImage(ctx, ref); err != nil {
			return nil, err
		}
		out[name] = kube.PeerImage{Ref: ref, Binary: bin, Version: version}
	}
	return out, nil
}

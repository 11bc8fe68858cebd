package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/meshbench/meshbench/proxy/discovery"
	"github.com/meshbench/meshbench/proxy/discovery/kube"
	"github.com/meshbench/meshbench/proxy/discovery/remote"
)

// runDiscovery is `meshbench discovery`: the reference proxy's discovery
// server. It follows the EndpointSlices of every Service a proxy asks for
// and answers the proxies' long polls (proxy/discovery/remote) until ctx is
// cancelled.
func runDiscovery(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("discovery", "meshbench discovery --listen ADDR [--kubeconfig FILE]", stderr)
	listen := fs.String("listen", "", "`ADDR` to serve the proxies on (required; port 0 picks one)")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig `FILE` (default: the in-cluster configuration of the pod it runs in)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *listen == "" {
		fmt.Fprintln(stderr, "meshbench discovery: --listen is required")
		fs.Usage()
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	klog.SetSlogLogger(log.With("component", "client-go"))
	client, err := kubeClient(*kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench discovery: %v\n", err)
		return 2
	}
	srv := remote.NewServer(func(k remote.Key) discovery.Source {
		return kube.EndpointSlices(kube.Config{Client: client, Namespace: k.Namespace, Service: k.Service, PortName: k.Port, Log: log})
	}, log)
	defer srv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "meshbench discovery: %v\n", err)
		return 1
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(stdout, "discovery %s\n", ln.Addr())
	select {
	case err := <-errc:
		fmt.Fprintf(stderr, "meshbench discovery: serving: %v\n", err)
		return 1
	case <-ctx.Done():
	}
	// Long polls end at once (503: the proxies keep their sets and retry).
	srv.Close()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "meshbench discovery: %v\n", err)
		return 1
	}
	return 0
}

// kubeClient connects to the Kubernetes API: through kubeconfig when it is
// set, else with the in-cluster configuration of the pod it runs in.
func kubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var rc *rest.Config
	var err error
	if kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("configuring the Kubernetes client: %w", err)
	}
	kc, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("creating the Kubernetes client: %w", err)
	}
	return kc, nil
}

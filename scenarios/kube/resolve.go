package kube

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/scenarios"
)

// Port names of a service's Service and EndpointSlices.
const (
	portNameHTTP = "http"
	portNameGRPC = "grpc"
	portNameMesh = "mesh" // a sidecar's inbound listener
)

// servicePort returns the Service port name of a reference's port.
func servicePort(port string) (string, error) {
	switch port {
	case scenarios.PortNameHTTP:
		return portNameHTTP, nil
	case scenarios.PortNameGRPC:
		return portNameGRPC, nil
	case scenarios.PortNameInbound:
		return portNameMesh, nil
	}
	return "", fmt.Errorf("a service has no port %q", port)
}

// resolver resolves the references of one process of a cell: a proxy in
// a pod (self is its pod) or on a node (self is its node), or the load
// generator (in the client's pod). The process listens on every
// interface of its pod or node and reaches itself on loopback; other pods
// by their IPs, nodes by their InternalIPs, and services through their
// EndpointSlices.
type resolver struct {
	t    *target
	self scenarios.Ref // Kind and Name of the process's pod or node
	// hostIP, when set, is how the process writes the address of node
	// hostNode, its own (the load generator's $(HOST_IP), from the
	// downward API).
	hostIP, hostNode string
	// certPath maps the plan's certificate paths; nil keeps them.
	certPath func(string) (string, error)
}

var _ scenarios.Resolver = (*resolver)(nil)

func (r *resolver) isSelf(ref scenarios.Ref) bool {
	return ref.Kind == r.self.Kind && ref.Name == r.self.Name
}

// Listen resolves the process's own pod or node to every interface.
func (r *resolver) Listen(ref scenarios.Ref) (string, error) {
	if !r.isSelf(ref) {
		return "", fmt.Errorf("a process of %s %s cannot listen on %s %s", r.self.Kind, r.self.Name, ref.Kind, ref.Name)
	}
	return ref.At("0.0.0.0")
}

// Reach resolves the process's own pod or node to loopback, another pod
// to its IP (known once the pod runs), a node to its address.
func (r *resolver) Reach(ref scenarios.Ref) (string, error) {
	if r.isSelf(ref) {
		return ref.At("127.0.0.1")
	}
	switch ref.Kind {
	case scenarios.RefPod:
		ip := r.t.PodIPs[ref.Name]
		if ip == "" {
			return "", fmt.Errorf("pod %s has no IP yet", ref.Name)
		}
		return ref.At(ip)
	case scenarios.RefNode:
		if r.hostIP != "" && ref.Name == r.hostNode {
			return ref.At(r.hostIP)
		}
		ip := r.t.NodeIPs[ref.Name]
		if ip == "" {
			return "", fmt.Errorf("node %s has no address", ref.Name)
		}
		return ref.At(ip)
	}
	return "", fmt.Errorf("a %s is not one address", ref.Kind)
}

// Service makes the service's EndpointSlices the cluster's endpoints, or,
// for a peer, its pods' IPs.
func (r *resolver) Service(cl *config.Cluster, ref scenarios.Ref) error {
	if r.t.Peer != nil {
		return r.staticEndpoints(cl, ref)
	}
	port, err := servicePort(ref.Port)
	if err != nil {
		return err
	}
	cl.Kubernetes = &config.KubernetesEndpoints{Namespace: r.t.Namespace, Service: ref.Name, Port: port}
	return nil
}

// CertPath maps a certificate path through certPath.
func (r *resolver) CertPath(p string) (string, error) {
	if r.certPath == nil {
		return p, nil
	}
	return r.certPath(p)
}

// render renders a proxy's configuration for the cluster. The admin server
// listens on the pod's (or node's) address for the kubelet's probe and
// the harness's scrape: /ready and /metrics only, never /config or the
// profiler.
func (r *resolver) render(px *scenarios.Proxy) (*config.Config, error) {
	c, err := scenarios.RenderConfig(px.Config, r)
	if err != nil {
		return nil, fmt.Errorf("configuring %s: %w", px.Name, err)
	}
	c.AdminDebug = false
	return c, nil
}

// certFiles returns the certificate files (plan paths) a configuration
// names, sorted.
func certFiles(c *config.Config) []string {
	set := map[string]bool{}
	add := func(ps ...string) {
		for _, p := range ps {
			if p != "" {
				set[p] = true
			}
		}
	}
	for _, l := range c.Listeners {
		if t := l.TLS; t != nil {
			add(t.CertFile, t.KeyFile, t.ClientCAFile)
		}
	}
	for _, cl := range c.Clusters {
		if t := cl.TLS; t != nil {
			add(t.CAFile, t.CertFile, t.KeyFile)
			for _, p := range t.Certs {
				add(p.CertFile, p.KeyFile)
			}
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// certBase returns a plan certificate path's file name ("certs/echo.pem"
// -> "echo.pem"); it fails for a path outside the plan's certificates
// directory.
func certBase(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, scenarios.CertsDir+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", fmt.Errorf("certificate path %q is not in %s/", p, scenarios.CertsDir)
	}
	return rest, nil
}

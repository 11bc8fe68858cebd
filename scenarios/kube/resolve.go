package kube

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
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

// portName returns the Service port name of a plan port.
func portName(port int) string {
	switch port {
	case scenarios.PortHTTP:
		return portNameHTTP
	case scenarios.PortGRPC:
		return portNameGRPC
	case scenarios.PortInbound:
		return portNameMesh
	}
	return ""
}

// addressing maps a plan's addresses to the cluster's: pods and nodes by
// their plan address. A pod whose IP is not known yet maps to "".
type addressing struct {
	podIP  map[string]string // plan pod address -> pod IP
	nodeIP map[string]string // plan node address -> node IP
	pods   map[string]*scenarios.Pod
}

func newAddressing(plan *scenarios.Plan, nodeIPs, podIPs map[string]string) *addressing {
	a := &addressing{podIP: map[string]string{}, nodeIP: map[string]string{}, pods: map[string]*scenarios.Pod{}}
	for _, n := range plan.Nodes {
		a.nodeIP[n.Addr] = nodeIPs[n.Name]
	}
	for i := range plan.Pods {
		p := &plan.Pods[i]
		a.pods[p.Addr] = p
		a.podIP[p.Addr] = podIPs[p.Name]
	}
	return a
}

// mapper returns the function that translates host:port addresses for a
// process whose own plan address is self (a pod's or a node's): self
// becomes selfHost; other pods and nodes their IPs. It fails on an
// address of neither, or of a pod whose IP is not known yet.
func (a *addressing) mapper(self, selfHost string) func(string) (string, error) {
	return func(addr string) (string, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return "", fmt.Errorf("address %q: %w", addr, err)
		}
		var to string
		switch {
		case host == self:
			to = selfHost
		case a.nodeIP[host] != "":
			to = a.nodeIP[host]
		case a.pods[host] != nil:
			if to = a.podIP[host]; to == "" {
				return "", fmt.Errorf("address %q: pod %s has no IP yet", addr, a.pods[host].Name)
			}
		default:
			return "", fmt.Errorf("address %q is neither a pod nor a node of the plan", addr)
		}
		return net.JoinHostPort(to, port), nil
	}
}

// serviceCluster reports whether endpoints are exactly one port of every
// pod of one service, and which: such a cluster follows the service's
// EndpointSlices instead of a fixed list.
func (a *addressing) serviceCluster(plan *scenarios.Plan, endpoints []string) (service string, port int, ok bool) {
	seen := map[string]bool{}
	for _, e := range endpoints {
		host, ps, err := net.SplitHostPort(e)
		if err != nil {
			return "", 0, false
		}
		p := a.pods[host]
		n, _ := strconv.Atoi(ps)
		if p == nil || p.Backend == nil || (service != "" && (p.Service != service || n != port)) || portName(n) == "" {
			return "", 0, false
		}
		service, port = p.Service, n
		seen[p.Name] = true
	}
	if service == "" {
		return "", 0, false
	}
	for _, p := range plan.Pods {
		if p.Service == service && p.Backend != nil && !seen[p.Name] {
			return "", 0, false
		}
	}
	return service, port, true
}

// translate returns a copy of a proxy's configuration for the cluster:
// addresses mapped (listeners and the admin server listen on every
// interface of the pod; self is the proxy's own plan address), clusters
// over a whole service turned into EndpointSlice sources in namespace ns,
// and certificate paths passed through certPath.
func (a *addressing) translate(plan *scenarios.Plan, c *config.Config, self, ns string, certPath func(string) string) (*config.Config, error) {
	out := *c
	listen := a.mapper(self, "0.0.0.0")
	reach := a.mapper(self, "127.0.0.1")
	var err error
	if out.Admin != "" {
		if out.Admin, err = listen(out.Admin); err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
	}
	// The admin server listens on the pod's address for the kubelet's
	// probe and the harness's scrape: /ready and /metrics only, never
	// /config or the profiler.
	out.AdminDebug = false
	out.Listeners = slices.Clone(c.Listeners)
	for i := range out.Listeners {
		l := &out.Listeners[i]
		if l.Address, err = listen(l.Address); err != nil {
			return nil, fmt.Errorf("listener %s: %w", l.Name, err)
		}
		if l.TLS != nil {
			t := *l.TLS
			t.CertFile, t.KeyFile, t.ClientCAFile = certPath(t.CertFile), certPath(t.KeyFile), certPath(t.ClientCAFile)
			l.TLS = &t
		}
	}
	out.Clusters = slices.Clone(c.Clusters)
	for i := range out.Clusters {
		if err := a.translateCluster(plan, &out.Clusters[i], ns, reach, certPath); err != nil {
			return nil, fmt.Errorf("cluster %s: %w", out.Clusters[i].Name, err)
		}
	}
	return &out, nil
}

func (a *addressing) translateCluster(plan *scenarios.Plan, cl *config.Cluster, ns string, reach func(string) (string, error), certPath func(string) string) error {
	var err error
	mapAll := func(in []string) ([]string, error) {
		out := make([]string, len(in))
		for i, e := range in {
			if out[i], err = reach(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	if svc, port, ok := a.serviceCluster(plan, cl.Endpoints); ok && len(cl.Weights) == 0 {
		cl.Endpoints = nil
		cl.Kubernetes = &config.KubernetesEndpoints{Namespace: ns, Service: svc, Port: portName(port)}
	} else if cl.Endpoints, err = mapAll(cl.Endpoints); err != nil {
		return err
	}
	if len(cl.Weights) > 0 {
		w := map[string]int{}
		for k, v := range cl.Weights {
			m, err := reach(k)
			if err != nil {
				return err
			}
			w[m] = v
		}
		cl.Weights = w
	}
	if v := cl.Via; v != nil {
		nv := *v
		nv.Gateways = map[string]string{}
		for _, ep := range slices.Sorted(maps.Keys(v.Gateways)) {
			k, err := reach(ep)
			if err != nil {
				return fmt.Errorf("via: %w", err)
			}
			if nv.Gateways[k], err = reach(v.Gateways[ep]); err != nil {
				return fmt.Errorf("via: %w", err)
			}
		}
		cl.Via = &nv
	}
	if od := cl.OriginalDst; od != nil {
		nod := *od
		if nod.Allowed, err = mapAll(od.Allowed); err != nil {
			return fmt.Errorf("original_dst: %w", err)
		}
		cl.OriginalDst = &nod
	}
	if t := cl.TLS; t != nil {
		nt := *t
		nt.CAFile, nt.CertFile, nt.KeyFile = certPath(t.CAFile), certPath(t.CertFile), certPath(t.KeyFile)
		if len(t.ServerIdentities) > 0 {
			nt.ServerIdentities = map[string]string{}
			for k, id := range t.ServerIdentities {
				m, err := reach(k)
				if err != nil {
					return fmt.Errorf("tls: %w", err)
				}
				nt.ServerIdentities[m] = id
			}
		}
		if len(t.Certs) > 0 {
			nt.Certs = map[string]config.CertPair{}
			for svc, p := range t.Certs {
				nt.Certs[svc] = config.CertPair{CertFile: certPath(p.CertFile), KeyFile: certPath(p.KeyFile)}
			}
		}
		cl.TLS = &nt
	}
	return nil
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

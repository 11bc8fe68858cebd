package scenarios

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/meshbench/meshbench/proxy/config"
)

// Reference kinds: what a plan's configuration reaches.
const (
	// RefPod is one pod (a service's replica, or the client).
	RefPod = "pod"
	// RefNode is one node's address: where its node proxy listens.
	RefNode = "node"
	// RefService is every backend pod of a service: a cluster whose only
	// endpoint is a service reference takes its endpoints from the
	// platform's discovery of that service.
	RefService = "service"
)

// Port names of references, and the numbers a platform gives them.
const (
	PortNameHTTP     = "http"     // the app's HTTP/1.1 + h2c port
	PortNameGRPC     = "grpc"     // the app's gRPC port
	PortNameOutbound = "outbound" // a proxy's outbound listener
	PortNameInbound  = "inbound"  // a proxy's inbound listener
	PortNameAdmin    = "admin"    // a proxy's admin listener
)

// PortNumber returns the port number of a port name.
func PortNumber(name string) (int, error) {
	switch name {
	case PortNameHTTP:
		return PortHTTP, nil
	case PortNameGRPC:
		return PortGRPC, nil
	case PortNameOutbound:
		return PortOutbound, nil
	case PortNameInbound:
		return PortInbound, nil
	case PortNameAdmin:
		return PortAdmin, nil
	}
	return 0, fmt.Errorf("unknown port name %q", name)
}

// refPrefix starts every reference: no host name or address starts with
// it.
const refPrefix = "@"

// Ref is a symbolic address of a plan: a pod, a node or a service, and a
// port name. Written in a configuration's address fields as
// "@<kind>.<name>:<port>", for example "@pod.echo-1:inbound",
// "@node.node-0:outbound" or "@service.echo:http". Every platform resolves
// references when it renders the configuration of one process (see
// RenderConfig); the plan holds no address of any platform.
type Ref struct {
	Kind string // RefPod, RefNode or RefService
	Name string // the pod's, node's or service's name
	Port string // a port name (PortNameHTTP, ...)
}

// String writes the reference as it appears in a configuration.
func (r Ref) String() string { return refPrefix + r.Kind + "." + r.Name + ":" + r.Port }

// PodRef is the reference to port of pod.
func PodRef(pod, port string) string { return Ref{RefPod, pod, port}.String() }

// NodeRef is the reference to port of node's address.
func NodeRef(node, port string) string { return Ref{RefNode, node, port}.String() }

// ServiceRef is the reference to port of every backend pod of service.
func ServiceRef(service, port string) string { return Ref{RefService, service, port}.String() }

// At is the reference's port on host, as host:port.
func (r Ref) At(host string) (string, error) {
	port, err := PortNumber(r.Port)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// ServiceOf returns the service a cluster follows: its one endpoint is a
// service reference.
func ServiceOf(cl *config.Cluster) (Ref, bool) {
	if len(cl.Endpoints) != 1 {
		return Ref{}, false
	}
	r, err := ParseRef(cl.Endpoints[0])
	return r, err == nil && r.Kind == RefService
}

// IsRef reports whether s is written as a reference (valid or not).
func IsRef(s string) bool { return strings.HasPrefix(s, refPrefix) }

// ParseRef parses a reference written by String.
func ParseRef(s string) (Ref, error) {
	rest, ok := strings.CutPrefix(s, refPrefix)
	if !ok {
		return Ref{}, fmt.Errorf("%q is not a reference (@<kind>.<name>:<port>)", s)
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return Ref{}, fmt.Errorf("reference %q: %w", s, err)
	}
	kind, name, ok := strings.Cut(host, ".")
	if !ok || name == "" {
		return Ref{}, fmt.Errorf("reference %q: want @<kind>.<name>:<port>", s)
	}
	switch kind {
	case RefPod, RefNode, RefService:
	default:
		return Ref{}, fmt.Errorf("reference %q: kind %q is not pod, node or service", s, kind)
	}
	if _, err := PortNumber(port); err != nil {
		return Ref{}, fmt.Errorf("reference %q: %w", s, err)
	}
	return Ref{Kind: kind, Name: name, Port: port}, nil
}

package local

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/scenarios"
)

// DefaultNetworkBase is the address block of a Loopback left empty.
const DefaultNetworkBase = "127.77"

// Loopback is the local platform's address space: node n (0-based) owns
// the block Base.(n+1).0/24; its node proxy listens on Base.(n+1).1 and
// its pods get Base.(n+1).10, .11, ... in the plan's order. On Linux all
// of 127.0.0.0/8 is loopback, so every process of a plan gets its own
// addresses without any set-up, and two runs on different bases do not
// meet.
type Loopback struct {
	// Base is the first two octets, e.g. "127.77"; empty means
	// DefaultNetworkBase.
	Base string
}

// base returns the checked base.
func (l Loopback) base() (string, error) {
	b := cmp.Or(l.Base, DefaultNetworkBase)
	parts := strings.Split(b, ".")
	ok := len(parts) == 2
	for _, p := range parts {
		if v, err := strconv.Atoi(p); err != nil || v < 0 || v > 255 || strconv.Itoa(v) != p {
			ok = false
		}
	}
	if !ok {
		return "", fmt.Errorf("network base %q: want two octets such as %s", l.Base, DefaultNetworkBase)
	}
	return b, nil
}

// Check reports whether the base is two octets.
func (l Loopback) Check() error {
	_, err := l.base()
	return err
}

// Addresses places a plan's nodes and pods in the address space.
func (l Loopback) Addresses(plan *scenarios.Plan) (*Addresses, error) {
	base, err := l.base()
	if err != nil {
		return nil, err
	}
	a := &Addresses{plan: plan, nodes: map[string]string{}, pods: map[string]string{}}
	index := map[string]int{}
	for i, n := range plan.Nodes {
		if i+1 > scenarios.MaxNodes {
			return nil, fmt.Errorf("addressing plan %s: more than %d nodes", plan.Cell.ID, scenarios.MaxNodes)
		}
		a.nodes[n.Name] = fmt.Sprintf("%s.%d.1", base, i+1)
		index[n.Name] = i
	}
	next := map[string]int{}
	for _, p := range plan.Pods {
		n, ok := index[p.Node]
		if !ok {
			return nil, fmt.Errorf("addressing plan %s: pod %s is on node %q, which the plan does not have", plan.Cell.ID, p.Name, p.Node)
		}
		if next[p.Node] >= scenarios.MaxPodsPerNode {
			return nil, fmt.Errorf("addressing plan %s: more than %d pods on %s", plan.Cell.ID, scenarios.MaxPodsPerNode, p.Node)
		}
		a.pods[p.Name] = fmt.Sprintf("%s.%d.%d", base, n+1, 10+next[p.Node])
		next[p.Node]++
	}
	return a, nil
}

// Resolver is the scenarios.PlanResolver of the address space: every
// local process resolves a plan's references alike.
func (l Loopback) Resolver(plan *scenarios.Plan) (scenarios.Resolver, error) {
	return l.Addresses(plan)
}

// Addresses are the loopback addresses of one plan's nodes and pods. They
// resolve references the same way for every process of the plan (a
// scenarios.Resolver): on loopback, a process reaches its own pod at the
// address it listens on.
type Addresses struct {
	plan  *scenarios.Plan
	nodes map[string]string // by node name
	pods  map[string]string // by pod name
}

var _ scenarios.Resolver = (*Addresses)(nil)

// Node returns a node's address, or "" for a node the plan does not have.
func (a *Addresses) Node(name string) string { return a.nodes[name] }

// Pod returns a pod's address, or "" for a pod the plan does not have.
func (a *Addresses) Pod(name string) string { return a.pods[name] }

// Listen resolves a listener's address: the same as Reach.
func (a *Addresses) Listen(r scenarios.Ref) (string, error) { return a.Reach(r) }

// Reach resolves a pod's or a node's port.
func (a *Addresses) Reach(r scenarios.Ref) (string, error) {
	var host string
	switch r.Kind {
	case scenarios.RefPod:
		host = a.pods[r.Name]
	case scenarios.RefNode:
		host = a.nodes[r.Name]
	default:
		return "", fmt.Errorf("a %s is not one address", r.Kind)
	}
	if host == "" {
		return "", fmt.Errorf("the plan has no %s %q", r.Kind, r.Name)
	}
	return r.At(host)
}

// Service gives cl the port of every backend pod of the service, in the
// plan's order.
func (a *Addresses) Service(cl *config.Cluster, r scenarios.Ref) error {
	for _, p := range a.plan.Pods {
		if p.Service != r.Name || p.Backend == nil {
			continue
		}
		ep, err := a.Reach(scenarios.Ref{Kind: scenarios.RefPod, Name: p.Name, Port: r.Port})
		if err != nil {
			return err
		}
		cl.Endpoints = append(cl.Endpoints, ep)
	}
	if len(cl.Endpoints) == 0 {
		return errors.New("the service has no backend pod")
	}
	return nil
}

// CertPath keeps the plan's path: the local proxies run in the directory
// the certificates are issued into.
func (a *Addresses) CertPath(p string) (string, error) { return p, nil }

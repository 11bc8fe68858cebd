package peers

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
)

// server is one endpoint of a cluster as a peer dials it: directly, or
// through the gateway the cluster's via names for it (a node proxy's hop
// to the node of a pod on another node).
type server struct {
	Endpoint string // the pod's host:port the balancer picks
	Dial     string // where the connection goes: Endpoint or its gateway
	Gateway  bool   // Dial is a gateway: the request names Endpoint in the via header
	Weight   int    // 0: the peer's default
}

// servers lists a static cluster's endpoints in order.
func servers(cl *config.Cluster) []server {
	out := make([]server, 0, len(cl.Endpoints))
	for _, e := range cl.Endpoints {
		s := server{Endpoint: e, Dial: e, Weight: cl.Weights[e]}
		if cl.Via != nil {
			if gw, ok := cl.Via.Gateways[e]; ok {
				s.Dial, s.Gateway = gw, true
			}
		}
		out = append(out, s)
	}
	return out
}

// check refuses, for every peer alike, what no adapter translates: endpoint
// sources other than static lists, listeners and upstreams with TLS when
// the peer cannot check SPIFFE identities, authorization by identity, and
// matches on the caller's identity.
func check(peer string, c *config.Config, spiffe bool) error {
	for _, l := range c.Listeners {
		if l.TLS != nil && !spiffe {
			if !l.TLS.MTLS() {
				return notApplicable(peer, "the adapter renders cleartext listeners only: TLS is translated for the mesh's mTLS, whose SPIFFE identities the peer cannot verify")
			}
			return notApplicable(peer, "cannot verify a client's SPIFFE identity (URI SAN) on a TLS listener, which the mesh's mTLS needs")
		}
		if l.Authz != nil && !spiffe {
			return notApplicable(peer, "no authorization by SPIFFE identity")
		}
		if l.Limits.MaxConnectionsPerSource > 0 {
			return notApplicable(peer, "the adapter does not translate max_connections_per_source")
		}
		for _, r := range l.Routes {
			if r.Match.SourceIdentity != "" && !spiffe {
				return notApplicable(peer, "no routing on the caller's SPIFFE identity")
			}
		}
	}
	for _, cl := range c.Clusters {
		switch {
		case cl.Kubernetes != nil:
			return notApplicable(peer, "the adapter takes static endpoints only (cluster %s follows a Kubernetes service)", cl.Name)
		case cl.EndpointsFile != nil:
			return notApplicable(peer, "the adapter takes static endpoints only (cluster %s reads an endpoints file)", cl.Name)
		case cl.TLS != nil && !spiffe:
			return notApplicable(peer, "cannot verify an upstream's SPIFFE identity (URI SAN), which the mesh's mTLS needs")
		}
	}
	return nil
}

// upstreamProtocol resolves a cluster's protocol for the cell's traffic:
// "same" is HTTP/1.1 for HTTP/1.1 traffic and h2c for HTTP/2 traffic; a
// peer that cannot choose per request refuses a cell that sends both.
func upstreamProtocol(peer string, cl *config.Cluster, o Options) (string, error) {
	switch cl.Protocol {
	case config.UpstreamHTTP1, config.UpstreamH2C:
		return cl.Protocol, nil
	case config.UpstreamSame, "":
		h1 := o.sends(TrafficHTTP1)
		h2 := o.sends(TrafficH2C) || o.sends(TrafficGRPC)
		switch {
		case h1 && h2:
			return "", notApplicable(peer, "cannot forward each request in the protocol it arrived with (cluster %s, protocol same, gets HTTP/1.1 and HTTP/2)", cl.Name)
		case h2:
			return config.UpstreamH2C, nil
		default:
			return config.UpstreamHTTP1, nil
		}
	default:
		return "", notApplicable(peer, "the adapter does not translate upstream protocol %q (cluster %s)", cl.Protocol, cl.Name)
	}
}

// clusterByName returns the cluster of a route.
func clusterByName(c *config.Config, name string) (*config.Cluster, error) {
	for i := range c.Clusters {
		if c.Clusters[i].Name == name {
			return &c.Clusters[i], nil
		}
	}
	return nil, fmt.Errorf("no cluster %q", name)
}

// hashHeader is the header a hash balancer keys on.
func hashHeader(peer string, cl *config.Cluster) (string, error) {
	if cl.Balancer.HashHeader == "" {
		return "", notApplicable(peer, "cluster %s: a hash balancer needs hash_header", cl.Name)
	}
	return cl.Balancer.HashHeader, nil
}

// isLeastRequestFull reports whether least_request scans every endpoint
// (least connections) rather than picking the better of two at random.
func isLeastRequestFull(b config.Balancer) bool {
	return b.Policy == balancer.PolicyLeastRequest && (b.FullScan || b.ChoiceCount > 2)
}

// choices is least_request's number of random choices (default 2).
func choices(b config.Balancer) int {
	if b.ChoiceCount == 0 {
		return 2
	}
	return b.ChoiceCount
}

// anchored returns a header regex anchored at both ends: the reference
// proxy matches a header regex against the whole value.
func anchored(re string) string { return "^(?:" + re + ")$" }

// routePath returns the path prefix a route matches; exact paths and gRPC
// service or method matches become the prefix they imply.
func routePath(m config.Match) (prefix, exact string) {
	switch {
	case m.Path != "":
		return "", m.Path
	case m.GRPCService != "" && m.GRPCMethod != "":
		return "", "/" + m.GRPCService + "/" + m.GRPCMethod
	case m.GRPCService != "":
		return "/" + m.GRPCService + "/", ""
	default:
		return m.PathPrefix, ""
	}
}

// hostPortSplit splits host:port, for peers that take them apart.
func hostPortSplit(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port of %q: %w", hp, err)
	}
	return h, n, nil
}

// millis writes a duration in whole milliseconds ("1500ms"), the unit
// nginx, HAProxy and Caddy all accept.
func millis(d config.Duration) string {
	ms := time.Duration(d).Milliseconds()
	if ms <= 0 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10) + "ms"
}

// ident makes a name safe as an identifier in every peer's configuration.
func ident(s string) string {
	return identRE.ReplaceAllString(s, "_")
}

var identRE = regexp.MustCompile(`[^A-Za-z0-9_]`)

// failureCount is the number of failures passive health counts before it
// takes an endpoint out: the gateway-failure count, else the 5xx count.
func failureCount(peer string, od *config.OutlierDetection) (int, error) {
	n := od.ConsecutiveGatewayFailure
	if n <= 0 {
		n = od.Consecutive5xx
	}
	if n <= 0 {
		return 0, notApplicable(peer, "passive health without a failure count")
	}
	return n, nil
}

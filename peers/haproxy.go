package peers

import (
	"context"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/retry"
)

// HAProxy is HAProxy (Debian's haproxy package, built with the Prometheus
// exporter).
type HAProxy struct{}

// Name is "haproxy".
func (HAProxy) Name() string { return NameHAProxy }

// Binary is "haproxy".
func (HAProxy) Binary() string { return "haproxy" }

// Package is Debian's haproxy.
func (HAProxy) Package() string { return "haproxy" }

// Version is the first line of haproxy -v.
func (HAProxy) Version(ctx context.Context, path string) (string, error) {
	v, err := versionOf(ctx, path, "HAProxy version", "-v")
	if f := strings.Fields(v); len(f) >= 3 {
		v = f[2]
	}
	return v, err
}

// Capabilities of HAProxy.
func (HAProxy) Capabilities() Capabilities {
	return Capabilities{
		Balancers: map[string]string{
			balancer.PolicyRoundRobin:         "balance roundrobin",
			balancer.PolicyWeightedRoundRobin: "balance roundrobin with server weight",
			balancer.PolicyRandom:             "balance random(1)",
			balancer.PolicyLeastRequest:       "balance leastconn (full scan); balance random(N) (N choices, least loaded)",
			balancer.PolicyRingHash:           "balance hdr(<header>) with hash-type consistent",
		},
		Missing: map[string]string{
			balancer.PolicyPeakEWMA: "no latency-aware balancer",
			balancer.PolicyMaglev:   "no Maglev hash",
			CapMTLS:                 "cannot verify a SPIFFE URI SAN (verifyhost checks DNS names and the CN)",
			CapOutlier:              "passive health (observe layer7) needs active health checks",
			CapRetryUnavailable:     "cannot retry on a gRPC status",
			CapRetryBudget:          "retries has no budget on concurrent retries",
			CapHopByHop:             "removes only the close and keep-alive tokens of Connection: forwards the headers Connection names, Keep-Alive, Proxy-Connection and Upgrade, in both directions",
		},
		Metrics: "Prometheus exporter at /metrics on the admin address",
	}
}

// Render writes haproxy.cfg.
func (h HAProxy) Render(c *config.Config, o Options) (*Instance, error) {
	if err := check(NameHAProxy, c, false); err != nil {
		return nil, err
	}
	g := &haproxyConf{c: c, o: o, backends: map[string]bool{}}
	var fronts strings.Builder
	for i := range c.Listeners {
		if err := g.frontend(&fronts, &c.Listeners[i]); err != nil {
			return nil, err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# HAProxy configuration of %s, rendered by meshbench from the neutral proxy config.\n", o.Name)
	b.WriteString("global\n")
	fmt.Fprintf(&b, "  nbthread %d\n", o.workers())
	// The drain's bound, as the reference proxy's drain_timeout.
	fmt.Fprintf(&b, "  hard-stop-after %s\n", millis(c.DrainTimeout))
	fmt.Fprintf(&b, "  pidfile %s\n", filepath.Join(o.Dir, "haproxy.pid"))
	b.WriteString("  # No log target: no access or event logs, like the other proxies.\n")
	b.WriteString("\ndefaults\n  mode http\n  option http-keep-alive\n  # Share idle upstream connections between clients, like a mesh proxy's pool.\n  http-reuse always\n")
	b.WriteString("  timeout connect 1s\n  timeout client 120s\n  timeout server 15s\n  timeout http-request 10s\n  timeout http-keep-alive 120s\n")
	if c.Admin != "" {
		fmt.Fprintf(&b, "\nfrontend admin\n  bind %s\n  http-request return status 200 content-type text/plain string ready if { path /ready }\n  http-request use-service prometheus-exporter if { path /metrics }\n  http-request return status 404\n", c.Admin)
	}
	b.WriteString(fronts.String())
	b.WriteString(g.back.String())
	b.WriteString("\nbackend no_route\n  http-request return status 404\n")
	return &Instance{
		Files:   []File{{Path: "haproxy.cfg", Data: []byte(b.String())}},
		Args:    []string{"-f", filepath.Join(o.Dir, "haproxy.cfg"), "-db"},
		Ready:   "http://" + c.Admin + "/ready",
		Metrics: "http://" + c.Admin + "/metrics",
		Drain:   syscall.SIGUSR1,
		Notes:   g.notes,
	}, nil
}

type haproxyConf struct {
	c        *config.Config
	o        Options
	back     strings.Builder
	backends map[string]bool
	notes    []string
}

// frontend writes one listener: HAProxy serves HTTP/1.1 and h2c prior
// knowledge on one cleartext bind (it recognises the HTTP/2 preface).
func (g *haproxyConf) frontend(w *strings.Builder, l *config.Listener) error {
	bind := l.Address
	switch l.Protocol {
	case config.ProtoAuto:
	case config.ProtoH2C:
		bind += " proto h2"
	case config.ProtoHTTP1:
		if g.o.sends(TrafficGRPC) || g.o.sends(TrafficH2C) {
			return notApplicable(NameHAProxy, "listener %s is HTTP/1.1 only but the cell sends HTTP/2", l.Name)
		}
	default:
		return notApplicable(NameHAProxy, "the adapter does not translate listener protocol %q", l.Protocol)
	}
	fmt.Fprintf(w, "\nfrontend %s\n  bind %s\n", ident(l.Name), bind)
	fmt.Fprintf(w, "  timeout client %s\n  timeout http-request %s\n  timeout http-keep-alive %s\n", millis(l.Limits.IdleTimeout), millis(l.Limits.ReadHeaderTimeout), millis(l.Limits.IdleTimeout))
	fmt.Fprintf(w, "  maxconn %d\n", l.Limits.MaxConnections)
	w.WriteString("  option forwardfor\n  http-request set-header X-Request-Id %[uuid] unless { req.hdr(x-request-id) -m found }\n")
	for _, r := range l.Routes {
		if r.RequestHeaders.Add != nil || r.RequestHeaders.Remove != nil {
			return notApplicable(NameHAProxy, "the adapter does not translate request_headers (route %s)", r.Name)
		}
		cl, err := clusterByName(g.c, r.Cluster)
		if err != nil {
			return fmt.Errorf("haproxy: route %s: %w", r.Name, err)
		}
		be, err := g.backend(cl, &r)
		if err != nil {
			return err
		}
		conds, err := haproxyConds(r.Match)
		if err != nil {
			return err
		}
		if len(conds) == 0 {
			fmt.Fprintf(w, "  use_backend %s\n", be)
		} else {
			fmt.Fprintf(w, "  use_backend %s if %s\n", be, strings.Join(conds, " "))
		}
	}
	w.WriteString("  default_backend no_route\n")
	return nil
}

// haproxyConds turns a route's match into ACL conditions (all must hold).
func haproxyConds(m config.Match) ([]string, error) {
	var out []string
	switch a := strings.ToLower(m.Authority); {
	case a == "":
	case strings.Contains(a, ":"):
		out = append(out, "{ req.hdr(host),lower -m str "+a+" }")
	case strings.HasPrefix(a, "*."):
		out = append(out, "{ req.hdr(host),lower,field(1,:) -m end "+a[1:]+" }")
	default:
		out = append(out, "{ req.hdr(host),lower,field(1,:) -m str "+a+" }")
	}
	prefix, exact := routePath(m)
	switch {
	case exact != "":
		out = append(out, "{ path -m str "+exact+" }")
	case prefix != "" && prefix != "/":
		out = append(out, "{ path -m beg "+prefix+" }")
	}
	for _, h := range m.Headers {
		n := strings.ToLower(h.Name)
		switch {
		case h.Exact != "":
			out = append(out, "{ req.hdr("+n+") -m str "+h.Exact+" }")
		case h.Regex != "":
			if strings.ContainsAny(h.Regex, " }") {
				return nil, notApplicable(NameHAProxy, "the adapter does not translate a header regex with a space or brace (%q)", h.Regex)
			}
			if _, err := regexp.Compile(h.Regex); err != nil {
				return nil, fmt.Errorf("haproxy: header regex %q: %w", h.Regex, err)
			}
			out = append(out, "{ req.hdr("+n+") -m reg "+anchored(h.Regex)+" }")
		case h.Present != nil && *h.Present:
			out = append(out, "{ req.hdr("+n+") -m found }")
		case h.Present != nil:
			out = append(out, "!{ req.hdr("+n+") -m found }")
		}
	}
	return out, nil
}

// backend writes the backend of a cluster for one route (the route's
// timeout and retries are the backend's in HAProxy).
func (g *haproxyConf) backend(cl *config.Cluster, r *config.Route) (string, error) {
	name := "be_" + ident(cl.Name) + "_" + ident(r.Name)
	if g.backends[name] {
		return name, nil
	}
	g.backends[name] = true
	proto, err := upstreamProtocol(NameHAProxy, cl, g.o)
	if err != nil {
		return "", err
	}
	if cl.OutlierDetection != nil {
		return "", notApplicable(NameHAProxy, "passive health (observe layer7) needs active health checks, which the reference proxy does not run")
	}
	w := &g.back
	fmt.Fprintf(w, "\nbackend %s\n", name)
	fmt.Fprintf(w, "  timeout connect %s\n  timeout server %s\n", millis(cl.ConnectTimeout), millis(r.Timeout))
	if err := haproxyRetry(w, r.Retry); err != nil {
		return "", err
	}
	srvOpts := " maxconn " + strconv.Itoa(max(1, cl.Pool.MaxConnsPerEndpoint))
	if cl.Pool.MaxConnsPerEndpoint < 0 {
		srvOpts = ""
	}
	srvOpts += " pool-max-conn " + strconv.Itoa(cl.Pool.MaxIdlePerEndpoint) + " pool-purge-delay " + millis(cl.Pool.IdleTimeout)
	if proto == config.UpstreamH2C {
		srvOpts += " proto h2"
	}
	if od := cl.OriginalDst; od != nil {
		hdr := strings.ToLower(od.Header)
		allowed := slices.Clone(od.Allowed)
		fmt.Fprintf(w, "  http-request deny deny_status 403 unless { req.hdr(%s) -m str %s }\n", hdr, strings.Join(allowed, " "))
		fmt.Fprintf(w, "  http-request set-dst req.hdr(%s),field(1,:)\n  http-request set-dst-port req.hdr(%s),field(2,:)\n", hdr, hdr)
		fmt.Fprintf(w, "  server dst 0.0.0.0:0%s\n", srvOpts)
		return name, nil
	}
	if len(cl.Endpoints) == 0 {
		return "", notApplicable(NameHAProxy, "cluster %s has no static endpoints", cl.Name)
	}
	switch b := cl.Balancer; b.Policy {
	case balancer.PolicyRoundRobin, balancer.PolicyWeightedRoundRobin:
		w.WriteString("  balance roundrobin\n")
	case balancer.PolicyRandom:
		w.WriteString("  balance random(1)\n")
	case balancer.PolicyLeastRequest:
		if isLeastRequestFull(b) {
			w.WriteString("  balance leastconn\n")
		} else {
			fmt.Fprintf(w, "  balance random(%d)\n", choices(b))
		}
	case balancer.PolicyRingHash:
		hh, err := hashHeader(NameHAProxy, cl)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(w, "  balance hdr(%s)\n  hash-type consistent\n", strings.ToLower(hh))
	case balancer.PolicyPeakEWMA:
		return "", notApplicable(NameHAProxy, "no latency-aware balancer")
	default:
		return "", notApplicable(NameHAProxy, "no %s balancer", b.Policy)
	}
	ss := servers(cl)
	if cl.Via != nil {
		// HAProxy names the server it picked in a header: each server is
		// named by the pod it stands for, and dials the pod or its node.
		fmt.Fprintf(w, "  http-send-name-header %s\n", cl.Via.Header)
	}
	ids := serverIDs(ss)
	for i, s := range ss {
		sname := "s" + strconv.Itoa(i)
		if cl.Via != nil {
			sname = s.Endpoint
		}
		weight := ""
		if s.Weight > 0 {
			weight = " weight " + strconv.Itoa(s.Weight)
		}
		fmt.Fprintf(w, "  server %s %s id %d%s%s\n", sname, s.Dial, ids[i], srvOpts, weight)
	}
	return name, nil
}

// serverIDs gives each server an id derived from its endpoint's address,
// unique within the backend. HAProxy's consistent hash places a server's
// points on the ring by its id, which defaults to its position: removing
// one endpoint would then renumber, and move the keys of, every endpoint
// after it.
func serverIDs(ss []server) []int {
	ids := make([]int, len(ss))
	used := map[int]bool{}
	for i, s := range ss {
		h := fnv.New32a()
		h.Write([]byte(s.Endpoint))
		id := 1 + int(h.Sum32()%(1<<30))
		for used[id] {
			id = 1 + id%(1<<30)
		}
		used[id], ids[i] = true, id
	}
	return ids
}

// haproxyRetry maps a retry policy onto retries and retry-on; without one,
// HAProxy does not retry (retries 0): its default of 3 connection retries
// would retry where the reference proxy does not.
func haproxyRetry(w *strings.Builder, rt *config.Retry) error {
	if rt == nil || rt.Attempts <= 1 {
		w.WriteString("  retries 0\n")
		return nil
	}
	var on []string
	for _, c := range rt.On {
		switch c {
		case retry.OnConnectFailure:
			on = append(on, "conn-failure")
		case retry.OnReset:
			on = append(on, "empty-response", "response-timeout")
		case retry.On503:
			on = append(on, "503")
		default:
			return notApplicable(NameHAProxy, "cannot retry on %q", c)
		}
	}
	if rt.PerTryTimeout != 0 {
		return notApplicable(NameHAProxy, "the adapter does not translate per_try_timeout")
	}
	fmt.Fprintf(w, "  retries %d\n  retry-on %s\n  option redispatch 1\n", rt.Attempts-1, strings.Join(on, " "))
	return nil
}

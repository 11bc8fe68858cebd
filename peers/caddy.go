package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
)

// Caddy is Caddy 2 (Debian's caddy package), configured through its
// native JSON.
type Caddy struct{}

// Name is "caddy".
func (Caddy) Name() string { return NameCaddy }

// Binary is "caddy".
func (Caddy) Binary() string { return "caddy" }

// Package is Debian's caddy.
func (Caddy) Package() string { return "caddy" }

// Version is caddy version's first word.
func (Caddy) Version(ctx context.Context, path string) (string, error) {
	v, err := versionOf(ctx, path, ".", "version")
	if f := strings.Fields(v); len(f) > 0 {
		v = f[0]
	}
	return v, err
}

// Capabilities of Caddy 2.
func (Caddy) Capabilities() Capabilities {
	return Capabilities{
		Balancers: map[string]string{
			balancer.PolicyRoundRobin:         "round_robin",
			balancer.PolicyWeightedRoundRobin: "weighted_round_robin",
			balancer.PolicyRandom:             "random",
			balancer.PolicyLeastRequest:       "least_conn (full scan); random_choose N (N choices)",
			balancer.PolicyRingHash:           "header (rendezvous hashing of a header)",
		},
		Missing: map[string]string{
			balancer.PolicyPeakEWMA: "no latency-aware balancer",
			balancer.PolicyMaglev:   "no Maglev hash",
			CapMTLS:                 "cannot verify a SPIFFE URI SAN, client or upstream",
			CapRetryBudget:          "no retry budget",
			CapRetry:                "retries connection failures for a duration, not a count, and not on a status",
		},
		Metrics: "Prometheus at /metrics on the admin address (Caddy's metrics handler)",
	}
}

type obj = map[string]any

// Render writes caddy.json.
func (cd Caddy) Render(c *config.Config, o Options) (*Instance, error) {
	if err := check(NameCaddy, c, false); err != nil {
		return nil, err
	}
	g := &caddyConf{c: c, o: o, servers: obj{}}
	for i := range c.Listeners {
		if err := g.listener(&c.Listeners[i]); err != nil {
			return nil, err
		}
	}
	if c.Admin != "" {
		g.servers["admin"] = obj{
			"listen": []string{c.Admin},
			"routes": []obj{
				{"match": []obj{{"path": []string{"/ready"}}}, "handle": []obj{{"handler": "static_response", "status_code": 200, "body": "ready\n"}}, "terminal": true},
				{"match": []obj{{"path": []string{"/metrics"}}}, "handle": []obj{{"handler": "metrics"}}, "terminal": true},
				{"handle": []obj{{"handler": "static_response", "status_code": 404}}},
			},
			"automatic_https": obj{"disable": true},
		}
	}
	doc := obj{
		// No admin API, and no autosave of the config in the user's home.
		"admin":   obj{"disabled": true, "config": obj{"persist": false}},
		"logging": obj{"logs": obj{"default": obj{"level": "ERROR", "writer": obj{"output": "stderr"}}}},
		"storage": obj{"module": "file_system", "root": filepath.Join(o.Dir, "data")},
		// The drain's bound, as the reference proxy's drain_timeout.
		"apps": obj{"http": obj{"servers": g.servers, "grace_period": time.Duration(c.DrainTimeout).String()}},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("caddy: encoding the config: %w", err)
	}
	return &Instance{
		Files:   []File{{Path: "caddy.json", Data: append(b, '\n')}},
		Args:    []string{"run", "--config", filepath.Join(o.Dir, "caddy.json")},
		Ready:   "http://" + c.Admin + "/ready",
		Metrics: "http://" + c.Admin + "/metrics",
		Drain:   syscall.SIGTERM,
		Notes:   g.notes,
	}, nil
}

type caddyConf struct {
	c       *config.Config
	o       Options
	servers obj
	hops    int
	notes   []string
}

// listener writes one server: HTTP/1.1 and h2c on one port.
func (g *caddyConf) listener(l *config.Listener) error {
	protocols := []string{"h1", "h2c"}
	switch l.Protocol {
	case config.ProtoAuto:
	case config.ProtoHTTP1:
		protocols = []string{"h1"}
	case config.ProtoH2C:
		protocols = []string{"h2c"}
	default:
		return notApplicable(NameCaddy, "the adapter does not translate listener protocol %q", l.Protocol)
	}
	routes := []obj{{
		// An X-Request-Id when the request has none.
		"match":  []obj{{"not": []obj{{"header": obj{"X-Request-Id": []string{"*"}}}}}},
		"handle": []obj{{"handler": "headers", "request": obj{"set": obj{"X-Request-Id": []string{"{http.request.uuid}"}}}}},
	}}
	for _, r := range l.Routes {
		if r.RequestHeaders.Add != nil || r.RequestHeaders.Remove != nil {
			return notApplicable(NameCaddy, "the adapter does not translate request_headers (route %s)", r.Name)
		}
		if r.Retry != nil && r.Retry.Attempts > 1 {
			return notApplicable(NameCaddy, "retries connection failures for a duration, not a count, and not on a status (route %s)", r.Name)
		}
		cl, err := clusterByName(g.c, r.Cluster)
		if err != nil {
			return fmt.Errorf("caddy: route %s: %w", r.Name, err)
		}
		m, err := caddyMatch(r.Match)
		if err != nil {
			return err
		}
		handle, err := g.proxy(cl, &r)
		if err != nil {
			return err
		}
		route := obj{"handle": handle, "terminal": true}
		if len(m) > 0 {
			route["match"] = []obj{m}
		}
		routes = append(routes, route)
	}
	routes = append(routes, obj{"handle": []obj{{"handler": "static_response", "status_code": 404}}})
	g.servers[ident(l.Name)] = g.server([]string{l.Address}, protocols, routes, l.Limits)
	return nil
}

func (g *caddyConf) server(listen, protocols []string, routes []obj, lim config.Limits) obj {
	return obj{
		"listen":          listen,
		"protocols":       protocols,
		"routes":          routes,
		"automatic_https": obj{"disable": true},
		// Request metrics, as every other proxy keeps them.
		"metrics":             obj{},
		"read_header_timeout": millis(lim.ReadHeaderTimeout),
		"idle_timeout":        millis(lim.IdleTimeout),
		"max_header_bytes":    lim.MaxHeaderBytes,
	}
}

// caddyMatch turns a route's match into one matcher set.
func caddyMatch(m config.Match) (obj, error) {
	out := obj{}
	if a := m.Authority; a != "" {
		out["host"] = []string{a}
	}
	prefix, exact := routePath(m)
	switch {
	case exact != "":
		out["path"] = []string{exact}
	case prefix != "" && prefix != "/":
		out["path"] = []string{prefix + "*"}
	}
	headers, regexps := obj{}, obj{}
	var nots []obj
	for _, h := range m.Headers {
		switch {
		case h.Exact != "":
			headers[h.Name] = []string{h.Exact}
		case h.Regex != "":
			regexps[h.Name] = obj{"pattern": anchored(h.Regex)}
		case h.Present != nil && *h.Present:
			headers[h.Name] = []string{"*"}
		case h.Present != nil:
			nots = append(nots, obj{"header": obj{h.Name: []string{"*"}}})
		}
	}
	if len(headers) > 0 {
		out["header"] = headers
	}
	if len(regexps) > 0 {
		out["header_regexp"] = regexps
	}
	if len(nots) > 0 {
		out["not"] = nots
	}
	return out, nil
}

// proxy returns the handlers of a route: the reverse proxy to its cluster.
func (g *caddyConf) proxy(cl *config.Cluster, r *config.Route) ([]obj, error) {
	proto, err := upstreamProtocol(NameCaddy, cl, g.o)
	if err != nil {
		return nil, err
	}
	rp := g.reverseProxy(cl, proto, r.Timeout)
	if od := cl.OriginalDst; od != nil {
		// Deliver to the destination the request names, if allowed.
		rp["upstreams"] = []obj{{"dial": "{http.request.header." + od.Header + "}"}}
		return []obj{{
			"handler": "subroute",
			"routes": []obj{
				{"match": []obj{{"not": []obj{{"header": obj{od.Header: od.Allowed}}}}},
					"handle": []obj{{"handler": "static_response", "status_code": 403}}, "terminal": true},
				{"handle": []obj{rp}},
			},
		}}, nil
	}
	if len(cl.Endpoints) == 0 {
		return nil, notApplicable(NameCaddy, "cluster %s has no static endpoints", cl.Name)
	}
	lb := obj{}
	var weights []int
	switch b := cl.Balancer; b.Policy {
	case balancer.PolicyRoundRobin:
		lb["policy"] = "round_robin"
	case balancer.PolicyWeightedRoundRobin:
		lb["policy"] = "weighted_round_robin"
		for _, s := range servers(cl) {
			weights = append(weights, max(1, s.Weight))
		}
		lb["weights"] = weights
	case balancer.PolicyRandom:
		lb["policy"] = "random"
	case balancer.PolicyLeastRequest:
		if isLeastRequestFull(b) {
			lb["policy"] = "least_conn"
		} else {
			lb["policy"], lb["choose"] = "random_choose", choices(b)
		}
	case balancer.PolicyRingHash:
		h, err := hashHeader(NameCaddy, cl)
		if err != nil {
			return nil, err
		}
		lb["policy"], lb["field"] = "header", h
	case balancer.PolicyPeakEWMA:
		return nil, notApplicable(NameCaddy, "no latency-aware balancer")
	default:
		return nil, notApplicable(NameCaddy, "no %s balancer", b.Policy)
	}
	rp["load_balancing"] = obj{"selection_policy": lb}
	var ups []obj
	for _, s := range servers(cl) {
		dial := s.Dial
		if s.Gateway {
			dial = g.hop(cl, s, proto, r.Timeout)
		}
		ups = append(ups, obj{"dial": dial})
	}
	rp["upstreams"] = ups
	if od := cl.OutlierDetection; od != nil {
		n, err := failureCount(NameCaddy, od)
		if err != nil {
			return nil, err
		}
		rp["health_checks"] = obj{"passive": obj{"fail_duration": millis(od.BaseEjectionTime), "max_fails": n, "unhealthy_status": []int{502, 503, 504}}}
		g.notes = AddNotes(g.notes, "outlier detection as passive health checks: failures within fail_duration, not consecutive ones, and no growing ejection time")
	}
	return []obj{rp}, nil
}

// reverseProxy is a reverse_proxy handler with the cluster's transport.
func (g *caddyConf) reverseProxy(cl *config.Cluster, proto string, timeout config.Duration) obj {
	versions := []string{"1.1"}
	if proto == config.UpstreamH2C {
		versions = []string{"h2c"}
	}
	return obj{
		"handler": "reverse_proxy",
		"transport": obj{
			"protocol":                "http",
			"versions":                versions,
			"dial_timeout":            millis(cl.ConnectTimeout),
			"response_header_timeout": millis(timeout),
			"keep_alive": obj{
				"enabled":                 true,
				"max_idle_conns_per_host": cl.Pool.MaxIdlePerEndpoint,
				"idle_timeout":            millis(cl.Pool.IdleTimeout),
			},
		},
		// Stream responses as they come, like the reference proxy.
		"flush_interval": -1,
		// Append to X-Forwarded-For (Caddy replaces it for untrusted peers).
		"trusted_proxies": []string{"0.0.0.0/0", "::/0"},
	}
}

// hop adds the server of one remote pod and returns its dial address:
// Caddy cannot dial a gateway for the upstream it picked, so a remote pod
// is a unix socket of Caddy itself, whose server forwards to the pod's
// node with the pod in the via header.
func (g *caddyConf) hop(cl *config.Cluster, s server, proto string, timeout config.Duration) string {
	g.hops++
	sock := filepath.Join(g.o.SocketDir, strconv.Itoa(g.hops)+".sock")
	rp := g.reverseProxy(cl, proto, timeout)
	rp["upstreams"] = []obj{{"dial": s.Dial}}
	rp["headers"] = obj{"request": obj{"set": obj{cl.Via.Header: []string{s.Endpoint}}}}
	g.servers["hop_"+strconv.Itoa(g.hops)] = g.server([]string{"unix/" + sock}, []string{"h1", "h2c"},
		[]obj{{"handle": []obj{rp}}}, config.Limits{ReadHeaderTimeout: config.Duration(10e9), IdleTimeout: cl.Pool.IdleTimeout, MaxHeaderBytes: 64 << 10})
	g.notes = AddNotes(g.notes, "a node proxy reaches a pod on another node through a second pass inside Caddy (a unix socket per remote pod): Caddy cannot dial a gateway for the upstream it picked")
	return "unix/" + sock
}

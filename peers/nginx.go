package peers

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/retry"
)

// Nginx is nginx open source (Debian's nginx package: the gRPC and
// HTTP/2 modules are built in).
type Nginx struct{}

// Name is "nginx".
func (Nginx) Name() string { return NameNginx }

// Binary is "nginx".
func (Nginx) Binary() string { return "nginx" }

// Package is Debian's nginx.
func (Nginx) Package() string { return "nginx" }

// Version is the first line of nginx -v.
func (Nginx) Version(ctx context.Context, path string) (string, error) {
	v, err := versionOf(ctx, path, "nginx version", "-v")
	return strings.TrimPrefix(v, "nginx version: "), err
}

// Capabilities of nginx open source.
func (Nginx) Capabilities() Capabilities {
	return Capabilities{
		Balancers: map[string]string{
			balancer.PolicyRoundRobin:         "round robin (default)",
			balancer.PolicyWeightedRoundRobin: "round robin with server weight=",
			balancer.PolicyRandom:             "random",
			balancer.PolicyLeastRequest:       "least_conn (full scan); random two least_conn (two choices)",
			balancer.PolicyRingHash:           "hash $http_<header> consistent (ketama)",
		},
		Missing: map[string]string{
			balancer.PolicyPeakEWMA: "no latency-aware balancer (least_time is NGINX Plus only)",
			balancer.PolicyMaglev:   "no Maglev hash",
			CapAuto:                 "one cleartext port serves HTTP/1.1 or h2c, not both (nginx 1.22)",
			CapMTLS:                 "cannot verify a SPIFFE URI SAN, client or upstream",
			CapRetryUnavailable:     "cannot retry on a gRPC status (grpc_next_upstream sees HTTP status only)",
			CapH2CUpstreamHTTP:      "forwards HTTP/2 upstream only as gRPC (grpc_pass)",
			CapRetryBudget:          "proxy_next_upstream retries without a budget",
			CapOutlierStatus:        "max_fails counts a 5xx answer against a server only when proxy_next_upstream retries it; without a retry it counts connection failures and timeouts only",
			CapHopByHop:             "removes a fixed set of hop-by-hop headers, not the ones the Connection header names, and forwards Proxy-Connection, in both directions",
		},
		Metrics: "none (stub_status is not Prometheus; served at /nginx_status on the admin address)",
	}
}

// nginxConf builds nginx.conf.
type nginxConf struct {
	c      *config.Config
	o      Options
	b      strings.Builder
	ups    map[string]bool // upstream blocks written
	hops   []nginxHop
	extra  strings.Builder // upstream blocks and maps, before the servers
	notes  []string
	routeN int
}

// nginxHop is the second pass of a request a node proxy sends to another
// node: nginx cannot dial a gateway for the server its balancer picked,
// so a remote pod is a unix socket of nginx itself, whose server forwards
// to the pod's node with the pod in the via header.
type nginxHop struct {
	sock, upstream, header, endpoint string
	grpc                             bool
}

// Render writes nginx.conf.
func (n Nginx) Render(c *config.Config, o Options) (*Instance, error) {
	if err := check(NameNginx, c, false); err != nil {
		return nil, err
	}
	if o.sends(TrafficH2C) {
		return nil, notApplicable(NameNginx, "forwards HTTP/2 upstream only as gRPC (grpc_pass); plain h2c requests would become HTTP/1.1")
	}
	if o.sends(TrafficHTTP1) && o.sends(TrafficGRPC) {
		return nil, notApplicable(NameNginx, "one cleartext port serves HTTP/1.1 or h2c, not both (nginx 1.22)")
	}
	g := &nginxConf{c: c, o: o, ups: map[string]bool{}}
	servers := &strings.Builder{}
	for i := range c.Listeners {
		if err := g.listener(servers, &c.Listeners[i]); err != nil {
			return nil, err
		}
	}
	for _, h := range g.hops {
		g.hop(servers, h)
	}
	if c.Admin != "" {
		fmt.Fprintf(servers, "  server {\n    listen %s;\n    location = /ready { return 200 \"ready\\n\"; }\n    location = /nginx_status { stub_status; }\n    location / { return 404; }\n  }\n", c.Admin)
	}
	b := &g.b
	fmt.Fprintf(b, "# nginx configuration of %s, rendered by meshbench from the neutral proxy config.\n", o.Name)
	b.WriteString("daemon off;\nmaster_process on;\n")
	if o.User != "" {
		// Workers keep the master's user: they connect to its internal
		// unix sockets and write its temporary paths.
		fmt.Fprintf(b, "user %s;\n", o.User)
	}
	fmt.Fprintf(b, "worker_processes %d;\n", o.workers())
	// The drain's bound, as the reference proxy's drain_timeout.
	fmt.Fprintf(b, "worker_shutdown_timeout %s;\n", millis(c.DrainTimeout))
	fmt.Fprintf(b, "pid %s;\nerror_log stderr warn;\n", filepath.Join(o.Dir, "nginx.pid"))
	b.WriteString("events {\n  worker_connections 16384;\n}\n")
	b.WriteString("http {\n  access_log off;\n  server_tokens off;\n")
	// Directly in Dir: nginx creates them, but not their parents.
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(b, "  %s_temp_path %s;\n", t, filepath.Join(o.Dir, t+"_temp"))
	}
	b.WriteString("  # Stream both ways, like the reference proxy: no buffering of bodies.\n")
	b.WriteString("  proxy_buffering off;\n  proxy_request_buffering off;\n  grpc_buffer_size 64k;\n  client_max_body_size 0;\n")
	b.WriteString("  keepalive_requests 1000000;\n")
	b.WriteString("  map $http_x_request_id $mb_request_id {\n    \"\" $request_id;\n    default $http_x_request_id;\n  }\n")
	b.WriteString(g.extra.String())
	b.WriteString(servers.String())
	b.WriteString("}\n")
	return &Instance{
		Files:        []File{{Path: "nginx.conf", Data: []byte(b.String())}},
		Args:         []string{"-p", o.Dir, "-c", filepath.Join(o.Dir, "nginx.conf"), "-e", "stderr"},
		Ready:        "http://" + c.Admin + "/ready",
		Drain:        syscall.SIGQUIT,
		MultiProcess: true,
		Notes:        g.notes,
	}, nil
}

// listener writes one server block and the maps that pick its route.
func (g *nginxConf) listener(w *strings.Builder, l *config.Listener) error {
	switch l.Protocol {
	case config.ProtoAuto, config.ProtoHTTP1, config.ProtoH2C:
	default:
		return notApplicable(NameNginx, "the adapter does not translate listener protocol %q", l.Protocol)
	}
	grpc := g.o.sends(TrafficGRPC)
	if l.Protocol == config.ProtoHTTP1 && grpc {
		return notApplicable(NameNginx, "listener %s is HTTP/1.1 only but the cell sends gRPC", l.Name)
	}
	id := ident(l.Name)
	// The route is chosen by a map over one string that joins everything
	// routes match on; map tries its regexes in order, like the reference
	// proxy its routes.
	var headers []string
	for _, r := range l.Routes {
		for _, h := range r.Match.Headers {
			if n := strings.ToLower(h.Name); !slices.Contains(headers, n) {
				headers = append(headers, n)
			}
		}
		if r.RequestHeaders.Add != nil || r.RequestHeaders.Remove != nil {
			return notApplicable(NameNginx, "the adapter does not translate request_headers (route %s)", r.Name)
		}
	}
	key := "$host|$uri"
	for _, h := range headers {
		key += "|$http_" + strings.ReplaceAll(h, "-", "_")
	}
	var routeMap, upMap, kindMap strings.Builder
	fmt.Fprintf(&routeMap, "  map \"%s\" $mb_route_%s {\n", key, id)
	fmt.Fprintf(&upMap, "  map $mb_route_%s $mb_up_%s {\n", id, id)
	fmt.Fprintf(&kindMap, "  map $mb_route_%s $mb_kind_%s {\n", id, id)
	var timeout config.Duration
	var connect config.Duration
	var rt *config.Retry
	for i, r := range l.Routes {
		cl, err := clusterByName(g.c, r.Cluster)
		if err != nil {
			return fmt.Errorf("nginx: route %s: %w", r.Name, err)
		}
		proto, err := upstreamProtocol(NameNginx, cl, g.o)
		if err != nil {
			return err
		}
		re, err := nginxRouteRegex(r.Match, headers)
		if err != nil {
			return err
		}
		name := "r" + strconv.Itoa(i)
		fmt.Fprintf(&routeMap, "    \"~%s\" %s;\n", re, name)
		up, err := g.upstream(cl, proto)
		if err != nil {
			return err
		}
		fmt.Fprintf(&upMap, "    %s %s;\n", name, up)
		kind := "http"
		if proto == config.UpstreamH2C {
			kind = "grpc"
		}
		fmt.Fprintf(&kindMap, "    %s %s;\n", name, kind)
		if i == 0 {
			timeout, connect, rt = r.Timeout, cl.ConnectTimeout, r.Retry
		} else if r.Timeout != timeout || cl.ConnectTimeout != connect || !sameRetry(r.Retry, rt) {
			return notApplicable(NameNginx, "the adapter needs one timeout, connect timeout and retry policy per listener (nginx sets them per location; listener %s differs by route)", l.Name)
		}
	}
	routeMap.WriteString("    default \"\";\n  }\n")
	upMap.WriteString("    default \"\";\n  }\n")
	kindMap.WriteString("    default \"\";\n  }\n")
	g.extra.WriteString(routeMap.String() + upMap.String() + kindMap.String())

	listen := l.Address
	if grpc {
		listen += " http2"
	}
	fmt.Fprintf(w, "  server {\n    listen %s;\n", listen)
	fmt.Fprintf(w, "    client_header_timeout %s;\n    keepalive_timeout %s;\n", millis(l.Limits.ReadHeaderTimeout), millis(l.Limits.IdleTimeout))
	fmt.Fprintf(w, "    large_client_header_buffers 4 %dk;\n", max(1, l.Limits.MaxHeaderBytes>>10))
	if grpc {
		fmt.Fprintf(w, "    http2_max_concurrent_streams %d;\n", l.Limits.MaxConcurrentStreams)
	}
	w.WriteString("    location / {\n")
	if timeout == 0 {
		timeout = config.Duration(config.DefaultRouteTimeout)
	}
	if connect == 0 {
		connect = config.Duration(config.DefaultConnectTimeout)
	}
	for _, m := range []string{"proxy", "grpc"} {
		fmt.Fprintf(w, "      %s_connect_timeout %s;\n      %s_read_timeout %s;\n      %s_send_timeout %s;\n", m, millis(connect), m, millis(timeout), m, millis(timeout))
		next, tries, err := nginxRetry(rt)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "      %s_next_upstream %s;\n", m, next)
		if tries > 0 {
			fmt.Fprintf(w, "      %s_next_upstream_tries %d;\n", m, tries)
		}
	}
	w.WriteString("      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n")
	w.WriteString("      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      proxy_set_header X-Request-Id $mb_request_id;\n")
	w.WriteString("      grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      grpc_set_header X-Request-Id $mb_request_id;\n")
	fmt.Fprintf(w, "      if ($mb_kind_%s = \"\") { return 404; }\n", id)
	fmt.Fprintf(w, "      if ($mb_up_%s = \"\") { return 403; }\n", id)
	fmt.Fprintf(w, "      if ($mb_kind_%s = grpc) { grpc_pass grpc://$mb_up_%s; }\n", id, id)
	fmt.Fprintf(w, "      if ($mb_kind_%s = http) { proxy_pass http://$mb_up_%s; }\n", id, id)
	w.WriteString("    }\n  }\n")
	return nil
}

// sameRetry reports whether two routes retry alike.
func sameRetry(a, b *config.Retry) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Attempts == b.Attempts && slices.Equal(a.On, b.On) && a.PerTryTimeout == b.PerTryTimeout
}

// nginxRetry maps a retry policy onto proxy_next_upstream. nginx retries on
// another server at once, without backoff and without a budget. With no
// policy, nothing is retried: nginx's default (error timeout) would retry
// quietly where the reference proxy does not.
func nginxRetry(rt *config.Retry) (string, int, error) {
	if rt == nil || rt.Attempts <= 1 {
		return "off", 0, nil
	}
	var on []string
	for _, c := range rt.On {
		switch c {
		case retry.OnConnectFailure, retry.OnReset:
			if !slices.Contains(on, "error") {
				on = append(on, "error", "timeout")
			}
		case retry.On503:
			on = append(on, "http_503")
		default:
			return "", 0, notApplicable(NameNginx, "cannot retry on %q (nginx retries on connection errors, timeouts and HTTP statuses)", c)
		}
	}
	if rt.PerTryTimeout != 0 {
		return "", 0, notApplicable(NameNginx, "the adapter does not translate per_try_timeout")
	}
	return strings.Join(append(on, "non_idempotent"), " "), rt.Attempts, nil
}

// seconds is d in whole seconds, rounded up and at least 1: the unit of
// nginx's fail_timeout, which takes no milliseconds.
func seconds(d config.Duration) int64 {
	s := (time.Duration(d) + time.Second - 1) / time.Second
	return max(1, int64(s))
}

// upstream writes the upstream block of a cluster (once) and returns its
// name, or, for an original_dst cluster, the variable that names the
// allowed destination's upstream.
func (g *nginxConf) upstream(cl *config.Cluster, proto string) (string, error) {
	if od := cl.OriginalDst; od != nil {
		v := "$mb_dst_" + ident(cl.Name)
		if g.ups[v] {
			return v, nil
		}
		g.ups[v] = true
		fmt.Fprintf(&g.extra, "  map $http_%s %s {\n", strings.ReplaceAll(strings.ToLower(od.Header), "-", "_"), v)
		for _, a := range od.Allowed {
			up := "dst_" + ident(cl.Name) + "_" + ident(a)
			fmt.Fprintf(&g.extra, "    \"%s\" %s;\n", a, up)
		}
		g.extra.WriteString("    default \"\";\n  }\n")
		for _, a := range od.Allowed {
			g.plainUpstream("dst_"+ident(cl.Name)+"_"+ident(a), a, cl)
		}
		return v, nil
	}
	name := "up_" + ident(cl.Name)
	if g.ups[name] {
		return name, nil
	}
	g.ups[name] = true
	if len(cl.Endpoints) == 0 {
		return "", notApplicable(NameNginx, "cluster %s has no static endpoints", cl.Name)
	}
	var lines []string
	switch b := cl.Balancer; b.Policy {
	case balancer.PolicyRoundRobin, balancer.PolicyWeightedRoundRobin:
	case balancer.PolicyRandom:
		lines = append(lines, "random;")
	case balancer.PolicyLeastRequest:
		switch {
		case isLeastRequestFull(b):
			lines = append(lines, "least_conn;")
		case choices(b) == 2:
			lines = append(lines, "random two least_conn;")
		default:
			return "", notApplicable(NameNginx, "least_request with %d choices: nginx has two choices or a full scan", choices(b))
		}
	case balancer.PolicyRingHash:
		h, err := hashHeader(NameNginx, cl)
		if err != nil {
			return "", err
		}
		lines = append(lines, "hash $http_"+strings.ReplaceAll(strings.ToLower(h), "-", "_")+" consistent;")
	case balancer.PolicyPeakEWMA:
		return "", notApplicable(NameNginx, "no latency-aware balancer (least_time is NGINX Plus only)")
	default:
		return "", notApplicable(NameNginx, "no %s balancer", b.Policy)
	}
	fails := "max_fails=0"
	if od := cl.OutlierDetection; od != nil {
		n, err := failureCount(NameNginx, od)
		if err != nil {
			return "", err
		}
		fails = fmt.Sprintf("max_fails=%d fail_timeout=%ds", n, seconds(od.BaseEjectionTime))
		g.notes = AddNotes(g.notes, "outlier detection as max_fails/fail_timeout: failures within fail_timeout, not consecutive ones, and no growing ejection time")
	}
	for i, s := range servers(cl) {
		dial := s.Dial
		if s.Gateway {
			sock := filepath.Join(g.o.SocketDir, ident(cl.Name)+"-"+strconv.Itoa(i)+".sock")
			gw := "gw_" + ident(s.Dial)
			if !g.ups[gw] {
				g.ups[gw] = true
				g.plainUpstream(gw, s.Dial, cl)
			}
			g.hops = append(g.hops, nginxHop{sock: sock, upstream: gw, header: cl.Via.Header, endpoint: s.Endpoint, grpc: proto == config.UpstreamH2C})
			dial = "unix:" + sock
		}
		line := "server " + dial + " " + fails
		if s.Weight > 0 {
			line += " weight=" + strconv.Itoa(s.Weight)
		}
		lines = append(lines, line+";")
	}
	// keepalive is per worker and per upstream block, not per server.
	lines = append(lines, fmt.Sprintf("keepalive %d;", cl.Pool.MaxIdlePerEndpoint*len(cl.Endpoints)),
		"keepalive_timeout "+millis(cl.Pool.IdleTimeout)+";", "keepalive_requests 1000000;")
	fmt.Fprintf(&g.extra, "  upstream %s {\n    %s\n  }\n", name, strings.Join(lines, "\n    "))
	return name, nil
}

// plainUpstream writes an upstream of one server with the cluster's pool.
func (g *nginxConf) plainUpstream(name, addr string, cl *config.Cluster) {
	fmt.Fprintf(&g.extra, "  upstream %s {\n    server %s max_fails=0;\n    keepalive %d;\n    keepalive_timeout %s;\n    keepalive_requests 1000000;\n  }\n",
		name, addr, cl.Pool.MaxIdlePerEndpoint, millis(cl.Pool.IdleTimeout))
}

// hop writes the server of one remote pod: forward to its node's gateway
// and name the pod in the via header; the first pass already set
// X-Forwarded-For and X-Request-Id.
func (g *nginxConf) hop(w *strings.Builder, h nginxHop) {
	listen := "unix:" + h.sock
	pass, set := "proxy_pass http://", "proxy_set_header"
	if h.grpc {
		listen += " http2"
		pass, set = "grpc_pass grpc://", "grpc_set_header"
	}
	fmt.Fprintf(w, "  server {\n    listen %s;\n    location / {\n", listen)
	if !h.grpc {
		w.WriteString("      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n      proxy_next_upstream off;\n")
	} else {
		w.WriteString("      grpc_next_upstream off;\n")
	}
	fmt.Fprintf(w, "      %s %s \"%s\";\n      %s%s;\n    }\n  }\n", set, h.header, h.endpoint, pass, h.upstream)
	g.notes = AddNotes(g.notes, "a node proxy reaches a pod on another node through a second pass inside nginx (a unix socket per remote pod): nginx cannot dial a gateway for the server its balancer picked")
}

// nginxRouteRegex turns a route's match into a regex over the map key
// "$host|$uri|$http_<h>...": each part matches one field.
func nginxRouteRegex(m config.Match, headers []string) (string, error) {
	any := "[^|]*"
	var parts []string
	switch a := strings.ToLower(m.Authority); {
	case a == "":
		parts = append(parts, any)
	case strings.Contains(a, ":"):
		return "", notApplicable(NameNginx, "the adapter does not translate an authority with a port (%q)", m.Authority)
	case strings.HasPrefix(a, "*."):
		parts = append(parts, "[^|]+"+regexp.QuoteMeta(a[1:]))
	default:
		parts = append(parts, regexp.QuoteMeta(a))
	}
	prefix, exact := routePath(m)
	switch {
	case exact != "":
		parts = append(parts, regexp.QuoteMeta(exact))
	case prefix != "":
		parts = append(parts, regexp.QuoteMeta(prefix)+any)
	default:
		parts = append(parts, any)
	}
	for _, h := range headers {
		p := any
		for _, hm := range m.Headers {
			if strings.ToLower(hm.Name) != h {
				continue
			}
			switch {
			case hm.Exact != "":
				p = regexp.QuoteMeta(hm.Exact)
			case hm.Regex != "":
				if strings.Contains(hm.Regex, "\"") {
					return "", notApplicable(NameNginx, "the adapter does not translate a header regex with a double quote (%q)", hm.Regex)
				}
				// A value that itself holds "|" could let this part
				// reach into the next one; header values rarely do.
				p = "(?:" + hm.Regex + ")"
			case hm.Present != nil && *hm.Present:
				p = "[^|]+"
			case hm.Present != nil:
				p = ""
			}
		}
		parts = append(parts, p)
	}
	return "^" + strings.Join(parts, "\\|") + "$", nil
}

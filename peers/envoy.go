package peers

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/retry"
)

// Envoy is Envoy, configured by a bootstrap with static resources. No
// package provides it on these machines: it runs where an envoy binary is
// on PATH; its bootstrap is always generated and, in tests, validated
// with go-control-plane.
type Envoy struct{}

// Name is "envoy".
func (Envoy) Name() string { return NameEnvoy }

// Binary is "envoy".
func (Envoy) Binary() string { return "envoy" }

// Package is empty: no Debian package on these machines.
func (Envoy) Package() string { return "" }

// Version is the version envoy --version prints.
func (Envoy) Version(ctx context.Context, path string) (string, error) {
	v, err := versionOf(ctx, path, "version", "--version")
	if i := strings.Index(v, "version: "); i >= 0 {
		v = v[i+len("version: "):]
	}
	return v, err
}

// Capabilities of Envoy.
func (Envoy) Capabilities() Capabilities {
	return Capabilities{
		Balancers: map[string]string{
			balancer.PolicyRoundRobin:         "ROUND_ROBIN",
			balancer.PolicyWeightedRoundRobin: "ROUND_ROBIN with load_balancing_weight",
			balancer.PolicyRandom:             "RANDOM",
			balancer.PolicyLeastRequest:       "LEAST_REQUEST (choice_count)",
			balancer.PolicyRingHash:           "RING_HASH on a header hash policy",
			balancer.PolicyMaglev:             "MAGLEV on a header hash policy",
		},
		Missing: map[string]string{
			balancer.PolicyPeakEWMA: "no latency-aware policy mapped (Envoy's core policies do not weigh latency)",
		},
		Metrics: "Prometheus at /stats/prometheus on the admin address",
	}
}

// Render writes envoy.json, a bootstrap with static listeners and
// clusters.
func (e Envoy) Render(c *config.Config, o Options) (*Instance, error) {
	if err := check(NameEnvoy, c, true); err != nil {
		return nil, err
	}
	g := &envoyConf{c: c, o: o}
	var listeners []obj
	for i := range c.Listeners {
		l, err := g.listener(&c.Listeners[i])
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
	}
	var clusters []obj
	for i := range c.Clusters {
		cl, err := g.cluster(&c.Clusters[i])
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, cl)
	}
	admin, err := socketAddress(c.Admin)
	if err != nil {
		return nil, fmt.Errorf("envoy: admin: %w", err)
	}
	doc := obj{
		"node":             obj{"id": o.Name, "cluster": "meshbench"},
		"admin":            obj{"address": admin},
		"static_resources": obj{"listeners": listeners, "clusters": clusters},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("envoy: encoding the bootstrap: %w", err)
	}
	return &Instance{
		Files: []File{{Path: "envoy.json", Data: append(b, '\n')}},
		Args: []string{"-c", filepath.Join(o.Dir, "envoy.json"), "--concurrency", fmt.Sprint(o.workers()),
			"--log-level", "warn", "--base-id-path", filepath.Join(o.Dir, "base-id"), "--use-dynamic-base-id",
			"--drain-time-s", fmt.Sprint(max(1, int(c.DrainTimeout.D().Seconds())))},
		Ready:   "http://" + c.Admin + "/ready",
		Metrics: "http://" + c.Admin + "/stats/prometheus",
		Drain:   syscall.SIGTERM,
	}, nil
}

type envoyConf struct {
	c *config.Config
	o Options
}

func socketAddress(hp string) (obj, error) {
	h, p, err := hostPortSplit(hp)
	if err != nil {
		return nil, err
	}
	return obj{"socket_address": obj{"address": h, "port_value": p}}, nil
}

func dur(d config.Duration) string {
	return fmt.Sprintf("%.3fs", d.D().Seconds())
}

const (
	typeHCM      = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	typeRouter   = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	typeRBAC     = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	typeDownTLS  = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	typeUpTLS    = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	typeHTTPOpts = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

func (g *envoyConf) listener(l *config.Listener) (obj, error) {
	addr, err := socketAddress(l.Address)
	if err != nil {
		return nil, fmt.Errorf("envoy: listener %s: %w", l.Name, err)
	}
	codec := "AUTO"
	switch l.Protocol {
	case config.ProtoAuto, config.ProtoH2:
	case config.ProtoHTTP1:
		codec = "HTTP1"
	case config.ProtoH2C:
		codec = "HTTP2"
	}
	var routes []obj
	for _, r := range l.Routes {
		rs, err := g.route(&r)
		if err != nil {
			return nil, err
		}
		routes = append(routes, rs...)
	}
	filters := []obj{}
	if l.Authz != nil {
		filters = append(filters, rbac(l.Authz))
	}
	filters = append(filters, obj{"name": "envoy.filters.http.router", "typed_config": obj{"@type": typeRouter}})
	hcm := obj{
		"@type":                        typeHCM,
		"stat_prefix":                  ident(l.Name),
		"codec_type":                   codec,
		"use_remote_address":           true,
		"generate_request_id":          true,
		"preserve_external_request_id": true,
		"request_headers_timeout":      dur(l.Limits.ReadHeaderTimeout),
		"common_http_protocol_options": obj{"idle_timeout": dur(l.Limits.IdleTimeout)},
		"max_request_headers_kb":       max(1, l.Limits.MaxHeaderBytes>>10),
		"http2_protocol_options":       obj{"max_concurrent_streams": l.Limits.MaxConcurrentStreams},
		"route_config": obj{"name": ident(l.Name), "virtual_hosts": []obj{{
			"name": ident(l.Name), "domains": []string{"*"}, "routes": routes,
		}}},
		"http_filters": filters,
	}
	chain := obj{"filters": []obj{{"name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}}}
	if t := l.TLS; t != nil {
		ctx := obj{
			"tls_certificates": []obj{{"certificate_chain": obj{"filename": t.CertFile}, "private_key": obj{"filename": t.KeyFile}}},
			"alpn_protocols":   []string{"h2", "http/1.1"},
		}
		tc := obj{"@type": typeDownTLS, "common_tls_context": ctx}
		if t.ClientCAFile != "" {
			ctx["validation_context"] = obj{"trusted_ca": obj{"filename": t.ClientCAFile}}
			tc["require_client_certificate"] = t.RequireClientCert == nil || *t.RequireClientCert
		}
		chain["transport_socket"] = obj{"name": "envoy.transport_sockets.tls", "typed_config": tc}
	}
	return obj{"name": ident(l.Name), "address": addr, "filter_chains": []obj{chain},
		"per_connection_buffer_limit_bytes": 1 << 20}, nil
}

// rbac allows the callers an authorization block names.
func rbac(a *config.Authz) obj {
	policies := obj{}
	for i, r := range a.Allow {
		var principals []obj
		for _, id := range r.Identities {
			switch {
			case id == "*":
				principals = append(principals, obj{"authenticated": obj{}})
			case strings.HasSuffix(id, "*"):
				principals = append(principals, obj{"authenticated": obj{"principal_name": obj{"prefix": strings.TrimSuffix(id, "*")}}})
			default:
				principals = append(principals, obj{"authenticated": obj{"principal_name": obj{"exact": id}}})
			}
		}
		if len(principals) == 0 {
			principals = []obj{{"any": true}}
		}
		var perms []obj
		if r.PathPrefix != "" {
			perms = append(perms, obj{"url_path": obj{"path": obj{"prefix": r.PathPrefix}}})
		}
		if len(r.Methods) > 0 {
			var ms []obj
			for _, m := range r.Methods {
				ms = append(ms, obj{"header": obj{"name": ":method", "string_match": obj{"exact": m}}})
			}
			perms = append(perms, obj{"or_rules": obj{"rules": ms}})
		}
		perm := obj{"any": true}
		if len(perms) > 0 {
			perm = obj{"and_rules": obj{"rules": perms}}
		}
		policies[fmt.Sprintf("allow-%d", i)] = obj{"permissions": []obj{perm}, "principals": principals}
	}
	return obj{"name": "envoy.filters.http.rbac", "typed_config": obj{"@type": typeRBAC,
		"rules": obj{"action": "ALLOW", "policies": policies}}}
}

// route returns the Envoy routes of one route: for an original_dst
// cluster, a second route answers 403 when the destination is not allowed.
func (g *envoyConf) route(r *config.Route) ([]obj, error) {
	if r.Match.SourceIdentity != "" {
		return nil, notApplicable(NameEnvoy, "the adapter does not translate source_identity matches")
	}
	cl, err := clusterByName(g.c, r.Cluster)
	if err != nil {
		return nil, fmt.Errorf("envoy: route %s: %w", r.Name, err)
	}
	match := obj{}
	prefix, exact := routePath(r.Match)
	switch {
	case exact != "":
		match["path"] = exact
	case prefix != "":
		match["prefix"] = prefix
	default:
		match["prefix"] = "/"
	}
	var headers []obj
	if a := strings.ToLower(r.Match.Authority); a != "" {
		re := regexp.QuoteMeta(a) + "(:[0-9]+)?"
		if strings.HasPrefix(a, "*.") {
			re = ".+" + regexp.QuoteMeta(a[1:]) + "(:[0-9]+)?"
		} else if strings.Contains(a, ":") {
			re = regexp.QuoteMeta(a)
		}
		headers = append(headers, obj{"name": ":authority", "string_match": obj{"safe_regex": obj{"regex": re}, "ignore_case": true}})
	}
	for _, h := range r.Match.Headers {
		hm := obj{"name": strings.ToLower(h.Name)}
		switch {
		case h.Exact != "":
			hm["string_match"] = obj{"exact": h.Exact}
		case h.Regex != "":
			hm["string_match"] = obj{"safe_regex": obj{"regex": h.Regex}}
		case h.Present != nil:
			hm["present_match"] = true
			hm["invert_match"] = !*h.Present
		}
		headers = append(headers, hm)
	}
	if len(headers) > 0 {
		match["headers"] = headers
	}
	action := obj{"cluster": ident(cl.Name), "timeout": dur(r.Timeout)}
	if rt := r.Retry; rt != nil && rt.Attempts > 1 {
		p, err := envoyRetry(rt)
		if err != nil {
			return nil, err
		}
		action["retry_policy"] = p
	}
	if pol := cl.Balancer.Policy; pol == balancer.PolicyRingHash || pol == balancer.PolicyMaglev {
		h, err := hashHeader(NameEnvoy, cl)
		if err != nil {
			return nil, err
		}
		action["hash_policy"] = []obj{{"header": obj{"header_name": h}}}
	}
	route := obj{"name": ident(r.Name), "match": match, "route": action}
	if cl.Via != nil {
		route["request_headers_to_add"] = []obj{{
			"header":        obj{"key": cl.Via.Header, "value": `%UPSTREAM_METADATA(["meshbench","dst"])%`},
			"append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
		}}
	}
	od := cl.OriginalDst
	if od == nil {
		return []obj{route}, nil
	}
	alts := make([]string, len(od.Allowed))
	for i, a := range od.Allowed {
		alts[i] = regexp.QuoteMeta(a)
	}
	allowed := append(append([]obj{}, headers...), obj{"name": strings.ToLower(od.Header),
		"string_match": obj{"safe_regex": obj{"regex": strings.Join(alts, "|")}}})
	m := obj{}
	for k, v := range match {
		m[k] = v
	}
	m["headers"] = allowed
	route["match"] = m
	deny := obj{"name": ident(r.Name) + "_denied", "match": match, "direct_response": obj{"status": 403}}
	return []obj{route, deny}, nil
}

func envoyRetry(rt *config.Retry) (obj, error) {
	var on []string
	for _, c := range rt.On {
		switch c {
		case retry.OnConnectFailure:
			on = append(on, "connect-failure")
		case retry.OnReset:
			on = append(on, "reset")
		case retry.On503:
			on = append(on, "retriable-status-codes")
		case retry.OnUnavailable:
			on = append(on, "unavailable")
		}
	}
	p := obj{"retry_on": strings.Join(on, ","), "num_retries": rt.Attempts - 1,
		"retry_back_off": obj{"base_interval": dur(rt.Backoff.Base), "max_interval": dur(rt.Backoff.Max)}}
	for _, c := range rt.On {
		if c == retry.On503 {
			p["retriable_status_codes"] = []int{503}
		}
	}
	if rt.PerTryTimeout != 0 {
		p["per_try_timeout"] = dur(rt.PerTryTimeout)
	}
	return p, nil
}

func (g *envoyConf) cluster(cl *config.Cluster) (obj, error) {
	out := obj{"name": ident(cl.Name), "connect_timeout": dur(cl.ConnectTimeout)}
	opts := obj{"@type": typeHTTPOpts, "common_http_protocol_options": obj{"idle_timeout": dur(cl.Pool.IdleTimeout)}}
	switch cl.Protocol {
	case config.UpstreamH2C, config.UpstreamH2:
		opts["explicit_http_config"] = obj{"http2_protocol_options": obj{}}
	case config.UpstreamHTTP1:
		opts["explicit_http_config"] = obj{"http_protocol_options": obj{}}
	default:
		opts["use_downstream_protocol_config"] = obj{"http_protocol_options": obj{}, "http2_protocol_options": obj{}}
	}
	out["typed_extension_protocol_options"] = obj{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts}
	maxConns := cl.Pool.MaxConnsPerEndpoint * max(1, len(cl.Endpoints))
	if cl.Pool.MaxConnsPerEndpoint < 0 {
		maxConns = 1 << 30
	}
	// The reference proxy's retry budget, which replaces the retry
	// circuit breaker.
	budget := obj{"budget_percent": obj{"value": cl.RetryBudget.Ratio * 100}, "min_retry_concurrency": cl.RetryBudget.MinConcurrency}
	out["circuit_breakers"] = obj{"thresholds": []obj{{"max_connections": maxConns, "max_pending_requests": 1 << 30, "max_requests": 1 << 30, "retry_budget": budget}}}
	if t := cl.TLS; t != nil {
		if len(t.ServerIdentities) > 0 || len(t.Certs) > 0 || t.GatewaysOnly {
			return nil, notApplicable(NameEnvoy, "the adapter does not translate per-address identities, per-source certificates or gateways_only (cluster %s)", cl.Name)
		}
		ctx := obj{"validation_context": obj{"trusted_ca": obj{"filename": t.CAFile}}}
		if t.ServerIdentity != "" {
			ctx["validation_context"].(obj)["match_typed_subject_alt_names"] = []obj{{"san_type": "URI", "matcher": obj{"exact": t.ServerIdentity}}}
		}
		if t.CertFile != "" {
			ctx["tls_certificates"] = []obj{{"certificate_chain": obj{"filename": t.CertFile}, "private_key": obj{"filename": t.KeyFile}}}
		}
		if cl.Protocol == config.UpstreamH2 {
			ctx["alpn_protocols"] = []string{"h2"}
		}
		out["transport_socket"] = obj{"name": "envoy.transport_sockets.tls", "typed_config": obj{"@type": typeUpTLS, "common_tls_context": ctx}}
	}
	if od := cl.OriginalDst; od != nil {
		out["type"] = "ORIGINAL_DST"
		out["lb_policy"] = "CLUSTER_PROVIDED"
		out["original_dst_lb_config"] = obj{"use_http_header": true, "http_header_name": od.Header}
		return out, nil
	}
	if len(cl.Endpoints) == 0 {
		return nil, notApplicable(NameEnvoy, "cluster %s has no static endpoints", cl.Name)
	}
	out["type"] = "STATIC"
	switch b := cl.Balancer; b.Policy {
	case balancer.PolicyRoundRobin, balancer.PolicyWeightedRoundRobin:
		out["lb_policy"] = "ROUND_ROBIN"
	case balancer.PolicyRandom:
		out["lb_policy"] = "RANDOM"
	case balancer.PolicyLeastRequest:
		out["lb_policy"] = "LEAST_REQUEST"
		out["least_request_lb_config"] = obj{"choice_count": choices(b)}
	case balancer.PolicyRingHash:
		out["lb_policy"] = "RING_HASH"
		if b.MinRingSize > 0 {
			out["ring_hash_lb_config"] = obj{"minimum_ring_size": b.MinRingSize}
		}
	case balancer.PolicyMaglev:
		out["lb_policy"] = "MAGLEV"
		if b.TableSize > 0 {
			out["maglev_lb_config"] = obj{"table_size": b.TableSize}
		}
	case balancer.PolicyPeakEWMA:
		return nil, notApplicable(NameEnvoy, "no latency-aware policy mapped (Envoy's core policies do not weigh latency)")
	default:
		return nil, notApplicable(NameEnvoy, "no %s balancer", b.Policy)
	}
	var eps []obj
	for _, s := range servers(cl) {
		a, err := socketAddress(s.Dial)
		if err != nil {
			return nil, fmt.Errorf("envoy: cluster %s: %w", cl.Name, err)
		}
		ep := obj{"endpoint": obj{"address": a}}
		if s.Weight > 0 {
			ep["load_balancing_weight"] = s.Weight
		}
		if s.Gateway {
			ep["metadata"] = obj{"filter_metadata": obj{"meshbench": obj{"dst": s.Endpoint}}}
		}
		eps = append(eps, ep)
	}
	out["load_assignment"] = obj{"cluster_name": ident(cl.Name), "endpoints": []obj{{"lb_endpoints": eps}}}
	if od := cl.OutlierDetection; od != nil {
		o := obj{"base_ejection_time": dur(od.BaseEjectionTime), "max_ejection_time": dur(od.MaxEjectionTime),
			"max_ejection_percent": od.MaxEjectionPercent}
		if od.Consecutive5xx > 0 {
			o["consecutive_5xx"] = od.Consecutive5xx
		} else {
			o["enforcing_consecutive_5xx"] = 0
		}
		if od.ConsecutiveGatewayFailure > 0 {
			o["consecutive_gateway_failure"] = od.ConsecutiveGatewayFailure
			o["enforcing_consecutive_gateway_failure"] = 100
		}
		out["outlier_detection"] = o
	}
	return out, nil
}

package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/config"
)

const good = `admin: 127.0.0.1:9901
listeners:
- name: outbound
  address: 127.0.0.1:4140
  direction: outbound
  protocol: auto
  routes:
  - match: {authority: echo}
    cluster: echo
    timeout: 2s
clusters:
- name: echo
  protocol: same
  balancer: {policy: round_robin}
  endpoints: [127.0.0.1:8080, 127.0.0.1:8081]
`

func TestParseGoodAndDefaults(t *testing.T) {
	c, err := config.Parse("proxy.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Listeners[0].Routes[0].Timeout.D(); got != 2*time.Second {
		t.Errorf("route timeout = %v, want 2s", got)
	}
	if got := c.Listeners[0].Routes[0].Name; got != "outbound/0" {
		t.Errorf("default route name = %q", got)
	}
	if got := c.DrainTimeout.D(); got != config.DefaultDrainTimeout {
		t.Errorf("drain timeout default = %v", got)
	}
	if got := c.Listeners[0].Limits; got.MaxConnections != config.DefaultMaxConnections || got.MaxConcurrentStreams != 1000 || got.MaxHeaderBytes != 64<<10 || got.ReadHeaderTimeout.D() != 10*time.Second || got.IdleTimeout.D() != 120*time.Second {
		t.Errorf("limits defaults = %+v", got)
	}
	if got := c.Clusters[0].ConnectTimeout.D(); got != config.DefaultConnectTimeout {
		t.Errorf("connect timeout default = %v", got)
	}
	if got := c.Clusters[0].RetryBudget; got.Ratio != 0.2 || got.MinConcurrency != 3 {
		t.Errorf("retry budget defaults = %+v", got)
	}
	d, err := config.Parse("proxy.yaml", []byte(strings.NewReplacer(
		"policy: round_robin", "policy: ''",
		"timeout: 2s", "timeout: 2s\n    retry: {}",
		"endpoints: [", "outlier_detection: {}\n  endpoints: [").Replace(good)))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Clusters[0].Balancer.Policy; got != "peak_ewma" {
		t.Errorf("default policy %q, want peak_ewma", got)
	}
	if r := d.Listeners[0].Routes[0].Retry; r.Attempts != 2 || strings.Join(r.On, ",") != "connect-failure,reset,unavailable" || r.BufferLimit != 64<<10 || r.Backoff.Base.D() != 25*time.Millisecond || r.Backoff.Max.D() != 250*time.Millisecond {
		t.Errorf("retry defaults = %+v", r)
	}
	if od := d.Clusters[0].OutlierDetection; od.Consecutive5xx != 5 || od.ConsecutiveGatewayFailure != 5 || od.BaseEjectionTime.D() != 30*time.Second || od.MaxEjectionTime.D() != 300*time.Second || od.MaxEjectionPercent != 10 {
		t.Errorf("outlier detection defaults = %+v", od)
	}
	js, err := c.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"timeout": "2s"`) {
		t.Errorf("JSON does not write durations as strings:\n%s", js)
	}
}

// originalDst is good with its cluster delivering to the pod a request
// names; via is good with its cluster reaching one pod through a gateway.
var (
	originalDst = strings.Replace(strings.Replace(good, "  balancer: {policy: round_robin}\n", "", 1),
		"  endpoints: [127.0.0.1:8080, 127.0.0.1:8081]\n", "  original_dst: {allowed: [127.0.0.1:8080, 127.0.0.1:8081]}\n", 1)
	via = strings.Replace(good, "  endpoints: [", "  via: {gateways: {127.0.0.1:8080: 127.0.0.2:4143}}\n  endpoints: [", 1)
)

func TestViaAndOriginalDst(t *testing.T) {
	c, err := config.Parse("proxy.yaml", []byte(originalDst))
	if err != nil {
		t.Fatal(err)
	}
	od := c.Clusters[0].OriginalDst
	if od == nil || od.Header != config.DefaultDstHeader || len(od.Allowed) != 2 || c.Clusters[0].Balancer.Policy != "peak_ewma" {
		t.Errorf("original_dst: %+v, balancer %+v", od, c.Clusters[0].Balancer)
	}
	c, err = config.Parse("proxy.yaml", []byte(via))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Clusters[0].Via; v == nil || v.Header != config.DefaultDstHeader || v.Gateways["127.0.0.1:8080"] != "127.0.0.2:4143" {
		t.Errorf("via: %+v", v)
	}
	c, err = config.Parse("proxy.yaml", []byte(strings.Replace(via, "via: {", "via: {header: x-dst, ", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if h := c.Clusters[0].Via.Header; h != "x-dst" {
		t.Errorf("via header %q", h)
	}
}

// TestErrors holds one case per class of error; each message must name the
// file, the line and the field path, and say what is wrong.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"syntax", "listeners: [\n", []string{"proxy.yaml:1: YAML syntax: did not find expected node content"}},
		{"unknown field", strings.Replace(good, "direction: outbound", "directon: outbound", 1),
			[]string{"proxy.yaml:5: listeners[0].directon: unknown field (known fields: address, authz, direction,"}},
		{"wrong type", strings.Replace(good, "routes:", "routes: 3\n  x:", 1),
			[]string{"listeners[0].routes: expected a list"}},
		{"bad duration", strings.Replace(good, "timeout: 2s", "timeout: 2x", 1),
			[]string{`proxy.yaml:10: listeners[0].routes[0].timeout: "2x": not a duration`}},
		{"bad integer", strings.Replace(good, "endpoints:", "pool: {max_idle_per_endpoint: lots}\n  endpoints:", 1),
			[]string{`clusters[0].pool.max_idle_per_endpoint: "lots": not an integer`}},
		{"endpoint missing port", strings.Replace(good, "127.0.0.1:8081", "127.0.0.1", 1),
			[]string{`proxy.yaml:15: clusters[0].endpoints[1]: "127.0.0.1": missing port`}},
		{"endpoint bad ip", strings.Replace(good, "127.0.0.1:8081", "10.0.0:80", 1),
			[]string{`clusters[0].endpoints[1]: "10.0.0:80": invalid IP address "10.0.0"`}},
		{"endpoint bad port", strings.Replace(good, "127.0.0.1:8081", "127.0.0.1:99999", 1),
			[]string{`clusters[0].endpoints[1]: "127.0.0.1:99999": invalid port "99999"`}},
		{"duplicate endpoint", strings.Replace(good, "127.0.0.1:8081", "127.0.0.1:8080", 1),
			[]string{`clusters[0].endpoints[1]: "127.0.0.1:8080": endpoint listed twice`}},
		{"no endpoints", strings.Replace(good, "endpoints: [127.0.0.1:8080, 127.0.0.1:8081]", "endpoints: []", 1),
			[]string{"clusters[0].endpoints: at least one endpoint is required"}},
		{"unknown cluster", strings.Replace(good, "cluster: echo", "cluster: echoo", 1),
			[]string{`proxy.yaml:9: listeners[0].routes[0].cluster: "echoo": no cluster has this name`}},
		{"bad direction", strings.Replace(good, "direction: outbound", "direction: sideways", 1),
			[]string{`listeners[0].direction: "sideways": must be inbound or outbound`}},
		{"bad protocol", strings.Replace(good, "protocol: auto", "protocol: spdy", 1),
			[]string{`listeners[0].protocol: "spdy": must be one of auto, http1, h2c, h2`}},
		{"h2 without tls", strings.Replace(good, "protocol: auto", "protocol: h2", 1),
			[]string{"listeners[0].protocol: h2 needs tls"}},
		{"missing tls files", strings.Replace(good, "protocol: auto", "protocol: h2\n  tls: {cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}", 1),
			[]string{"listeners[0].tls: loading certificate and key: open /nonexistent/c.pem"}},
		{"bad upstream protocol", strings.Replace(good, "protocol: same", "protocol: h3", 1),
			[]string{`clusters[0].protocol: "h3": must be one of http1, h2c, h2, same`}},
		{"unknown balancer", strings.Replace(good, "policy: round_robin", "policy: fastest", 1),
			[]string{`clusters[0].balancer.policy: "fastest": unknown policy`}},
		{"balancer parameter of another policy", strings.Replace(good, "policy: round_robin", "policy: peak_ewma, choice_count: 3", 1),
			[]string{"clusters[0].balancer: choice_count and full_scan apply to least_request only"}},
		{"choice count too small", strings.Replace(good, "policy: round_robin", "policy: least_request, choice_count: 1", 1),
			[]string{"clusters[0].balancer.choice_count: 1: must be at least 2"}},
		{"maglev table not prime", strings.Replace(good, "policy: round_robin", "policy: maglev, table_size: 1000", 1),
			[]string{"clusters[0].balancer.table_size: maglev table size 1000: must be a prime"}},
		{"duplicate cluster", good + "- name: echo\n  endpoints: [127.0.0.1:9000]\n",
			[]string{`clusters[1].name: "echo": cluster name used twice`}},
		{"duplicate listener address", strings.Replace(good, "clusters:", "- name: second\n  address: 127.0.0.1:4140\n  routes: [{cluster: echo}]\nclusters:", 1),
			[]string{`listeners[1].address: "127.0.0.1:4140": already used by listener outbound`}},
		{"bad authority wildcard", strings.Replace(good, "authority: echo", "authority: 'ec*ho'", 1),
			[]string{`listeners[0].routes[0].match.authority: "ec*ho": a wildcard is allowed only as a leading "*."`}},
		{"relative path", strings.Replace(good, "authority: echo", "path_prefix: api", 1),
			[]string{`listeners[0].routes[0].match.path_prefix: "api": must start with /`}},
		{"bad header regex", strings.Replace(good, "authority: echo}", "headers: [{name: x-v, regex: '(['}]}", 1),
			[]string{`listeners[0].routes[0].match.headers[0].regex: "([": error parsing regexp`}},
		{"header match needs one condition", strings.Replace(good, "authority: echo}", "headers: [{name: x-v, exact: a, regex: b}]}", 1),
			[]string{"listeners[0].routes[0].match.headers[0]: exactly one of exact, regex and present must be set"}},
		{"grpc method without service", strings.Replace(good, "authority: echo", "grpc_method: Call", 1),
			[]string{"listeners[0].routes[0].match.grpc_method: needs grpc_service"}},
		{"bad header name", strings.Replace(good, "timeout: 2s", "timeout: 2s\n    request_headers: {remove: ['bad header']}", 1),
			[]string{`listeners[0].routes[0].request_headers.remove[0]: "bad header": not a header name`}},
		{"no listeners", "clusters: []\n", []string{"listeners: at least one listener is required"}},
		{"bad admin", strings.Replace(good, "127.0.0.1:9901", "localhost", 1),
			[]string{`proxy.yaml:1: admin: "localhost": missing port in address`}},
		{"two endpoint sources", strings.Replace(good, "endpoints: [", "endpoints_file: {path: /x}\n  endpoints: [", 1),
			[]string{"clusters[0]: exactly one of endpoints, endpoints_file, kubernetes and original_dst is required"}},
		{"no endpoint source", strings.Replace(good, "  endpoints: [127.0.0.1:8080, 127.0.0.1:8081]\n", "", 1),
			[]string{"clusters[0]: exactly one of endpoints, endpoints_file, kubernetes and original_dst is required"}},
		{"original_dst with endpoints", strings.Replace(originalDst, "  original_dst:", "  endpoints: [127.0.0.1:8080]\n  original_dst:", 1),
			[]string{"clusters[0]: exactly one of endpoints, endpoints_file, kubernetes and original_dst is required"}},
		{"original_dst without allowed", strings.Replace(originalDst, "allowed: [127.0.0.1:8080, 127.0.0.1:8081]", "allowed: []", 1),
			[]string{"clusters[0].original_dst.allowed: at least one destination is required"}},
		{"original_dst allowed entries", strings.Replace(originalDst, "allowed: [127.0.0.1:8080, 127.0.0.1:8081]", "allowed: [127.0.0.1, 127.0.0.1:0, 127.0.0.1:8080, 127.0.0.1:8080]", 1),
			[]string{`clusters[0].original_dst.allowed[0]: "127.0.0.1": missing port`, `clusters[0].original_dst.allowed[1]: "127.0.0.1:0": port 0 is not a destination`,
				`clusters[0].original_dst.allowed[3]: "127.0.0.1:8080": destination listed twice`}},
		{"original_dst header", strings.Replace(originalDst, "original_dst: {", "original_dst: {header: 'x dst', ", 1),
			[]string{`clusters[0].original_dst.header: "x dst": not a header name`}},
		{"original_dst with a balancer", strings.Replace(originalDst, "  original_dst:", "  balancer: {policy: round_robin}\n  original_dst:", 1),
			[]string{"clusters[0].balancer: does not apply to original_dst"}},
		{"original_dst with balancer parameters", strings.Replace(originalDst, "  original_dst:", "  balancer: {decay: 5s}\n  original_dst:", 1),
			[]string{"clusters[0].balancer: does not apply to original_dst"}},
		{"original_dst with outlier detection", strings.Replace(originalDst, "  original_dst:", "  outlier_detection: {}\n  original_dst:", 1),
			[]string{"clusters[0].outlier_detection: does not apply to original_dst"}},
		{"original_dst with via", strings.Replace(originalDst, "  original_dst:", "  via: {gateways: {}}\n  original_dst:", 1),
			[]string{"clusters[0].via: does not combine with original_dst"}},
		{"via without endpoint source", strings.Replace(via, "  endpoints: [127.0.0.1:8080, 127.0.0.1:8081]\n", "", 1),
			[]string{"clusters[0].via: needs an endpoint source", "clusters[0]: exactly one of endpoints"}},
		{"via gateways", strings.Replace(via, "gateways: {127.0.0.1:8080: 127.0.0.2:4143}", "gateways: {127.0.0.1:8080: 127.0.0.2, 127.0.0.1:9999: 127.0.0.2:4143, 'node-a': 127.0.0.2:4143, 127.0.0.1:8081: 127.0.0.2:0}", 1),
			[]string{`clusters[0].via.gateways.127.0.0.1:8080: gateway "127.0.0.2": missing port`,
				"clusters[0].via.gateways.127.0.0.1:9999: not one of the cluster's endpoints",
				`clusters[0].via.gateways.node-a: endpoint "node-a": missing port`,
				`clusters[0].via.gateways.127.0.0.1:8081: gateway "127.0.0.2:0": port 0 is not a destination`}},
		{"via header", strings.Replace(via, "via: {", "via: {header: 'x:dst', ", 1),
			[]string{`clusters[0].via.header: "x:dst": not a header name`}},
		{"missing endpoints file", strings.Replace(good, "endpoints: [127.0.0.1:8080, 127.0.0.1:8081]", "endpoints_file: {path: /nonexistent/eps.yaml}", 1),
			[]string{"clusters[0].endpoints_file.path: open /nonexistent/eps.yaml: no such file or directory"}},
		{"kubernetes names", strings.Replace(strings.Replace(good, "endpoints: [127.0.0.1:8080, 127.0.0.1:8081]", "kubernetes: {namespace: Default, service: ''}", 1), "admin:", "discovery_server: http://127.0.0.1:9200\nadmin:", 1),
			[]string{`clusters[0].kubernetes.namespace: "Default": a namespace name (DNS label) is required`, `clusters[0].kubernetes.service: "": a service name`}},
		{"kubernetes without discovery server", strings.Replace(good, "endpoints: [127.0.0.1:8080, 127.0.0.1:8081]", "kubernetes: {namespace: shop, service: orders}", 1),
			[]string{`clusters[0].kubernetes: needs discovery_server`}},
		{"discovery server", strings.Replace(good, "admin:", "discovery_server: https://discovery:9200\nadmin:", 1),
			[]string{`proxy.yaml:1: discovery_server: "https://discovery:9200": the scheme must be http`}},
		{"discovery server port", strings.Replace(good, "admin:", "discovery_server: http://discovery\nadmin:", 1),
			[]string{`discovery_server: "http://discovery": a host and a port are required`}},
		{"discovery server path", strings.Replace(good, "admin:", "discovery_server: http://discovery:9200/v1\nadmin:", 1),
			[]string{`discovery_server: "http://discovery:9200/v1": only http://host:port`}},
		{"kubeconfig is gone", strings.Replace(good, "admin:", "kubeconfig: /root/.kube/config\nadmin:", 1),
			[]string{`kubeconfig: unknown field`}},
		{"weights need weighted round robin", strings.Replace(good, "endpoints: [", "weights: {127.0.0.1:8080: 2}\n  endpoints: [", 1),
			[]string{"clusters[0].weights: apply to weighted_round_robin only"}},
		{"weight of an unknown endpoint", strings.Replace(strings.Replace(good, "policy: round_robin", "policy: weighted_round_robin", 1), "endpoints: [", "weights: {127.0.0.1:9999: 0}\n  endpoints: [", 1),
			[]string{"clusters[0].weights.127.0.0.1:9999: 0: a weight is at least 1", "clusters[0].weights.127.0.0.1:9999: not one of the cluster's endpoints"}},
		{"outlier detection values", strings.Replace(good, "endpoints: [", "outlier_detection: {consecutive_5xx: -2, base_ejection_time: 10s, max_ejection_time: 5s, max_ejection_percent: 101}\n  endpoints: [", 1),
			[]string{"clusters[0].outlier_detection.consecutive_5xx: -2: a count, or -1 to disable", "clusters[0].outlier_detection.max_ejection_time: must be at least base_ejection_time", "clusters[0].outlier_detection.max_ejection_percent: 101: a percentage"}},
		{"retry budget ratio", strings.Replace(good, "endpoints: [", "retry_budget: {ratio: 1.5}\n  endpoints: [", 1),
			[]string{"clusters[0].retry_budget.ratio: 1.5: must be in (0, 1]"}},
		{"retry policy", strings.Replace(good, "timeout: 2s", "timeout: 2s\n    retry: {attempts: 11, on: [5xx], per_try_timeout: -1s}", 1),
			[]string{"listeners[0].routes[0].retry.attempts: 11: between 1 and 10", `listeners[0].routes[0].retry.on: "5xx": unknown condition`, "listeners[0].routes[0].retry.per_try_timeout: must be positive"}},
		{"negative limits", strings.Replace(good, "  routes:", "  limits: {read_header_timeout: -1s, idle_timeout: -2s, max_header_bytes: -1, max_concurrent_streams: -1, max_connections: -5}\n  routes:", 1),
			[]string{"listeners[0].limits.read_header_timeout: must be positive", "listeners[0].limits.idle_timeout: must be positive",
				"listeners[0].limits.max_header_bytes: -1: must be positive, at most 16777216", "listeners[0].limits.max_concurrent_streams: -1: must be positive",
				"listeners[0].limits.max_connections: must be positive"}},
		{"too many streams", strings.Replace(good, "  routes:", "  limits: {max_concurrent_streams: 4294967296}\n  routes:", 1),
			[]string{"proxy.yaml:7: listeners[0].limits.max_concurrent_streams: 4294967296: must be positive, at most 4294967295"}},
		{"huge header limit", strings.Replace(good, "  routes:", "  limits: {max_header_bytes: 9223372036854775807}\n  routes:", 1),
			[]string{"listeners[0].limits.max_header_bytes: 9223372036854775807: must be positive, at most 16777216"}},
		{"unknown limit", strings.Replace(good, "  routes:", "  limits: {read_timeout: 5s}\n  routes:", 1),
			[]string{"listeners[0].limits.read_timeout: unknown field"}},
		{"field twice", strings.Replace(good, "  protocol: auto\n", "  protocol: auto\n  protocol: http1\n", 1),
			[]string{"listeners[0].protocol: field given twice"}},
		{"second document", good + "---\nadmin: 0.0.0.0:9901\n",
			[]string{"proxy.yaml:16: a second YAML document: the file must hold one document"}},
		{"wildcard overlaps a listener", strings.Replace(good, "clusters:", "- name: all\n  address: 0.0.0.0:4140\n  routes: [{cluster: echo}]\nclusters:", 1),
			[]string{`proxy.yaml:12: listeners[1].address: "0.0.0.0:4140" overlaps "127.0.0.1:4140" of listener outbound: a wildcard and a specific address on one port`}},
		{"wildcard admin overlaps a listener", strings.Replace(good, "admin: 127.0.0.1:9901", "admin: '[::]:4140'", 1),
			[]string{`listeners[0].address: "127.0.0.1:4140" overlaps "[::]:4140" of admin`}},
		{"zero route timeout", strings.Replace(good, "timeout: 2s", "timeout: 0s", 1),
			[]string{"proxy.yaml:10: listeners[0].routes[0].timeout: 0 would mean the default (15s): leave the field out for the default"}},
		{"zero limits", strings.Replace(good, "  routes:", "  limits: {max_connections: 0, read_header_timeout: 0}\n  routes:", 1),
			[]string{"proxy.yaml:7: listeners[0].limits.read_header_timeout: 0 would mean the default (10s)",
				"proxy.yaml:7: listeners[0].limits.max_connections: 0 would mean the default (10000)"}},
		{"zero drain and pool", strings.Replace(strings.Replace(good, "admin:", "drain_timeout: 0s\nadmin:", 1), "  endpoints:", "  pool: {max_idle_per_endpoint: 0}\n  endpoints:", 1),
			[]string{"proxy.yaml:1: drain_timeout: 0 would mean the default (10s)",
				"clusters[0].pool.max_idle_per_endpoint: 0 would mean the default (256)"}},
		{"zero outlier setting", strings.Replace(good, "  endpoints:", "  outlier_detection: {consecutive_5xx: 0}\n  endpoints:", 1),
			[]string{"clusters[0].outlier_detection.consecutive_5xx: 0 would mean the default (5)"}},
		{"bad escaped_slashes", strings.Replace(good, "  protocol: auto\n", "  protocol: auto\n  escaped_slashes: keep\n", 1),
			[]string{`listeners[0].escaped_slashes: "keep": must be reject or unescape`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("proxy.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestAcceptedNearMisses: what the stricter checks must still let through.
func TestAcceptedNearMisses(t *testing.T) {
	for name, y := range map[string]string{
		"wildcards on other ports":     strings.Replace(strings.Replace(good, "admin: 127.0.0.1:9901", "admin: 0.0.0.0:9901", 1), "127.0.0.1:4140", "0.0.0.0:4140", 1),
		"two specific addresses":       strings.Replace(good, "clusters:", "- name: b\n  address: 127.0.0.2:4140\n  routes: [{cluster: echo}]\nclusters:", 1),
		"port 0 beside a wildcard":     strings.Replace(strings.Replace(good, "127.0.0.1:4140", "0.0.0.0:0", 1), "clusters:", "- name: b\n  address: 127.0.0.1:0\n  routes: [{cluster: echo}]\nclusters:", 1),
		"zero without a default":       strings.Replace(good, "timeout: 2s", "timeout: 2s\n    retry: {per_try_timeout: 0s}", 1),
		"a document marker at the top": "---\n" + good,
	} {
		if _, err := config.Parse("proxy.yaml", []byte(y)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestWarnings: an admin address beyond loopback is flagged, with what it
// serves.
func TestWarnings(t *testing.T) {
	for _, tc := range []struct {
		admin string
		debug bool
		want  string
	}{
		{"127.0.0.1:9901", false, ""},
		{"'[::1]:9901'", true, ""},
		{"localhost:9901", false, ""},
		{"0.0.0.0:9901", false, `admin: "0.0.0.0:9901" is not a loopback address: /metrics and /ready are served to anyone who can reach it`},
		{"10.1.2.3:9901", true, "/metrics, /ready, /config and /debug/pprof/ are served"},
	} {
		y := strings.Replace(good, "admin: 127.0.0.1:9901", fmt.Sprintf("admin: %s\nadmin_debug: %v", tc.admin, tc.debug), 1)
		c, err := config.Parse("proxy.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		w := strings.Join(c.Warnings(), "\n")
		if tc.want == "" && w != "" || !strings.Contains(w, tc.want) {
			t.Errorf("admin %s: warnings %q, want %q", tc.admin, w, tc.want)
		}
	}
}

// TestRedacted: header values added by routes do not show, and the
// original is untouched.
func TestRedacted(t *testing.T) {
	y := strings.Replace(good, "timeout: 2s", "timeout: 2s\n    request_headers: {add: {authorization: Bearer s3cr3t}}", 1)
	c, err := config.Parse("proxy.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	js, err := c.Redacted().JSON()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), "s3cr3t") || !strings.Contains(string(js), `"authorization": "[redacted]"`) {
		t.Errorf("redacted config:\n%s", js)
	}
	if got := c.Listeners[0].Routes[0].RequestHeaders.Add["authorization"]; got != "Bearer s3cr3t" {
		t.Errorf("the original config changed: %q", got)
	}
}

func TestErrorsAreAllReported(t *testing.T) {
	y := strings.Replace(strings.Replace(good, "127.0.0.1:8081", "127.0.0.1", 1), "cluster: echo", "cluster: nope", 1)
	_, err := config.Parse("proxy.yaml", []byte(y))
	if err == nil {
		t.Fatal("no error")
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 2 {
		t.Errorf("want 2 problems reported, got %d:\n%v", n, err)
	}
}

func TestLoadNamesFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(p, []byte(strings.Replace(good, "127.0.0.1:8081", "127.0.0.1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+":15: clusters[0].endpoints[1]") {
		t.Errorf("error does not start with the file, line and field: %v", err)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "reading proxy config") {
		t.Errorf("missing file: %v", err)
	}
}

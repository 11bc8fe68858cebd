package proxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshbench/meshbench/loadgen"
	"github.com/meshbench/meshbench/proxy"
	"github.com/meshbench/meshbench/proxy/config"
)

// pod is a test workload on its own loopback address: an HTTP/1.1 + h2c
// port and a gRPC TestService port, both naming the pod in X-Backend.
// A request that still carries the destination header is answered with an
// error (HTTP 500, gRPC FAILED_PRECONDITION): it must never reach a pod.
type pod struct {
	name       string
	http, grpc string       // addresses
	conns      atomic.Int64 // connections accepted on the HTTP port
}

// startPod starts a pod listening on ip.
func startPod(t *testing.T, name, ip string) *pod {
	t.Helper()
	p := &pod{name: name}
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	p.http = ln.Addr().String()
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Backend", name)
			io.Copy(io.Discard, r.Body)
			if _, leaked := r.Header[config.DefaultDstHeader]; leaked {
				http.Error(w, "destination header reached the pod", http.StatusInternalServerError)
				return
			}
			io.WriteString(w, "ok")
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				p.conns.Add(1)
			}
		}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	gln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	p.grpc = gln.Addr().String()
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, &podService{name: name})
	go gs.Serve(gln)
	t.Cleanup(gs.Stop)
	return p
}

type podService struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (s *podService) UnaryCall(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	grpc.SetHeader(ctx, metadata.Pairs("x-backend", s.name))
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get(config.DefaultDstHeader)) > 0 {
		return nil, status.Error(codes.FailedPrecondition, "destination header reached the pod")
	}
	return &testgrpc.SimpleResponse{}, nil
}

// nodeProxyConfig is a node proxy: one inbound listener on ip whose
// cluster delivers to the destination each request names, if it is one of
// the node's pods (their HTTP and gRPC ports).
func nodeProxyConfig(ip string, pods ...*pod) string {
	var allowed []string
	for _, p := range pods {
		allowed = append(allowed, p.http, p.grpc)
	}
	return `listeners:
- name: in
  address: ` + ip + `:0
  direction: inbound
  routes:
  - match: {}
    cluster: local
    timeout: 5s
clusters:
- name: local
  original_dst: {allowed: [` + strings.Join(allowed, ", ") + `]}
`
}

// outboundCluster is a weighted round robin cluster over the pods'
// addresses (addr picks the HTTP or gRPC one), with pod i weighted i+1,
// reaching each pod through the gateway gw gives it (none: directly).
func outboundCluster(name string, pods []*pod, addr func(*pod) string, gw map[*pod]string) string {
	var eps, weights, gateways []string
	for i, p := range pods {
		eps = append(eps, addr(p))
		weights = append(weights, fmt.Sprintf("%s: %d", addr(p), i+1))
		if g, ok := gw[p]; ok {
			gateways = append(gateways, addr(p)+": "+g)
		}
	}
	return `- name: ` + name + `
  balancer: {policy: weighted_round_robin}
  endpoints: [` + strings.Join(eps, ", ") + `]
  weights: {` + strings.Join(weights, ", ") + `}
  via: {gateways: {` + strings.Join(gateways, ", ") + `}}
`
}

func acceptedConns(t *testing.T, srv *proxy.Server) float64 {
	return counterValue(t, srv, "tcp_open_total", map[string]string{"listener": "in"})
}

// TestDaemonsetDelivery runs the daemonset topology on loopback addresses:
// two nodes with two pods and a node proxy each, a pod reached directly,
// and an outbound proxy that balances over the five pods (weighted 1 to 5,
// so every pod's share is known exactly) and reaches the nodes' pods
// through their node proxies. Over HTTP/1.1, h2c and gRPC every pod must get
// exactly the share its weight gives, which it can only if each node proxy
// delivered every request to the pod the outbound proxy picked; the
// destination header must never reach a pod, and each node proxy must
// accept one connection per upstream pool, not one per pod.
func TestDaemonsetDelivery(t *testing.T) {
	pods := []*pod{
		startPod(t, "a0", "127.0.1.10"), startPod(t, "a1", "127.0.1.11"),
		startPod(t, "b0", "127.0.2.10"), startPod(t, "b1", "127.0.2.11"),
		startPod(t, "direct", "127.0.3.10"),
	}
	nodeA := startProxy(t, nodeProxyConfig("127.0.1.1", pods[0], pods[1]))
	nodeB := startProxy(t, nodeProxyConfig("127.0.2.1", pods[2], pods[3]))
	gwA, gwB := nodeA.Addr("in").String(), nodeB.Addr("in").String()
	gw := map[*pod]string{pods[0]: gwA, pods[1]: gwA, pods[2]: gwB, pods[3]: gwB}
	out := startProxy(t, `listeners:
- name: out
  address: 127.0.0.1:0
  routes:
  - match: {grpc_service: grpc.testing.TestService}
    cluster: pods-grpc
    timeout: 5s
  - match: {}
    cluster: pods-http
    timeout: 5s
clusters:
`+outboundCluster("pods-http", pods, func(p *pod) string { return p.http }, gw)+
		outboundCluster("pods-grpc", pods, func(p *pod) string { return p.grpc }, gw))

	// 15 is the sum of the weights: pod i gets (i+1)/15 of the requests.
	const requests, warmup = 15 * 30, 15
	for _, tc := range []struct {
		name string
		spec loadgen.Spec
	}{
		// A destination header sent by the client is replaced.
		{"http1", loadgen.Spec{Target: proxyURL(out, "/"), Protocol: loadgen.HTTP1, Connections: 1,
			Header: http.Header{config.DefaultDstHeader: {pods[2].http}}}},
		{"h2c", loadgen.Spec{Target: proxyURL(out, "/"), Protocol: loadgen.H2C, Connections: 1, Streams: 4}},
		{"grpc", loadgen.Spec{Target: out.Addr("out").String(), Protocol: loadgen.GRPC, Connections: 1, Streams: 4,
			Header: http.Header{config.DefaultDstHeader: {pods[2].grpc}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			beforeA, beforeB := acceptedConns(t, nodeA), acceptedConns(t, nodeB)
			// One request to each pod in turn opens the outbound proxy's
			// connections without the race of concurrent first requests;
			// with a pool per pod there would be one per pod already.
			spec := tc.spec
			spec.Requests, spec.Streams, spec.Timeout, spec.SpinWindow = warmup, 1, 5*time.Second, -1
			if res, err := loadgen.Run(t.Context(), spec); err != nil || res.Errors.Total != 0 {
				t.Fatalf("warm-up: %v %+v", err, res)
			}
			spec = tc.spec
			spec.Requests, spec.Timeout, spec.SpinWindow = requests, 5*time.Second, -1
			res, err := loadgen.Run(t.Context(), spec)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != requests || res.Errors.Total != 0 {
				t.Fatalf("%d requests, errors %v, statuses %v", res.Requests, res.Errors.ByClass, res.StatusCodes)
			}
			for i, p := range pods {
				if want := int64(requests * (i + 1) / 15); res.Endpoints[p.name] != want {
					t.Errorf("pod %s answered %d requests, want %d (weight %d of 15); all: %v", p.name, res.Endpoints[p.name], want, i+1, res.Endpoints)
				}
			}
			// Each node proxy accepted one connection for this protocol:
			// the outbound proxy's pool (HTTP/1.1 or h2c), shared by both
			// pods behind it.
			for _, n := range []struct {
				name          string
				before, after float64
			}{{"node A", beforeA, acceptedConns(t, nodeA)}, {"node B", beforeB, acceptedConns(t, nodeB)}} {
				if got := n.after - n.before; got != 1 {
					t.Errorf("%s accepted %v connections for %s, want 1 shared by its two pods", n.name, got, tc.name)
				}
			}
		})
	}

	// Per-endpoint series stay per pod on both sides of the gateway.
	for i, p := range pods[:4] {
		want := float64(2 * (warmup + requests) * (i + 1) / 15) // the HTTP ports carried http1 and h2c
		if got := counterValue(t, out, "upstream_requests_total", map[string]string{"cluster": "pods-http", "endpoint": p.http}); got != want {
			t.Errorf("outbound upstream_requests_total for %s: %v, want %v", p.name, got, want)
		}
		node := nodeA
		if i >= 2 {
			node = nodeB
		}
		if got := counterValue(t, node, "upstream_requests_total", map[string]string{"cluster": "local", "endpoint": p.http}); got != want {
			t.Errorf("node upstream_requests_total for %s: %v, want %v", p.name, got, want)
		}
	}
	if got := counterValue(t, out, "upstream_requests_total", map[string]string{"endpoint": gwA}); got != 0 {
		t.Errorf("the gateway appears as an endpoint with %v requests", got)
	}
}

// TestOriginalDstRefusals: a node proxy answers a request without a
// destination 400 (gRPC INVALID_ARGUMENT) and one naming a pod that is not
// its own 403 (gRPC PERMISSION_DENIED), and never connects to that pod.
func TestOriginalDstRefusals(t *testing.T) {
	mine, other := startPod(t, "mine", "127.0.1.10"), startPod(t, "other", "127.0.2.10")
	node := startProxy(t, nodeProxyConfig("127.0.1.1", mine))
	url := "http://" + node.Addr("in").String() + "/"
	c := h1Client()
	for _, tc := range []struct {
		dst  string
		want int
	}{
		{mine.http, http.StatusOK},
		{"", http.StatusBadRequest},
		{other.http, http.StatusForbidden},
		{mine.grpc + "0", http.StatusForbidden},
	} {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if tc.dst != "" {
			req.Header.Set(config.DefaultDstHeader, tc.dst)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); resp.StatusCode != tc.want {
			t.Errorf("destination %q: %d %q, want %d", tc.dst, resp.StatusCode, body, tc.want)
		}
	}

	gc := dialGRPC(t, node.Addr("in").String(), "")
	for _, tc := range []struct {
		dst  string
		want codes.Code
	}{
		{mine.grpc, codes.OK},
		{"", codes.InvalidArgument},
		{other.grpc, codes.PermissionDenied},
	} {
		ctx := t.Context()
		if tc.dst != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, config.DefaultDstHeader, tc.dst)
		}
		var hdr metadata.MD
		_, err := gc.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Header(&hdr))
		if got := status.Code(err); got != tc.want {
			t.Errorf("gRPC destination %q: %v (%v), want %v", tc.dst, got, err, tc.want)
		}
		if tc.want == codes.OK && (len(hdr.Get("x-backend")) != 1 || hdr.Get("x-backend")[0] != "mine") {
			t.Errorf("gRPC destination %q answered by %v", tc.dst, hdr.Get("x-backend"))
		}
	}
	if n := other.conns.Load(); n != 0 {
		t.Errorf("the forbidden pod accepted %d connections", n)
	}
	if got := counterValue(t, node, "response_total", map[string]string{"status_code": "403"}); got != 2 {
		t.Errorf("response_total{status_code=403} = %v, want 2", got)
	}
}

// TestOriginalDstRetriesTheNamedEndpoint: a connect failure is retried on
// the endpoint the request named, never on another allowed one.
func TestOriginalDstRetriesTheNamedEndpoint(t *testing.T) {
	alive := startPod(t, "alive", "127.0.1.10")
	dead := freePort(t)
	node := startProxy(t, `listeners:
- name: in
  address: 127.0.1.1:0
  direction: inbound
  routes:
  - match: {}
    cluster: local
    retry: {attempts: 3, on: [connect-failure], backoff: {base: 1ms}}
clusters:
- name: local
  original_dst: {allowed: [`+alive.http+`, `+dead+`]}
`)
	req, _ := http.NewRequest(http.MethodGet, "http://"+node.Addr("in").String()+"/", nil)
	req.Header.Set(config.DefaultDstHeader, dead)
	resp, err := h1Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dead destination: %d %q, want 503", resp.StatusCode, body)
	}
	if n := counterValue(t, node, "upstream_requests_total", map[string]string{"endpoint": dead}); n != 3 {
		t.Errorf("attempts on the dead destination: %v, want 3", n)
	}
	if n := counterValue(t, node, "upstream_requests_total", map[string]string{"endpoint": alive.http}); n != 0 {
		t.Errorf("attempts on the other destination: %v, want 0", n)
	}
}

// TestViaGatewayConnectionsOutliveAnEndpoint: when one of two endpoints
// behind a gateway leaves the cluster, the pooled connection to the gateway
// stays for the other one.
func TestViaGatewayConnectionsOutliveAnEndpoint(t *testing.T) {
	a0, a1 := startPod(t, "a0", "127.0.1.10"), startPod(t, "a1", "127.0.1.11")
	node := startProxy(t, nodeProxyConfig("127.0.1.1", a0, a1))
	gw := node.Addr("in").String()
	file := filepath.Join(t.TempDir(), "endpoints.yaml")
	write := func(addrs ...string) {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte("endpoints: ["+strings.Join(addrs, ", ")+"]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(a0.http, a1.http)
	out := startProxy(t, `listeners:
- name: out
  address: 127.0.0.1:0
  protocol: http1
  routes:
  - match: {}
    cluster: c
clusters:
- name: c
  protocol: http1
  balancer: {policy: round_robin}
  endpoints_file: {path: `+file+`, poll_interval: 10ms}
  via: {gateways: {`+a0.http+`: `+gw+`, `+a1.http+`: `+gw+`}}
`)
	c := h1Client()
	get := func() string {
		resp, err := c.Get(proxyURL(out, "/"))
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		return resp.Header.Get("X-Backend")
	}
	served := map[string]int{}
	for range 4 {
		served[get()]++
	}
	if served["a0"] != 2 || served["a1"] != 2 {
		t.Fatalf("before the change: %v", served)
	}
	write(a1.http)
	eventually(t, 5*time.Second, "a0 to leave the cluster", func() bool {
		return !strings.Contains(metricsText(t, out), a0.http)
	})
	for range 4 {
		if b := get(); b != "a1" {
			t.Fatalf("after a0 left, %s answered", b)
		}
	}
	if n := acceptedConns(t, node); n != 1 {
		t.Errorf("the gateway accepted %v connections, want the first one kept for a1", n)
	}
}

// metricsText returns the proxy's series in the Prometheus text format.
func metricsText(t *testing.T, srv *proxy.Server) string {
	t.Helper()
	fams, err := srv.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, f := range fams {
		b.WriteString(f.String())
	}
	return b.String()
}

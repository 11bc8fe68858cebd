package proxy_test

// Benchmarks of the forward path through real loopback sockets: a client,
// the proxy and a backend, all in this process. Requests are sequential (one
// in flight), so ns/op is the round-trip time of one request through the
// whole chain, and B/op and allocs/op are those of the whole process:
// client, proxy and backend together.
//
// Every Forward benchmark also reports proxy-allocs/op and proxy-B/op: the
// whole-process figures minus those of the same client calling the same
// backend directly (measured in the same benchmark, just before the timed
// loop). The difference is the proxy's cost per request, plus the small
// extra work of the backend parsing the headers the proxy adds
// (X-Forwarded-For, X-Forwarded-Proto, X-Request-Id).
//
//	go test -run '^$' -bench . -benchmem ./proxy/   (or: make bench)

import (
	"context"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/meshbench/meshbench/proxy"
	"github.com/meshbench/meshbench/proxy/config"
)

// benchBody is what the backends answer: as small as the nginx backend of
// scripts/perf-http1.sh.
const benchBody = "hello, world\n"

// benchBaselineRuns is how many direct requests measure the baseline
// allocations a Forward benchmark subtracts.
const benchBaselineRuns = 2000

// benchBackend serves a fixed small body over HTTP/1.1 and h2c on a
// loopback port until the benchmark ends, and returns its address.
func benchBackend(b *testing.B) string {
	b.Helper()
	body := []byte(benchBody)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = []string{"text/plain"}
		hdr["Content-Length"] = []string{"13"}
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &p, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// benchProxy starts a proxy with one auto (HTTP/1.1 + h2c) listener whose
// only route sends everything to a cluster of endpoint, spoken to in
// upstream (http1, h2c or same), and returns the listener's address. The
// configuration is otherwise the defaults, as in scripts/perf-http1.sh.
func benchProxy(b *testing.B, upstream, endpoint string) string {
	b.Helper()
	yml := `listeners:
- name: outbound
  address: 127.0.0.1:0
  protocol: auto
  routes:
  - match: {}
    cluster: backend
clusters:
- name: backend
  protocol: ` + upstream + `
  endpoints: [` + endpoint + `]
`
	cfg, err := config.Parse("bench.yaml", []byte(yml))
	if err != nil {
		b.Fatalf("config:\n%s\n%v", yml, err)
	}
	srv, err := proxy.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv.Addr("outbound").String()
}

// benchClient is a keep-alive client speaking HTTP/1.1, or h2c with prior
// knowledge.
func benchClient(b *testing.B, h2c bool) *http.Client {
	var p http.Protocols
	if h2c {
		p.SetUnencryptedHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	t := &http.Transport{Protocols: &p, DisableCompression: true, MaxIdleConnsPerHost: 4}
	b.Cleanup(t.CloseIdleConnections)
	return &http.Client{Transport: t, Timeout: 10 * time.Second}
}

// benchGet returns a function that GETs url with c and checks the answer.
func benchGet(b *testing.B, c *http.Client, url string, wantProto int) func() {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64)
	return func() {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.ReadFull(resp.Body, buf)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != wantProto || string(buf[:n]) != benchBody {
			b.Fatalf("GET %s: %s %s %q", url, resp.Proto, resp.Status, buf[:n])
		}
	}
}

// benchMemPerCall runs f n times and returns the process's heap
// allocations and bytes per call.
func benchMemPerCall(n int, f func()) (allocs, bytes float64) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		f()
	}
	runtime.ReadMemStats(&m1)
	return float64(m1.Mallocs-m0.Mallocs) / float64(n), float64(m1.TotalAlloc-m0.TotalAlloc) / float64(n)
}

// benchForward times viaProxy and reports, besides the usual figures, the
// allocations per call beyond those of direct, the same request without
// the proxy.
func benchForward(b *testing.B, direct, viaProxy func()) {
	for range 200 { // open the connections, fill the pools
		direct()
		viaProxy()
	}
	baseAllocs, baseBytes := benchMemPerCall(benchBaselineRuns, direct)
	b.ReportAllocs()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	n := 0
	for b.Loop() {
		viaProxy()
		n++
	}
	runtime.ReadMemStats(&m1)
	allocs := float64(m1.Mallocs-m0.Mallocs) / float64(n)
	bytes := float64(m1.TotalAlloc-m0.TotalAlloc) / float64(n)
	b.ReportMetric(allocs-baseAllocs, "proxy-allocs/op")
	b.ReportMetric(bytes-baseBytes, "proxy-B/op")
}

// BenchmarkDirectHTTP1 is the reference without proxy: an HTTP/1.1
// keep-alive client calling the backend.
func BenchmarkDirectHTTP1(b *testing.B) {
	be := benchBackend(b)
	get := benchGet(b, benchClient(b, false), "http://"+be+"/", 1)
	for range 200 {
		get()
	}
	b.ReportAllocs()
	for b.Loop() {
		get()
	}
}

// BenchmarkForwardHTTP1: HTTP/1.1 keep-alive client -> proxy -> HTTP/1.1
// backend.
func BenchmarkForwardHTTP1(b *testing.B) {
	be := benchBackend(b)
	px := benchProxy(b, config.UpstreamHTTP1, be)
	benchForward(b,
		benchGet(b, benchClient(b, false), "http://"+be+"/", 1),
		benchGet(b, benchClient(b, false), "http://"+px+"/", 1))
}

// BenchmarkForwardH2C: h2c client -> proxy -> h2c backend.
func BenchmarkForwardH2C(b *testing.B) {
	be := benchBackend(b)
	px := benchProxy(b, config.UpstreamH2C, be)
	benchForward(b,
		benchGet(b, benchClient(b, true), "http://"+be+"/", 2),
		benchGet(b, benchClient(b, true), "http://"+px+"/", 2))
}

// benchTestService answers UnaryCall with a body as small as benchBody.
type benchTestService struct {
	testpb.UnimplementedTestServiceServer
}

func (benchTestService) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: in.GetPayload().GetBody()}}, nil
}

// benchGRPCServer serves grpc.testing.TestService on a loopback port until
// the benchmark ends, and returns its address.
func benchGRPCServer(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, benchTestService{})
	go s.Serve(ln)
	b.Cleanup(s.Stop)
	return ln.Addr().String()
}

// benchUnary returns a function that makes one UnaryCall to addr over its
// own connection and checks the answer.
func benchUnary(b *testing.B, addr string) func() {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cc.Close() })
	client := testpb.NewTestServiceClient(cc)
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(benchBody)}}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := client.UnaryCall(ctx, req)
		cancel()
		if err != nil {
			b.Fatalf("UnaryCall to %s: %v", addr, err)
		}
		if string(resp.GetPayload().GetBody()) != benchBody {
			b.Fatalf("UnaryCall to %s: payload %q", addr, resp.GetPayload().GetBody())
		}
	}
}

// BenchmarkForwardGRPCUnary: grpc-go client -> proxy (h2c) -> grpc-go
// server, one unary call per op.
func BenchmarkForwardGRPCUnary(b *testing.B) {
	srv := benchGRPCServer(b)
	px := benchProxy(b, config.UpstreamH2C, srv)
	benchForward(b, benchUnary(b, srv), benchUnary(b, px))
}

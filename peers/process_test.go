package peers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/meshbench/meshbench/backends"
	"github.com/meshbench/meshbench/peers"
	"github.com/meshbench/meshbench/proxy/config"
)

// requireBinary returns the peer's binary. Without it the test fails when
// MESHBENCH_REQUIRE_PEERS=1 (.ci/run sets it after installing the
// packages) and the peer has a package, and is skipped, with the package
// to install, otherwise.
func requireBinary(t *testing.T, a peers.Adapter) string {
	t.Helper()
	bin, err := peers.Find(a)
	if err != nil {
		if os.Getenv("MESHBENCH_REQUIRE_PEERS") == "1" && a.Package() != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	return bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// world is what a peer under test forwards to: three backends (HTTP and
// gRPC) and a server that echoes the forwarded request's headers.
type world struct {
	http, grpc []string
	echo       string
}

func newWorld(t *testing.T) world {
	t.Helper()
	var w world
	for i := range 3 {
		b, err := backends.New(backends.Config{Name: fmt.Sprintf("be-%d", i), HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			b.Shutdown(ctx)
		})
		w.http, w.grpc = append(w.http, b.HTTPAddr()), append(w.grpc, b.GRPCAddr())
	}
	echo := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_echo/slow" {
			time.Sleep(slowResponse)
		}
		rw.Header().Set("Echo-Xff", strings.Join(r.Header.Values("X-Forwarded-For"), ", "))
		rw.Header().Set("Echo-Request-Id", r.Header.Get("X-Request-Id"))
		rw.Header().Set("Echo-Host", r.Host)
	}))
	t.Cleanup(echo.Close)
	w.echo = echo.Listener.Addr().String()
	return w
}

// slowResponse is how long the echo server takes for /_echo/slow: the
// request in flight while a peer drains.
const slowResponse = 600 * time.Millisecond

// config is a client sidecar's: HTTP and gRPC to the backends, round
// robin, and a path prefix to the header echo.
func (w world) config(listen, admin string) *config.Config {
	grpcMatch := config.Match{Authority: "echo", Headers: []config.HeaderMatch{{Name: "content-type", Regex: "application/grpc([+;].*)?"}}}
	c := &config.Config{
		Admin: admin,
		Listeners: []config.Listener{{Name: "outbound", Address: listen, Protocol: config.ProtoAuto, Routes: []config.Route{
			{Name: "headers", Match: config.Match{Authority: "echo", PathPrefix: "/_echo/"}, Cluster: "headers", Timeout: config.Duration(5 * time.Second)},
			{Name: "grpc", Match: grpcMatch, Cluster: "grpc", Timeout: config.Duration(5 * time.Second)},
			{Name: "http", Match: config.Match{Authority: "echo"}, Cluster: "http", Timeout: config.Duration(5 * time.Second)},
		}}},
		Clusters: []config.Cluster{
			{Name: "headers", Protocol: config.UpstreamHTTP1, Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: []string{w.echo}},
			{Name: "grpc", Protocol: config.UpstreamH2C, Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: w.grpc},
			{Name: "http", Protocol: config.UpstreamSame, Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: w.http},
		},
	}
	full, err := c.WithDefaults()
	if err != nil {
		panic(err)
	}
	return full
}

// running is a started peer.
type running struct {
	inst *peers.Instance
	cmd  *exec.Cmd
	done chan struct{} // closed once the peer has exited
	err  error         // Wait's error, once done is closed
}

// startPeer renders c for the traffic, starts the peer and waits until it
// is ready; it is stopped when the test ends.
func startPeer(t *testing.T, a peers.Adapter, bin string, c *config.Config, traffic string) *running {
	t.Helper()
	dir := t.TempDir()
	sockets, err := os.MkdirTemp("", "mbpeer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	user := ""
	if os.Geteuid() == 0 {
		user = "root"
	}
	inst, err := a.Render(c, peers.Options{Name: a.Name(), Dir: dir, SocketDir: sockets, User: user, Traffic: []string{traffic}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range inst.Files {
		if err := os.WriteFile(filepath.Join(dir, f.Path), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, inst.Args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &running{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		log.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-p.done:
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("%s exited: %v\n%s", a.Name(), p.err, b)
		default:
		}
		if resp, err := http.Get(inst.Ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.inst = inst
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log.Name())
			t.Fatalf("%s not ready at %s after 10s\n%s", a.Name(), inst.Ready, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSpread asserts every backend got a fair share of n requests: round
// robin through one worker gives each exactly n/3; at least half of it is
// required.
func checkSpread(t *testing.T, what string, got map[string]int, n int) {
	t.Helper()
	for i := range 3 {
		name := fmt.Sprintf("be-%d", i)
		if got[name] < n/6 {
			t.Errorf("%s: %s answered %d of %d requests (%v); round robin gives each a third", what, name, got[name], n, got)
		}
	}
}

// TestPeersForward sends HTTP/1.1, h2c and gRPC through each peer that is
// installed: responses, the balance across endpoints, the per-request
// headers, routing, and gRPC's streams, trailers and statuses.
func TestPeersForward(t *testing.T) {
	w := newWorld(t)
	for _, a := range peers.All() {
		t.Run(a.Name(), func(t *testing.T) {
			bin := requireBinary(t, a)
			t.Run("http1", func(t *testing.T) {
				listen, admin := freeAddr(t), freeAddr(t)
				startPeer(t, a, bin, w.config(listen, admin), peers.TrafficHTTP1)
				checkHTTP1(t, listen)
			})
			t.Run("grpc", func(t *testing.T) {
				listen, admin := freeAddr(t), freeAddr(t)
				startPeer(t, a, bin, w.config(listen, admin), peers.TrafficGRPC)
				checkGRPC(t, listen)
			})
			t.Run("drain", func(t *testing.T) {
				listen, admin := freeAddr(t), freeAddr(t)
				p := startPeer(t, a, bin, w.config(listen, admin), peers.TrafficHTTP1)
				checkDrain(t, p, listen)
			})
			t.Run("h2c", func(t *testing.T) {
				listen, admin := freeAddr(t), freeAddr(t)
				_, err := a.Render(w.config(listen, admin), peers.Options{Name: "x", Dir: t.TempDir(), Traffic: []string{peers.TrafficH2C}})
				if peers.IsNotApplicable(err) {
					t.Skipf("n/a: %v", err)
				}
				startPeer(t, a, bin, w.config(listen, admin), peers.TrafficH2C)
				checkH2C(t, listen)
			})
		})
	}
}

func get(t *testing.T, c *http.Client, url, host string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// checkBalance sends 30 GETs through the peer with client c, each of
// protocol major version major, and checks their spread over the backends.
func checkBalance(t *testing.T, c *http.Client, listen string, major int) {
	t.Helper()
	seen := map[string]int{}
	const n = 30
	for range n {
		resp := get(t, c, "http://"+listen+"/", "echo", nil)
		if resp.StatusCode != http.StatusOK || resp.ProtoMajor != major {
			t.Fatalf("GET /: %s %s, want HTTP/%d 200", resp.Proto, resp.Status, major)
		}
		seen[resp.Header.Get(backends.HeaderBackend)]++
	}
	checkSpread(t, fmt.Sprintf("HTTP/%d", major), seen, n)
}

func checkHTTP1(t *testing.T, listen string) {
	c := &http.Client{Timeout: 5 * time.Second}
	checkBalance(t, c, listen, 1)

	// X-Forwarded-For appended, X-Request-Id generated or kept, Host kept.
	resp := get(t, c, "http://"+listen+"/_echo/a", "echo", map[string]string{"X-Forwarded-For": "10.1.2.3"})
	if got := resp.Header.Get("Echo-Xff"); got != "10.1.2.3, 127.0.0.1" {
		t.Errorf("X-Forwarded-For upstream = %q, want %q", got, "10.1.2.3, 127.0.0.1")
	}
	if got := resp.Header.Get("Echo-Request-Id"); got == "" {
		t.Error("no X-Request-Id generated")
	}
	if got := resp.Header.Get("Echo-Host"); got != "echo" {
		t.Errorf("Host upstream = %q, want echo", got)
	}
	resp = get(t, c, "http://"+listen+"/_echo/b", "echo", map[string]string{"X-Request-Id": "req-42"})
	if got := resp.Header.Get("Echo-Request-Id"); got != "req-42" {
		t.Errorf("X-Request-Id upstream = %q, want the client's req-42", got)
	}
	// No route: 404.
	if resp := get(t, c, "http://"+listen+"/", "other", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET with an unrouted authority: %s, want 404", resp.Status)
	}
}

func checkH2C(t *testing.T, listen string) {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	checkBalance(t, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Protocols: &p}}, listen, 2)
}

func checkGRPC(t *testing.T, listen string) {
	cc, err := grpc.NewClient("passthrough:///"+listen, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("echo"))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := testgrpc.NewTestServiceClient(cc)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	seen := map[string]int{}
	const n = 30
	for range n {
		var md metadata.MD
		resp, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 100}, grpc.Header(&md))
		if err != nil {
			t.Fatalf("UnaryCall: %v", err)
		}
		if len(resp.GetPayload().GetBody()) != 100 {
			t.Fatalf("UnaryCall: %d bytes, want 100", len(resp.GetPayload().GetBody()))
		}
		if v := md.Get(strings.ToLower(backends.HeaderBackend)); len(v) > 0 {
			seen[v[0]]++
		}
	}
	checkSpread(t, "gRPC unary", seen, n)

	// A status and its message come back in the trailers.
	_, err = c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: "gone"}})
	if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "gone" {
		t.Errorf("UnaryCall with status NOT_FOUND: %v", err)
	}

	// Server streaming: three messages, then the end of the stream.
	so, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 20}, {Size: 30}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m, err := so.Recv()
		if err != nil || len(m.GetPayload().GetBody()) != 10*(i+1) {
			t.Fatalf("server stream message %d: %v (%d bytes)", i, err, len(m.GetPayload().GetBody()))
		}
	}
	if _, err := so.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("server stream end: %v, want EOF", err)
	}

	// Client streaming: the server sums what it received.
	si, err := c.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{5, 6, 7} {
		if err := si.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, size)}}); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := si.CloseAndRecv(); err != nil || r.GetAggregatedPayloadSize() != 18 {
		t.Errorf("client stream: %v, aggregated %d, want 18", err, r.GetAggregatedPayloadSize())
	}

	// Bidirectional: each request answered before the next is sent.
	fd, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := fd.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(i + 1)}}}); err != nil {
			t.Fatal(err)
		}
		m, err := fd.Recv()
		if err != nil || len(m.GetPayload().GetBody()) != i+1 {
			t.Fatalf("bidi message %d: %v", i, err)
		}
	}
	if err := fd.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := fd.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("bidi end: %v, want EOF", err)
	}
}

// checkDrain sends the peer its drain signal while a request is in
// flight: the request must complete, and the peer must exit by itself
// within the drain timeout.
func checkDrain(t *testing.T, p *running, listen string) {
	c := &http.Client{Timeout: 5 * time.Second}
	type answer struct {
		code int
		err  error
	}
	ans := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/_echo/slow", nil)
		req.Host = "echo"
		resp, err := c.Do(req)
		if err != nil {
			ans <- answer{err: err}
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		ans <- answer{code: resp.StatusCode}
	}()
	time.Sleep(slowResponse / 3) // the request has reached the echo server
	start := time.Now()
	if err := syscall.Kill(-p.cmd.Process.Pid, p.inst.Drain); err != nil {
		t.Fatal(err)
	}
	if a := <-ans; a.err != nil || a.code != http.StatusOK {
		t.Errorf("the request in flight during the drain: %d %v, want 200", a.code, a.err)
	}
	select {
	case <-p.done:
		t.Logf("exited %v after the drain signal (%v)", time.Since(start).Round(time.Millisecond), p.inst.Drain)
	case <-time.After(time.Duration(config.DefaultDrainTimeout) + 5*time.Second):
		t.Errorf("still running %v after its drain signal %v", time.Since(start).Round(time.Second), p.inst.Drain)
	}
}

package loadgen

import (
	"context"
	"math"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/meshbench/meshbench/backends"
)

// testBackend serves HTTP/1.1 and h2c; each request sleeps delay(now).
func testBackend(t *testing.T, delay func(time.Time) time.Duration, status int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &p, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := delay(time.Now()); d > 0 {
			time.Sleep(d)
		}
		w.Header().Set("X-Backend", "b1")
		w.WriteHeader(status)
		w.Write([]byte("hello"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// startBackend runs a meshbench backend named b1 with the latency spec.
func startBackend(t *testing.T, latency string) string {
	t.Helper()
	be, err := backends.New(backends.Config{Name: "b1", HTTPAddr: "127.0.0.1:0", Latency: latency}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Shutdown(context.Background()) })
	return "http://" + be.HTTPAddr() + "/"
}

func fixed(d time.Duration) func(time.Time) time.Duration {
	return func(time.Time) time.Duration { return d }
}

func TestMergedHistogramIsTheSumOfWorkers(t *testing.T) {
	target := testBackend(t, fixed(0), 200)
	spec := Spec{Target: target, Rate: 400, Connections: 3, Duration: time.Second}
	if err := spec.normalize(); err != nil {
		t.Fatal(err)
	}
	clients, closeAll, err := newClients(context.Background(), &spec)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	start := time.Now()
	e := &engine{spec: &spec, start: start, measureStart: start, end: start.Add(time.Second), workers: 3,
		recs: []*recorder{newRecorder(), newRecorder(), newRecorder()}, secs: &seconds{}, runCtx: context.Background()}
	done := make(chan struct{})
	for i := range 3 {
		go func() { e.worker(i, clients[i], nil); done <- struct{}{} }()
	}
	for range 3 {
		<-done
	}
	r, err := e.result(false)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	sum := newHistogram()
	for _, rec := range e.recs {
		if rec.latency.TotalCount() == 0 {
			t.Error("a worker recorded nothing")
		}
		total += rec.latency.TotalCount()
		sum.Merge(rec.latency)
	}
	if r.latency.TotalCount() != total || !r.latency.Equals(sum) {
		t.Errorf("merged histogram (%d) is not the sum of the workers' (%d)", r.latency.TotalCount(), total)
	}
	dec, err := DecodeHistogram(r.Histogram)
	if err != nil || !dec.Equals(r.latency) {
		t.Errorf("encoded histogram does not decode to the merged one: %v", err)
	}
}

func TestClosedLoopAndCountBound(t *testing.T) {
	target := testBackend(t, fixed(0), 200)
	r, err := Run(context.Background(), Spec{Target: target, Connections: 2, Requests: 500})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 500 || r.RequestedRate != 0 || r.AchievedRate <= 0 {
		t.Errorf("closed loop with 500 requests: %d requests, %.0f req/s", r.Requests, r.AchievedRate)
	}
	if r.Latency != r.ServiceTime {
		t.Errorf("closed loop: response time %+v should equal service time %+v", r.Latency, r.ServiceTime)
	}
}

func TestUnsustainableRateIsExplained(t *testing.T) {
	target := testBackend(t, fixed(20*time.Millisecond), 200)
	r, err := Run(context.Background(), Spec{Target: target, Rate: 200, Connections: 1, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if r.Sustained || !strings.Contains(r.Reason, "too few connections") {
		t.Errorf("1 connection to a 20 ms backend at 200 req/s: sustained=%v reason=%q achieved=%.0f", r.Sustained, r.Reason, r.AchievedRate)
	}
}

func TestErrorClasses(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	r, err := Run(context.Background(), Spec{Target: "http://" + closed + "/", Requests: 5})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors.ByClass["connect"] != 5 {
		t.Errorf("refused connections: %v", r.Errors)
	}
	r, err = Run(context.Background(), Spec{Target: testBackend(t, fixed(0), 503), Requests: 5})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors.ByClass["http_503"] != 5 || r.Errors.Total != 5 {
		t.Errorf("503s: %v", r.Errors)
	}
	r, err = Run(context.Background(), Spec{Target: testBackend(t, fixed(time.Second), 200), Requests: 2, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors.ByClass["timeout"] != 2 {
		t.Errorf("timeouts: %v", r.Errors)
	}
}

// TestInterruptKeepsWhatWasMeasured: a run interrupted after 700 ms
// returns soon, marked incomplete, with what its schedule sent until
// then: one request per 10 ms of the measured part it reports.
func TestInterruptKeepsWhatWasMeasured(t *testing.T) {
	target := testBackend(t, fixed(time.Millisecond), 200)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(700*time.Millisecond, cancel)
	start := time.Now()
	r, err := Run(ctx, Spec{Target: target, Rate: 100, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	// A hang bound: the run stops within a request's time of the
	// interrupt, and 5 s is thousands of those.
	if took > 5*time.Second {
		t.Errorf("interrupt took %v", took)
	}
	if !r.Incomplete || r.Requests == 0 || r.DurationS > took.Seconds() {
		t.Errorf("incomplete=%v requests=%d over %.3fs of a run that returned after %v", r.Incomplete, r.Requests, r.DurationS, took)
	}
	if want := 100 * r.DurationS; math.Abs(float64(r.Requests)-want) > 2 {
		t.Errorf("%d requests kept over %.3f s at 100 req/s, want %.0f ± 2", r.Requests, r.DurationS, want)
	}
}

func TestH2C(t *testing.T) {
	target := testBackend(t, fixed(0), 200)
	r, err := Run(context.Background(), Spec{Target: target, Protocol: H2C, Connections: 1, Streams: 4, Requests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 200 || r.Errors.Total != 0 {
		t.Errorf("h2c: %d requests, errors %v", r.Requests, r.Errors)
	}
	slow := testBackend(t, fixed(time.Second), 200)
	r, err = Run(context.Background(), Spec{Target: slow, Protocol: H2C, Streams: 2, Requests: 2, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors.ByClass["timeout"] != 2 {
		t.Errorf("h2c timeouts: %v", r.Errors)
	}
}

type echoService struct {
	testgrpc.UnimplementedTestServiceServer
	calls atomic.Int64
}

func (s *echoService) UnaryCall(ctx context.Context, in *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s.calls.Add(1)
	grpc.SetHeader(ctx, metadata.Pairs("x-backend", "g1"))
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: make([]byte, in.GetResponseSize())}}, nil
}

func (s *echoService) FullDuplexCall(st testgrpc.TestService_FullDuplexCallServer) error {
	st.SetHeader(metadata.Pairs("x-backend", "g1"))
	for {
		m, err := st.Recv()
		if err != nil {
			return nil
		}
		s.calls.Add(1)
		if err := st.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, m.GetResponseParameters()[0].GetSize())}}); err != nil {
			return err
		}
	}
}

func TestGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &echoService{}
	gs := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(gs, svc)
	go gs.Serve(ln)
	defer gs.Stop()
	for _, mode := range []string{GRPCUnary, GRPCStream} {
		before := svc.calls.Load()
		r, err := Run(context.Background(), Spec{Target: ln.Addr().String(), Protocol: GRPC, GRPCMode: mode, Connections: 2, Streams: 2, Requests: 300, ResponseSize: 100})
		if err != nil {
			t.Fatal(err)
		}
		if r.Requests != 300 || r.Errors.Total != 0 || r.Endpoints["g1"] != 300 || svc.calls.Load()-before < 300 {
			t.Errorf("%s: %d requests, errors %v, endpoints %v, server calls %d", mode, r.Requests, r.Errors, r.Endpoints, svc.calls.Load()-before)
		}
	}
}

func TestSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Target: "http://x/", Protocol: "spdy", Requests: 1}, `protocol "spdy"`},
		{Spec{Target: "http://x/"}, "a run must end by itself"},
		{Spec{Target: "ftp://x/", Requests: 1}, "want an http:// or https:// URL"},
		{Spec{Target: "http://x/", Protocol: H2, Requests: 1}, "needs https://"},
		{Spec{Target: "http://x/", Streams: 4, Requests: 1}, "HTTP/1.1 carries one request at a time"},
		{Spec{Target: "http://x/", Rate: -1, Requests: 1}, "rate -1"},
		{Spec{Target: "x", Protocol: GRPC, Requests: 1}, "want host:port"},
		{Spec{Target: "http://x/", Arrival: "burst", Requests: 1}, `arrival "burst"`},
	} {
		_, err := Run(context.Background(), tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to contain %q", tc.spec, err, tc.want)
		}
	}
}

func TestExports(t *testing.T) {
	target := testBackend(t, fixed(0), 200)
	r, err := Run(context.Background(), Spec{Target: target, Rate: 300, Connections: 2, Duration: 2 * time.Second, Labels: map[string]string{"cell": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.StatusCodes["200"] != r.Requests {
		t.Errorf("status codes %v for %d requests", r.StatusCodes, r.Requests)
	}
	var buf strings.Builder
	if err := WriteIntervalLog(&buf, r); err != nil {
		t.Fatal(err)
	}
	log := buf.String()
	var total int64
	intervals := 0
	for _, line := range strings.Split(log, "\n") {
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, `"`) {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) != 4 {
			t.Fatalf("interval line %q", line)
		}
		h, err := DecodeHistogram(f[3])
		if err != nil {
			t.Fatal(err)
		}
		total += h.TotalCount()
		intervals++
	}
	if intervals != 2 || !strings.Contains(log, "#[StartTime:") {
		t.Errorf("%d intervals in log:\n%s", intervals, log)
	}
	if total > r.Requests || total < r.Requests-10 {
		t.Errorf("interval log holds %d requests, the run %d", total, r.Requests)
	}
	f := r.Fortio()
	if f.DurationHistogram.Count != r.Requests || f.RequestedQPS != "300" || f.URL != target || f.Labels != "cell=a" || f.RetCodes["200"] != r.Requests {
		t.Errorf("fortio result: %+v", f)
	}
	last := f.DurationHistogram.Data[len(f.DurationHistogram.Data)-1]
	if last.Percent != 100 || f.DurationHistogram.Percentiles[0].Value != float64(r.Latency.P50)/1e6 {
		t.Errorf("fortio histogram: last bucket %+v, p50 %+v", last, f.DurationHistogram.Percentiles[0])
	}
}

// startNamedBackend runs a meshbench backend with the given name and
// returns its HTTP URL and gRPC address.
func startNamedBackend(t *testing.T, name string) (string, string) {
	t.Helper()
	return startHTTPGRPCBackend(t, name, backends.Config{})
}

// TestTargetsSpreadConnections: with two targets and four connections in
// open loop, each target gets two connections and so about half the
// requests, over HTTP/1.1, h2c and gRPC alike.
func TestTargetsSpreadConnections(t *testing.T) {
	a, ga := startNamedBackend(t, "pod-a")
	b, gb := startNamedBackend(t, "pod-b")
	for _, proto := range []string{HTTP1, H2C, GRPC} {
		a, b := a, b
		if proto == GRPC {
			a, b = ga, gb
		}
		r, err := Run(context.Background(), Spec{Targets: []string{a, b}, Protocol: proto, Rate: 200, Connections: 4, Duration: time.Second, SpinWindow: -1})
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors.Total != 0 || r.Requests == 0 {
			t.Fatalf("%s: %d requests, errors %v", proto, r.Requests, r.Errors)
		}
		na, nb := r.Endpoints["pod-a"], r.Endpoints["pod-b"]
		if na+nb != r.Requests || na < r.Requests*4/10 || nb < r.Requests*4/10 {
			t.Errorf("%s: endpoints %v for %d requests, want about half each", proto, r.Endpoints, r.Requests)
		}
		if r.Target != a || len(r.Targets) != 2 || r.Targets[0] != a || r.Targets[1] != b {
			t.Errorf("%s: result target %q, targets %v", proto, r.Target, r.Targets)
		}
	}
	r, err := Run(context.Background(), Spec{Target: a, Connections: 2, Requests: 10})
	if err != nil {
		t.Fatal(err)
	}
	if r.Targets != nil || r.Endpoints["pod-a"] != 10 {
		t.Errorf("single target: targets %v, endpoints %v", r.Targets, r.Endpoints)
	}
}

func TestTargetsErrors(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Targets: []string{"http://a/", "http://b/"}, Connections: 1, Requests: 1}, "fewer than the 2 targets"},
		{Spec{Targets: []string{"http://a/", "http://b/", "http://c/"}, Connections: 2, Requests: 1}, "fewer than the 3 targets"},
		{Spec{Target: "http://b/", Targets: []string{"http://a/", "http://b/"}, Connections: 2, Requests: 1}, "must be empty or the first"},
		{Spec{Targets: []string{"http://a/", "ftp://b/"}, Connections: 2, Requests: 1}, `target "ftp://b/"`},
		{Spec{Targets: []string{"127.0.0.1:1", "b"}, Protocol: GRPC, Connections: 2, Requests: 1}, `target "b": want host:port`},
	} {
		_, err := Run(context.Background(), tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to contain %q", tc.spec, err, tc.want)
		}
	}
}

package loadgen

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
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
			preciseSleep(d)
		}
		w.Header().Set("X-Backend", "b1")
		w.WriteHeader(status)
		w.Write([]byte("hello"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/"
}

// startBackend runs a meshbench backend named b1 with the latency spec,
// its delays made precise with a 1.5 ms spin window.
func startBackend(t *testing.T, latency string) string {
	t.Helper()
	be, err := backends.New(backends.Config{Name: "b1", HTTPAddr: "127.0.0.1:0", Latency: latency, Spin: 1500 * time.Microsecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Shutdown(context.Background()) })
	return "http://" + be.HTTPAddr() + "/"
}

// preciseSleep sleeps d, spinning the last 1.5 ms: the test measures the
// load generator, so the backend's own timer lateness must not blur it.
func preciseSleep(d time.Duration) {
	until := time.Now().Add(d)
	if s := d - 1500*time.Microsecond; s > 0 {
		time.Sleep(s)
	}
	for time.Now().Before(until) {
		runtime.Gosched()
	}
}

func fixed(d time.Duration) func(time.Time) time.Duration {
	return func(time.Time) time.Duration { return d }
}

// TestOpenLoopAccuracy: against a backend with a fixed 2 ms delay (made
// precise with its spin window) at 200 req/s, p50 and p99 fall within
// 2.0–2.3 ms (the p99 may instead stay within 500 µs of the service time
// when the backend itself is delayed by a busy machine) and the achieved
// rate within 1% of the requested. The machine is shared, so one of up to
// three runs must meet the bounds; an inaccurate generator fails all three.
func TestOpenLoopAccuracy(t *testing.T) {
	target := startBackend(t, "fixed:2ms")
	var problems []string
	for attempt := 1; attempt <= 3; attempt++ {
		r, err := Run(context.Background(), Spec{Target: target, Rate: 200, Connections: 4, Duration: 4 * time.Second, Warmup: 500 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("attempt %d: achieved %.1f req/s, p50 %dµs p99 %dµs, service p99 %dµs", attempt, r.AchievedRate, r.Latency.P50, r.Latency.P99, r.ServiceTime.P99)
		problems = problems[:0]
		if r.AchievedRate < 198 || r.AchievedRate > 202 {
			problems = append(problems, fmt.Sprintf("achieved %.2f req/s, want within 1%% of 200", r.AchievedRate))
		}
		if !r.Sustained || r.Errors.Total != 0 {
			problems = append(problems, fmt.Sprintf("sustained=%v reason=%q errors=%v", r.Sustained, r.Reason, r.Errors))
		}
		if r.Latency.P50 < 2000 || r.Latency.P50 > 2300 {
			problems = append(problems, fmt.Sprintf("p50 = %dµs, want within 2.0–2.3 ms", r.Latency.P50))
		}
		// The p99 must be the backend's: within 2.0–2.3 ms, or, when the
		// shared machine delays the backend itself, no more than 500 µs
		// above the service-time p99 (what the generator's own lateness
		// adds).
		if r.Latency.P99 < 2000 || (r.Latency.P99 > 2300 && r.Latency.P99-r.ServiceTime.P99 > 500) {
			problems = append(problems, fmt.Sprintf("p99 = %dµs (service p99 %dµs), want within 2.0–2.3 ms or within 500 µs of the service time", r.Latency.P99, r.ServiceTime.P99))
		}
		if r.Endpoints["b1"] != r.Requests {
			problems = append(problems, fmt.Sprintf("per-backend counts %v for %d requests", r.Endpoints, r.Requests))
		}
		if len(r.Timeseries) != 4 {
			problems = append(problems, fmt.Sprintf("%d seconds in the time series, want 4", len(r.Timeseries)))
		}
		if len(problems) == 0 {
			return
		}
	}
	t.Errorf("no run met the bounds; the last one: %s", strings.Join(problems, "; "))
}

// TestStallsShowInResponseTime: a backend that pauses every 3 s for 300 ms
// (like a GC pause). Measured from the intended send time, the stalls reach
// the p99; measured from the actual send they do not.
func TestStallsShowInResponseTime(t *testing.T) {
	target := startBackend(t, "fixed:1ms,stall:3s/300ms")
	r, err := Run(context.Background(), Spec{Target: target, Rate: 200, Connections: 4, Duration: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("response p99 %dµs, service p99 %dµs", r.Latency.P99, r.ServiceTime.P99)
	if r.Latency.P99 < 100_000 {
		t.Errorf("response-time p99 %dµs does not reflect 300 ms stalls", r.Latency.P99)
	}
	if r.ServiceTime.P99 >= 100_000 {
		t.Errorf("service-time p99 %dµs: coordinated omission should hide the stalls here", r.ServiceTime.P99)
	}
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

func TestInterruptKeepsWhatWasMeasured(t *testing.T) {
	target := testBackend(t, fixed(time.Millisecond), 200)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(700*time.Millisecond, cancel)
	start := time.Now()
	r, err := Run(ctx, Spec{Target: target, Rate: 100, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("interrupt took %v", time.Since(start))
	}
	if !r.Incomplete || r.Requests < 30 || r.Requests > 100 {
		t.Errorf("incomplete=%v requests=%d", r.Incomplete, r.Requests)
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
	be, err := backends.New(backends.Config{Name: name, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Shutdown(context.Background()) })
	return "http://" + be.HTTPAddr() + "/", be.GRPCAddr()
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
		if r.Errors.Total != 0 || r.Requests < 150 {
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

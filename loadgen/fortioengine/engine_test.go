package fortioengine

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/meshbench/meshbench/backends"
	"github.com/meshbench/meshbench/loadgen"
)

// TestRecordsWhatFortioMeasured runs HTTP/1.1 and h2c load and checks the
// result against fortio's own figures of the same run: every request
// fortio timed is in the histogram with the time fortio gave it.
func TestRecordsWhatFortioMeasured(t *testing.T) {
	b := startBackend(t, backends.Config{Name: "b1", Latency: "fixed:1ms"})
	for _, proto := range []string{loadgen.HTTP1, loadgen.H2C} {
		t.Run(proto, func(t *testing.T) {
			spec := loadgen.Spec{Target: httpTarget(b), Protocol: proto, Rate: 200, Connections: 2,
				Duration: 2 * time.Second, Warmup: 300 * time.Millisecond, Labels: map[string]string{"cell": "a"}}
			r, fortio, err := run(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			f := fortio[0]
			// 200 req/s for 2 s; a thread that falls behind on a busy
			// machine makes a few less.
			if r.Requests != f.DurationHistogram.Count || r.Requests < 390 || r.Requests > 400 {
				t.Errorf("requests %d, fortio counted %d, want about 400", r.Requests, f.DurationHistogram.Count)
			}
			// Our histogram keeps 3 significant digits of each time.
			if fm := f.DurationHistogram.Avg * 1e6; math.Abs(r.Latency.Mean-fm) > 0.002*fm {
				t.Errorf("mean response time %.1fµs, fortio's %.1fµs", r.Latency.Mean, fm)
			}
			if r.Engine != Engine || r.Protocol != proto || r.Connections != 2 || r.Labels["cell"] != "a" || r.Arrival != loadgen.Uniform {
				t.Errorf("engine %q protocol %q connections %d labels %v arrival %q", r.Engine, r.Protocol, r.Connections, r.Labels, r.Arrival)
			}
			if r.Sustained != (r.AchievedRate >= 0.99*200) || r.DurationS != 2 || math.Abs(r.AchievedRate-float64(r.Requests)/2) > 0.01 {
				t.Errorf("sustained %v (%s), duration %vs, achieved %.1f req/s", r.Sustained, r.Reason, r.DurationS, r.AchievedRate)
			}
			if r.Endpoints["b1"] != r.Requests || r.StatusCodes["200"] != r.Requests || r.Errors.Total != 0 {
				t.Errorf("endpoints %v, status codes %v, errors %v", r.Endpoints, r.StatusCodes, r.Errors)
			}
			if r.ServiceTime != r.Latency || r.ServiceHistogram != r.Histogram {
				t.Errorf("service time %+v differs from response time %+v", r.ServiceTime, r.Latency)
			}
			h, err := loadgen.DecodeHistogram(r.Histogram)
			if err != nil || h.TotalCount() != r.Requests || h.ValueAtQuantile(50) != r.Latency.P50 {
				t.Errorf("encoded histogram: %v, %d values", err, h.TotalCount())
			}
			if len(r.Timeseries) != 2 || r.Timeseries[0].Rate+r.Timeseries[1].Rate < 0.95*float64(r.Requests) {
				t.Errorf("time series %+v", r.Timeseries)
			}
			checkIntervalLog(t, r)
		})
	}
}

// checkIntervalLog checks that loadgen.WriteIntervalLog writes one
// interval per second of the result.
func checkIntervalLog(t *testing.T, r *loadgen.Result) {
	t.Helper()
	var buf bytes.Buffer
	if err := loadgen.WriteIntervalLog(&buf, r); err != nil {
		t.Fatal(err)
	}
	rd := hdrhistogram.NewHistogramLogReader(&buf)
	var n int
	var count int64
	for {
		h, err := rd.NextIntervalHistogram()
		if err != nil {
			t.Fatal(err)
		}
		if h == nil {
			break
		}
		n++
		count += h.TotalCount()
	}
	if n != int(r.DurationS) || count < r.Requests*95/100 {
		t.Errorf("interval log: %d intervals with %d requests, want %d with about %d", n, count, int(r.DurationS), r.Requests)
	}
}

// tlsServer runs an HTTPS server on 127.0.0.1 with HTTP/2 or without, and
// writes its certificate to a CA file.
func tlsServer(t *testing.T, h2 bool) (url, caFile string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", r.Proto)
	}))
	srv.EnableHTTP2 = h2
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/", caFile
}

// TestTLS runs HTTP/1.1 over TLS with a CA file and h2 against servers
// with and without HTTP/2: a server that answers h2 requests over
// HTTP/1.1 is refused, not measured as a substitute.
func TestTLS(t *testing.T) {
	h2URL, h2CA := tlsServer(t, true)
	h1URL, h1CA := tlsServer(t, false)
	for _, c := range []struct {
		proto, url, ca string
		backend        string // the protocol the server saw; "" for an error
	}{
		{loadgen.HTTP1, h1URL, h1CA, "HTTP/1.1"},
		{loadgen.H2, h2URL, h2CA, "HTTP/2.0"},
		{loadgen.H2, h1URL, h1CA, ""},
	} {
		spec := loadgen.Spec{Target: c.url, Protocol: c.proto, Rate: 100, Connections: 1, Duration: 500 * time.Millisecond,
			TLS: loadgen.TLSOptions{CAFile: c.ca}}
		r, err := Run(context.Background(), spec)
		if c.backend == "" {
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "not HTTP/2") {
				t.Errorf("%s against an HTTP/1.1-only server: %v, want a refusal", c.proto, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.proto, err)
		}
		if r.Endpoints[c.backend] != r.Requests || r.Requests < 45 || r.Requests > 50 {
			t.Errorf("%s: %d requests, server saw %v", c.proto, r.Requests, r.Endpoints)
		}
	}
}

// TestErrorClasses makes requests fail in each way fortio's clients can
// tell apart.
func TestErrorClasses(t *testing.T) {
	failing := startBackend(t, backends.Config{ErrorRate: 1})
	slow := startBackend(t, backends.Config{Latency: "fixed:300ms"})
	closed := "http://" + closedPort(t) + "/"
	for _, c := range []struct {
		name, proto, target, class string
	}{
		{"503", loadgen.HTTP1, httpTarget(failing), "http_503"},
		{"503 h2c", loadgen.H2C, httpTarget(failing), "http_503"},
		{"refused", loadgen.HTTP1, closed, "connect"},
		{"refused h2c", loadgen.H2C, closed, "connect"},
		{"timeout", loadgen.HTTP1, httpTarget(slow), "timeout"},
		{"timeout h2c", loadgen.H2C, httpTarget(slow), "timeout"},
	} {
		spec := loadgen.Spec{Target: c.target, Protocol: c.proto, Rate: 20, Connections: 1, Duration: 500 * time.Millisecond, Timeout: 50 * time.Millisecond}
		r, err := Run(context.Background(), spec)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Requests == 0 || r.Errors.Total != r.Requests || r.Errors.ByClass[c.class] != r.Requests {
			t.Errorf("%s: %d requests, errors %+v, want all %s", c.name, r.Requests, r.Errors, c.class)
		}
	}
}

// TestTargetsSpreadConnections spreads four connections over two
// backends, as loadgen does.
func TestTargetsSpreadConnections(t *testing.T) {
	b1 := startBackend(t, backends.Config{Name: "b1"})
	b2 := startBackend(t, backends.Config{Name: "b2"})
	spec := loadgen.Spec{Targets: []string{httpTarget(b1), httpTarget(b2)}, Rate: 200, Connections: 4, Duration: time.Second}
	r, err := Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	n1, n2 := r.Endpoints["b1"], r.Endpoints["b2"]
	if n1+n2 != r.Requests || n1 < 90 || n2 < 90 || n1 > 100 || n2 > 100 || len(r.Targets) != 2 || r.Target != httpTarget(b1) {
		t.Errorf("endpoints %v, targets %v, target %s", r.Endpoints, r.Targets, r.Target)
	}
}

// TestGRPCHealthCheck runs fortio's gRPC runner against a server with the
// health service, serving and then not serving.
func TestGRPCHealthCheck(t *testing.T) {
	addr, hs := startHealthServer(t)
	spec := loadgen.Spec{Target: addr, Protocol: loadgen.GRPC, Rate: 200, Connections: 2, Streams: 2, Duration: time.Second,
		Authority: "health.test", Header: http.Header{"X-Test": {"1"}}}
	r, err := Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests < 190 || r.Requests > 200 || r.StatusCodes["OK"] != r.Requests || r.Errors.Total != 0 || r.Connections != 2 || r.Streams != 2 {
		t.Errorf("%d requests, status codes %v, errors %+v, %d connections × %d streams", r.Requests, r.StatusCodes, r.Errors, r.Connections, r.Streams)
	}
	if rt, _ := r.Env["fortio_run_type"].(string); !strings.Contains(rt, "Health") {
		t.Errorf("fortio run type %q", rt)
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	spec.Duration, spec.Requests = 0, 40
	r, err = Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 40 || r.Errors.ByClass["health_NOT_SERVING"] != 40 {
		t.Errorf("not serving: %d requests, errors %+v", r.Requests, r.Errors)
	}
}

// TestGRPCAgainstTheBackends: meshbench's backends answer the health
// check fortio's gRPC runner makes with their personality, so fortio
// measures their delay as meshbench's engine does with UnaryCall. (Fortio
// stops its gRPC runner when its first call fails, so a backend with an
// error rate can stop a fortio run at its start.)
func TestGRPCAgainstTheBackends(t *testing.T) {
	b := startBackend(t, backends.Config{GRPCAddr: "127.0.0.1:0", Latency: "fixed:3ms"})
	spec := loadgen.Spec{Target: b.GRPCAddr(), Protocol: loadgen.GRPC, Rate: 100, Connections: 2, Duration: time.Second}
	r, err := Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests < 90 || r.Latency.P50 < 3000 || r.Errors.Total != 0 || r.StatusCodes["OK"] != r.Requests {
		t.Errorf("%d requests, p50 %d µs (want ≥ 3 ms), errors %+v, statuses %v", r.Requests, r.Latency.P50, r.Errors, r.StatusCodes)
	}
	own, err := loadgen.Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gRPC p50: fortio (health check) %d µs, meshbench (UnaryCall) %d µs", r.Latency.P50, own.Latency.P50)
}

// TestUnsupportedFieldsAreNamed: every spec field fortio cannot honour is
// refused with its name, before any load.
func TestUnsupportedFieldsAreNamed(t *testing.T) {
	httpT := "http://127.0.0.1:1/"
	grpcT := "127.0.0.1:1"
	for _, c := range []struct {
		field string
		spec  loadgen.Spec
	}{
		{"Mix", loadgen.Spec{Mix: []loadgen.Stream{{Name: "a"}}}},
		{"Search", loadgen.Spec{Target: httpT, Duration: time.Second, Search: &loadgen.SearchSpec{}}},
		{"Arrival", loadgen.Spec{Target: httpT, Rate: 10, Duration: time.Second, Arrival: loadgen.Poisson}},
		{"Seed", loadgen.Spec{Target: httpT, Rate: 10, Duration: time.Second, Seed: 1}},
		{"SpinWindow", loadgen.Spec{Target: httpT, Rate: 10, Duration: time.Second, SpinWindow: time.Millisecond}},
		{"MaxSendLag", loadgen.Spec{Target: httpT, Rate: 10, Duration: time.Second, MaxSendLag: time.Millisecond}},
		{"MaxConnectionWaits", loadgen.Spec{Target: httpT, Rate: 10, Duration: time.Second, MaxConnectionWaits: 0.1}},
		{"Requests", loadgen.Spec{Target: httpT, Duration: time.Second, Requests: 10}},
		{"ResponseSize", loadgen.Spec{Target: grpcT, Protocol: loadgen.GRPC, Duration: time.Second, ResponseSize: 10}},
		{"GRPCMode", loadgen.Spec{Target: grpcT, Protocol: loadgen.GRPC, Duration: time.Second, GRPCMode: loadgen.GRPCStream}},
		{"BodySize", loadgen.Spec{Target: grpcT, Protocol: loadgen.GRPC, Duration: time.Second, BodySize: 10}},
		{"Method", loadgen.Spec{Target: grpcT, Protocol: loadgen.GRPC, Duration: time.Second, Method: "POST"}},
		{"Streams", loadgen.Spec{Target: httpT, Protocol: loadgen.H2C, Duration: time.Second, Streams: 2}},
		{"NewConnectionPerRequest", loadgen.Spec{Target: httpT, Protocol: loadgen.H2C, Duration: time.Second, NewConnectionPerRequest: true}},
		{"NewConnectionPerRequest", loadgen.Spec{Target: grpcT, Protocol: loadgen.GRPC, Duration: time.Second, NewConnectionPerRequest: true}},
		{"TLS.ServerName", loadgen.Spec{Target: "https://127.0.0.1:1/", Duration: time.Second, TLS: loadgen.TLSOptions{ServerName: "other"}}},
	} {
		start := time.Now()
		_, err := Run(context.Background(), c.spec)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), c.field+":") {
			t.Errorf("%s: %v, want an ErrUnsupported naming the field", c.field, err)
		}
		if el := time.Since(start); el > 500*time.Millisecond {
			t.Errorf("%s: refused after %v: load was sent", c.field, el)
		}
	}
	// An invalid spec is loadgen's error, not fortio's.
	if _, err := Run(context.Background(), loadgen.Spec{Target: httpT}); err == nil || errors.Is(err, ErrUnsupported) {
		t.Errorf("spec without a duration: %v", err)
	}
}

// TestInterruptKeepsWhatWasMeasured cancels a run: it returns soon, marked
// incomplete, with the requests completed until then.
func TestInterruptKeepsWhatWasMeasured(t *testing.T) {
	b := startBackend(t, backends.Config{Latency: "fixed:1ms"})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	r, err := Run(ctx, loadgen.Spec{Target: httpTarget(b), Rate: 100, Connections: 2, Duration: 20 * time.Second, Warmup: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("returned after %v", el)
	}
	if !r.Incomplete || r.DurationS <= 0 || r.DurationS > 1.3 || math.Abs(r.AchievedRate-100) > 15 {
		t.Errorf("incomplete %v, duration %vs, %d requests, %.1f req/s", r.Incomplete, r.DurationS, r.Requests, r.AchievedRate)
	}
}

// TestProgressAndClosedLoop runs closed loop (fortio's max qps) for a
// count of requests, with progress reports.
func TestProgressAndClosedLoop(t *testing.T) {
	b := startBackend(t, backends.Config{Latency: "fixed:2ms"})
	var seconds []loadgen.Second
	spec := loadgen.Spec{Target: httpTarget(b), Connections: 2, Requests: 1200, Progress: func(s loadgen.Second) { seconds = append(seconds, s) }}
	r, err := Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 1200 || r.RequestedRate != 0 || !r.Sustained || r.Arrival != "" {
		t.Errorf("%d requests, requested %v, sustained %v, arrival %q", r.Requests, r.RequestedRate, r.Sustained, r.Arrival)
	}
	// Two connections at 2 ms carry at most 1000 req/s: more than a second.
	if len(seconds) == 0 || seconds[0].Rate == 0 {
		t.Errorf("progress %+v", seconds)
	}
}

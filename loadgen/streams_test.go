package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbench/meshbench/backends"
)

// startHTTPGRPCBackend runs a meshbench backend with HTTP and gRPC ports.
func startHTTPGRPCBackend(t *testing.T, name string, cfg backends.Config) (httpURL, grpcAddr string) {
	t.Helper()
	cfg.Name, cfg.HTTPAddr, cfg.GRPCAddr = name, "127.0.0.1:0", "127.0.0.1:0"
	be, err := backends.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := be.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Shutdown(context.Background()) })
	return "http://" + be.HTTPAddr() + "/", be.GRPCAddr()
}

func TestMixRunsStreamsAtOnceAndMergesThem(t *testing.T) {
	httpURL, _ := startHTTPGRPCBackend(t, "h", backends.Config{Latency: "fixed:1ms"})
	_, grpcAddr := startHTTPGRPCBackend(t, "g", backends.Config{Latency: "fixed:6ms"})
	spec := Spec{Rate: 400, Duration: 2 * time.Second, Warmup: 300 * time.Millisecond, Labels: map[string]string{"cell": "x"}, MaxSendLag: 50 * time.Millisecond,
		Mix: []Stream{
			{Name: "http", Protocol: HTTP1, Targets: []string{httpURL}, Share: 0.75, Connections: 8},
			{Name: "grpc", Protocol: GRPC, Targets: []string{grpcAddr}, Share: 0.25, Connections: 4, Streams: 2},
		}}
	var seconds []Second
	spec.Progress = func(s Second) { seconds = append(seconds, s) }
	r, err := Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Mix) != 2 || r.Mix[0].Stream != "http" || r.Mix[1].Stream != "grpc" {
		t.Fatalf("mix: %d parts %+v", len(r.Mix), r.Mix)
	}
	h, g := r.Mix[0], r.Mix[1]
	if r.Protocol != ProtocolMix || h.Protocol != HTTP1 || g.Protocol != GRPC || h.Labels["stream"] != "http" || r.Labels["cell"] != "x" {
		t.Errorf("protocols %s/%s/%s, labels %v %v", r.Protocol, h.Protocol, g.Protocol, h.Labels, r.Labels)
	}
	if h.RequestedRate != 300 || g.RequestedRate != 100 || r.RequestedRate != 400 {
		t.Errorf("requested rates %v + %v = %v, want 300 + 100 = 400", h.RequestedRate, g.RequestedRate, r.RequestedRate)
	}
	for _, p := range []Result{h, g} {
		if math.Abs(p.AchievedRate-p.RequestedRate) > 0.05*p.RequestedRate || p.Errors.Total != 0 || p.Invalid != "" {
			t.Errorf("stream %s: achieved %.1f of %.0f, errors %d, invalid %q", p.Stream, p.AchievedRate, p.RequestedRate, p.Errors.Total, p.Invalid)
		}
	}
	if r.Requests != h.Requests+g.Requests || r.LatencyHistogram().TotalCount() != r.Requests {
		t.Errorf("merged %d requests (histogram %d), streams %d + %d", r.Requests, r.LatencyHistogram().TotalCount(), h.Requests, g.Requests)
	}
	if r.Endpoints["h"] != h.Requests || r.Endpoints["g"] != g.Requests {
		t.Errorf("endpoints %v", r.Endpoints)
	}
	// Each stream keeps its own latency: 1 ms HTTP, 6 ms gRPC; the merge
	// is three quarters HTTP.
	if hp, gp := time.Duration(h.Latency.P50)*time.Microsecond, time.Duration(g.Latency.P50)*time.Microsecond; hp >= 4*time.Millisecond || gp < 6*time.Millisecond {
		t.Errorf("p50 http %v (want 1ms and a bit), grpc %v (want 6ms and a bit)", hp, gp)
	}
	if r.Latency.P50 > h.Latency.P99 || r.Latency.P99 < g.Latency.P50 {
		t.Errorf("merged p50 %d p99 %d µs, http p99 %d, grpc p50 %d", r.Latency.P50, r.Latency.P99, h.Latency.P99, g.Latency.P50)
	}
	var sum float64
	for _, s := range r.Timeseries {
		sum += s.Rate
	}
	if len(r.Timeseries) != 2 || int64(sum) > r.Requests || len(seconds) < 1 || seconds[0].Rate < 300 {
		t.Errorf("timeseries %+v (sum %.0f of %d), progress %+v", r.Timeseries, sum, r.Requests, seconds)
	}
}

func TestMixErrors(t *testing.T) {
	u := "http://127.0.0.1:1/"
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Target: u, Duration: time.Second, Mix: []Stream{{Name: "a", Protocol: HTTP1, Targets: []string{u}, Rate: 1, Connections: 1}}}, "leave the target empty"},
		{Spec{Duration: time.Second, Mix: []Stream{{Protocol: HTTP1, Targets: []string{u}, Rate: 1, Connections: 1}}}, "no name"},
		{Spec{Duration: time.Second, Mix: []Stream{{Name: "a", Protocol: HTTP1, Targets: []string{u}, Rate: 1, Connections: 1}, {Name: "a", Protocol: HTTP1, Targets: []string{u}, Rate: 1, Connections: 1}}}, "name used twice"},
		{Spec{Duration: time.Second, Mix: []Stream{{Name: "a", Protocol: HTTP1, Targets: []string{u}, Share: 0.5, Connections: 1}}}, "a share of no total rate"},
		{Spec{Rate: 10, Duration: time.Second, Mix: []Stream{{Name: "a", Protocol: HTTP1, Targets: []string{u}, Share: 0.5, Rate: 3, Connections: 1}}}, "set one"},
		{Spec{Duration: time.Second, Mix: []Stream{{Name: "a", Protocol: HTTP1, Targets: []string{u}, Connections: 1}}}, "neither a share nor a rate"},
		{Spec{Rate: 10, Duration: time.Second, Mix: []Stream{{Name: "a", Protocol: "spdy", Targets: []string{u}, Share: 1, Connections: 1}}}, `protocol "spdy"`},
	} {
		_, err := Run(context.Background(), tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.spec.Mix, err, tc.want)
		}
	}
}

func TestValidity(t *testing.T) {
	quick := startBackend(t, "fixed:1ms")
	slow := testBackend(t, fixed(10*time.Millisecond), 200)
	// A send-lag bound far above what a busy machine adds: this run is
	// about the classification, the late generator below about the bound.
	ok, err := Run(context.Background(), Spec{Target: quick, Rate: 200, Connections: 4, Duration: 2 * time.Second, MaxSendLag: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if ok.Invalid != "" || ok.ConnectionWaits != 0 || ok.SendLag.Count != ok.Requests {
		t.Errorf("a kept schedule: invalid %q, %d connection waits, send lag of %d of %d requests", ok.Invalid, ok.ConnectionWaits, ok.SendLag.Count, ok.Requests)
	}
	// 2 connections to a 10 ms backend carry 200 req/s at most.
	few, err := Run(context.Background(), Spec{Target: slow, Rate: 300, Connections: 2, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(few.Invalid, "too few connections") || !strings.Contains(few.Invalid, "rate not sustained") || few.ConnectionWaits < few.Requests/2 {
		t.Errorf("too few connections: invalid %q, %d connection waits of %d requests", few.Invalid, few.ConnectionWaits, few.Requests)
	}
	// A generator whose sends leave 8 ms late with free connections.
	late, err := run(context.Background(), Spec{Target: quick, Rate: 200, Connections: 4, Duration: 2 * time.Second}, faults{late: 8 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(late.Invalid, "late sends") || strings.Contains(late.Invalid, "too few connections") || late.SendLag.P50 < 8000 {
		t.Errorf("late generator: invalid %q, send lag p50 %d µs", late.Invalid, late.SendLag.P50)
	}
	// Closed loop has no schedule to keep.
	closed, err := Run(context.Background(), Spec{Target: quick, Connections: 2, Requests: 200})
	if err != nil {
		t.Fatal(err)
	}
	if closed.Invalid != "" || closed.SendLag.Count != 0 {
		t.Errorf("closed loop: invalid %q, send lag %+v", closed.Invalid, closed.SendLag)
	}
}

func TestNewConnectionPerRequest(t *testing.T) {
	for _, tls := range []bool{false, true} {
		var conns atomic.Int64
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		if tls {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		for _, fresh := range []bool{false, true} {
			conns.Store(0)
			spec := Spec{Target: srv.URL + "/", Rate: 100, Connections: 2, Requests: 100, Duration: 5 * time.Second, NewConnectionPerRequest: fresh}
			spec.TLS.Insecure = true
			r, err := Run(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			want := int64(2)
			if fresh {
				want = r.Requests
			}
			if r.Requests != 100 || r.Errors.Total != 0 || conns.Load() != want || r.NewConnectionPerRequest != fresh {
				t.Errorf("tls %v, new connection per request %v: %d requests, %d errors, %d connections, want %d", tls, fresh, r.Requests, r.Errors.Total, conns.Load(), want)
			}
		}
		srv.Close()
	}
	_, err := Run(context.Background(), Spec{Target: "http://127.0.0.1:1/", Protocol: H2C, Requests: 1, NewConnectionPerRequest: true})
	if err == nil || !strings.Contains(err.Error(), "HTTP/1.1 only") {
		t.Errorf("h2c with a connection per request: %v", err)
	}
}

// TestMergeGenerators: two generators' results, decoded from JSON as a
// runner reads them and given back their interval logs, merge into the
// histograms and seconds of both — the same as merging them in memory.
func TestMergeGenerators(t *testing.T) {
	quick := testBackend(t, fixed(time.Millisecond), 200)
	slow := testBackend(t, fixed(4*time.Millisecond), 200)
	start := time.Now().Add(100 * time.Millisecond)
	var parts [2]*Result
	var errs [2]error
	done := make(chan int)
	for i, target := range []string{quick, slow} {
		go func() {
			parts[i], errs[i] = Run(context.Background(), Spec{Target: target, Rate: 100, Connections: 2, Duration: 2 * time.Second,
				Start: start, Labels: map[string]string{"generator": []string{"0", "1"}[i]}})
			done <- i
		}()
	}
	<-done
	<-done
	var decoded []*Result
	for i, p := range parts {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !p.Start.Equal(start) {
			t.Errorf("generator %d measured from %v, not the common start %v", i, p.Start, start)
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var d Result
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		if err := WriteIntervalLog(&log, p); err != nil {
			t.Fatal(err)
		}
		if err := AttachIntervalLog(&d, &log); err != nil {
			t.Fatal(err)
		}
		decoded = append(decoded, &d)
	}
	inMemory, err := Merge(parts[:])
	if err != nil {
		t.Fatal(err)
	}
	m, err := Merge(decoded)
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests != parts[0].Requests+parts[1].Requests || m.RequestedRate != 200 || m.Latency != inMemory.Latency {
		t.Errorf("merged %d requests at %v req/s, latency %+v; in memory %+v", m.Requests, m.RequestedRate, m.Latency, inMemory.Latency)
	}
	// Half the requests take 1 ms, half 4 ms: the merged p90 is the slow
	// one's, the p50 between them — not an average of percentiles.
	if m.Latency.P90 < 4000 || m.Latency.P50 > parts[1].Latency.P50 {
		t.Errorf("merged p50 %d p90 %d µs; generators p50 %d and %d", m.Latency.P50, m.Latency.P90, parts[0].Latency.P50, parts[1].Latency.P50)
	}
	if len(m.Timeseries) != 2 || m.Timeseries[0] != inMemory.Timeseries[0] || m.Timeseries[0].Rate < 150 {
		t.Errorf("merged seconds %+v, in memory %+v", m.Timeseries, inMemory.Timeseries)
	}
	var log bytes.Buffer
	if err := WriteIntervalLog(&log, m); err != nil || strings.Count(log.String(), "\n") < 6 {
		t.Errorf("merged interval log: %v\n%s", err, log.String())
	}
	if err := AttachIntervalLog(&Result{}, strings.NewReader(log.String())); err == nil {
		t.Error("an interval log longer than the timeseries was accepted")
	}
	// A generator that comes after the common start fails instead of
	// sending what it missed in a burst.
	_, err = Run(context.Background(), Spec{Target: quick, Rate: 100, Duration: time.Second, Start: time.Now().Add(-time.Second)})
	if err == nil || !strings.Contains(err.Error(), "was not ready in time") {
		t.Errorf("a past start: %v", err)
	}
}

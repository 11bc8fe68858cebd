package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func adminGet(t *testing.T, addr net.Addr, path string) (int, string) {
	t.Helper()
	resp, err := h1Client().Get("http://" + addr.String() + path)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readAll(t, resp)
}

func TestMetricsExposition(t *testing.T) {
	be := startBackend(t, echoHandler())
	srv := startProxy(t, simpleConfig("auto", "", "same", be.addr))
	client := h1Client()
	for i := range 20 {
		resp, err := client.Get(proxyURL(srv, fmt.Sprintf("/unique/path/%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
	}
	code, body := adminGet(t, srv.AdminAddr(), "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`request_total{cluster="c",direction="outbound",route="out/0"} 20`,
		`response_total{classification="success",cluster="c",direction="outbound",grpc_status="",route="out/0",status_code="200"} 20`,
		`response_latency_ms_bucket{classification="success",cluster="c",direction="outbound",route="out/0",status_code="200",le="0.1"}`,
		`response_latency_ms_bucket{classification="success",cluster="c",direction="outbound",route="out/0",status_code="200",le="10000"} 20`,
		`tcp_open_total{direction="outbound",listener="out"} 1`,
		`tcp_open_connections{direction="outbound",listener="out"} 1`,
		`upstream_requests_total{cluster="c",endpoint="` + be.addr + `"} 20`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, "/unique/path") {
		t.Error("a raw request path became a label value")
	}
	if n := counterValue(t, srv, "tcp_read_bytes_total", nil); n < 20*50 {
		t.Errorf("tcp_read_bytes_total = %v, too small for 20 requests", n)
	}
	if n := counterValue(t, srv, "tcp_write_bytes_total", nil); n < 20*100 {
		t.Errorf("tcp_write_bytes_total = %v, too small for 20 responses", n)
	}
}

func TestAdminEndpoints(t *testing.T) {
	be := startBackend(t, echoHandler())
	srv := startProxy(t, "admin_debug: true\n"+simpleConfig("auto", "", "same", be.addr))
	if code, body := adminGet(t, srv.AdminAddr(), "/ready"); code != 200 || body != "ready\n" {
		t.Errorf("/ready: %d %q", code, body)
	}
	code, body := adminGet(t, srv.AdminAddr(), "/config")
	var cfg struct {
		Listeners []struct{ Name, Protocol string }
		Clusters  []struct{ Endpoints []string }
	}
	if err := json.Unmarshal([]byte(body), &cfg); code != 200 || err != nil {
		t.Fatalf("/config: %d %v\n%s", code, err, body)
	}
	if len(cfg.Listeners) != 1 || cfg.Listeners[0].Name != "out" || cfg.Listeners[0].Protocol != "auto" || cfg.Clusters[0].Endpoints[0] != be.addr {
		t.Errorf("/config does not show the running config: %s", body)
	}
	if code, body := adminGet(t, srv.AdminAddr(), "/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d", code)
	}
}

// TestAdminDebugEndpointsNeedEnabling: without admin_debug the admin
// server answers /metrics and /ready and nothing else; with it, /config
// shows no header value a route adds.
func TestAdminDebugEndpointsNeedEnabling(t *testing.T) {
	be := startBackend(t, echoHandler())
	withHeader := strings.Replace(simpleConfig("auto", "", "same", be.addr), "timeout: 10s", "timeout: 10s\n    request_headers: {add: {authorization: Bearer s3cr3t}}", 1)
	srv := startProxy(t, withHeader)
	for _, p := range []string{"/metrics", "/ready"} {
		if code, _ := adminGet(t, srv.AdminAddr(), p); code != 200 {
			t.Errorf("%s: %d, want 200", p, code)
		}
	}
	for _, p := range []string{"/config", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		if code, _ := adminGet(t, srv.AdminAddr(), p); code != 404 {
			t.Errorf("%s without admin_debug: %d, want 404", p, code)
		}
	}
	dbg := startProxy(t, "admin_debug: true\n"+withHeader)
	code, body := adminGet(t, dbg.AdminAddr(), "/config")
	if code != 200 || strings.Contains(body, "s3cr3t") || !strings.Contains(body, `"authorization": "[redacted]"`) {
		t.Errorf("/config with admin_debug: %d\n%s", code, body)
	}
}

// TestDrain starts a slow request, shuts the proxy down and checks that
// the request completes, /ready reports draining, and new connections are
// refused.
func TestDrain(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		io.WriteString(w, "finished")
	}))
	srv := startProxy(t, simpleConfig("auto", "", "same", be.addr))
	addr := srv.Addr("out").String()
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := h1Client().Get("http://" + addr + "/slow")
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, string(b), err}
	}()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	eventually(t, 5*time.Second, "the listener to stop accepting", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned before the in-flight request finished: %v", err)
	default:
	}
	close(release)
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "finished" {
		t.Errorf("in-flight request: %d %q %v", r.code, r.body, r.err)
	}
	if err := <-shut; err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func TestDrainGraceExpires(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	srv := startProxy(t, simpleConfig("auto", "", "same", be.addr))
	go h1Client().Get(proxyURL(srv, "/hang"))
	eventually(t, 5*time.Second, "the request to be in flight", func() bool {
		return counterValue(t, srv, "request_total", map[string]string{"cluster": "c"}) == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err == nil {
		t.Error("shutdown with a request hanging past the grace period reported success")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("grace of 200ms took %v", el)
	}
}

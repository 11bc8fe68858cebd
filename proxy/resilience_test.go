package proxy_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy"
)

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// counting wraps a handler and counts the requests it serves.
type counting struct {
	n atomic.Int64
	h http.HandlerFunc
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h(w, r)
}

func echoBody(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Write(b)
}

func unavailable(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	http.Error(w, "unavailable", http.StatusServiceUnavailable)
}

// retryConfig is one listener routing everything to cluster c over
// endpoints, round robin, with the given retry block and cluster extras.
func retryConfig(retry, clusterExtra string, endpoints ...string) string {
	return `admin: 127.0.0.1:0
listeners:
- name: out
  address: 127.0.0.1:0
  routes:
  - match: {}
    cluster: c
    timeout: 5s
` + indent(retry, "    ") + `
clusters:
- name: c
  balancer: {policy: round_robin}
  endpoints: [` + strings.Join(endpoints, ", ") + `]
` + indent(clusterExtra, "  ")
}

func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix) + "\n"
}

func TestRetryOnConnectFailure(t *testing.T) {
	good := startBackend(t, http.HandlerFunc(echoBody))
	dead := freePort(t)
	c := h1Client()
	run := func(srv *proxy.Server) (ok, failed int) {
		for i := range 20 {
			resp, err := c.Post(proxyURL(srv, "/"), "text/plain", strings.NewReader(fmt.Sprint("body-", i)))
			if err != nil {
				t.Fatal(err)
			}
			if body := readAll(t, resp); resp.StatusCode == 200 && body == fmt.Sprint("body-", i) {
				ok++
			} else {
				failed++
			}
		}
		return ok, failed
	}
	// Without retries half the requests meet the dead endpoint.
	if _, failed := run(startProxy(t, retryConfig("", "", dead, good.addr))); failed != 10 {
		t.Fatalf("without retries %d of 20 failed, want 10", failed)
	}
	srv := startProxy(t, retryConfig("retry: {attempts: 2, on: [connect-failure], backoff: {base: 1ms}}", "", dead, good.addr))
	if ok, _ := run(srv); ok != 20 {
		t.Fatalf("with retries %d of 20 succeeded", ok)
	}
	if n := counterValue(t, srv, "upstream_retries_total", map[string]string{"endpoint": good.addr}); n != 20 {
		t.Errorf("retries to the good endpoint: %v, want 20 (round robin starts every request on the dead one)", n)
	}
}

// TestRetryReplaysBodiesWithinTheBuffer: an endpoint answers 503 after
// reading the whole body; the retry must carry the same body to the other
// endpoint. A body larger than buffer_limit is not replayed.
func TestRetryReplaysBodiesWithinTheBuffer(t *testing.T) {
	bad := &counting{h: unavailable}
	good := &counting{h: echoBody}
	b1, b2 := startBackend(t, bad), startBackend(t, good)
	srv := startProxy(t, retryConfig("retry: {attempts: 2, on: ['503'], buffer_limit: 16384, backoff: {base: 1ms}}", "", b1.addr, b2.addr))
	for _, c := range []*http.Client{h1Client(), h2cClient()} {
		for i := range 10 {
			body := bytes.Repeat([]byte{byte('a' + i)}, 10_000)
			resp, err := c.Post(proxyURL(srv, "/"), "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, resp); resp.StatusCode != 200 || got != string(body) {
				t.Fatalf("request %d: %d, %d bytes back (want 200 and the 10000 bytes sent)", i, resp.StatusCode, len(got))
			}
		}
	}
	// Bodies past the buffer: the requests that start on the bad endpoint
	// fail, because what was streamed cannot be sent again.
	bad.n.Store(0)
	failed := 0
	c := h1Client()
	for range 10 {
		resp, err := c.Post(proxyURL(srv, "/"), "application/octet-stream", bytes.NewReader(make([]byte, 100_000)))
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if resp.StatusCode == 503 {
			failed++
		}
	}
	if failed == 0 || int64(failed) != bad.n.Load() {
		t.Errorf("large bodies: %d answered 503, %d reached the bad endpoint; want equal and non-zero", failed, bad.n.Load())
	}
}

// TestRetryGRPCUnavailable: a trailers-only UNAVAILABLE is retried, and
// the retry reaches the other endpoint.
func TestRetryGRPCUnavailable(t *testing.T) {
	grpcAnswer := func(code string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", code)
			w.Header().Set("X-Served-By", code)
			w.WriteHeader(200)
		}
	}
	b1 := startBackend(t, grpcAnswer("14"))
	b2 := startBackend(t, grpcAnswer("0"))
	for _, tc := range []struct {
		retry string
		want  string
	}{
		{"", "14"},
		{"retry: {attempts: 3, on: [unavailable], backoff: {base: 1ms}}", "0"},
	} {
		srv := startProxy(t, retryConfig(tc.retry, "", b1.addr, b2.addr))
		c := h2cClient()
		got := map[string]int{}
		for range 10 {
			req, _ := http.NewRequest("POST", proxyURL(srv, "/grpc.testing.TestService/EmptyCall"), bytes.NewReader([]byte{0, 0, 0, 0, 0}))
			req.Header.Set("Content-Type", "application/grpc")
			req.Header.Set("Te", "trailers")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			got[resp.Header.Get("Grpc-Status")]++
		}
		if tc.want == "0" && got["0"] != 10 {
			t.Errorf("with retries: statuses %v, want all 0", got)
		}
		if tc.want == "14" && got["14"] != 5 {
			t.Errorf("without retries: statuses %v, want 5 UNAVAILABLE", got)
		}
	}
}

// TestPerTryTimeoutAndDeadlinePropagation: an endpoint that hangs is cut
// off by the per-try timeout and the request retried elsewhere; the
// grpc-timeout each attempt carries is the smaller of the per-try timeout
// and what is left of the caller's deadline.
func TestPerTryTimeoutAndDeadlinePropagation(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	record := func(who string, r *http.Request) {
		mu.Lock()
		seen = append(seen, who+" "+r.Header.Get("Grpc-Timeout"))
		mu.Unlock()
	}
	hang := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("hang", r)
		select {
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
	}))
	fast := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record("fast", r)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "0")
		w.WriteHeader(200)
	}))
	srv := startProxy(t, retryConfig("retry: {attempts: 2, on: [reset], per_try_timeout: 200ms, backoff: {base: 1ms}}", "", hang.addr, fast.addr))
	c := h2cClient()
	for i := range 4 {
		req, _ := http.NewRequest("POST", proxyURL(srv, "/grpc.testing.TestService/EmptyCall"), bytes.NewReader([]byte{0, 0, 0, 0, 0}))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Te", "trailers")
		req.Header.Set("Grpc-Timeout", "2S")
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		if st := resp.Header.Get("Grpc-Status"); st != "0" {
			t.Fatalf("request %d: grpc-status %q after %v, want 0 (retried after the per-try timeout)", i, st, time.Since(start))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 8 { // round robin: every request meets the hanging endpoint first
		t.Fatalf("%d attempts, want 8: %v", len(seen), seen)
	}
	for _, v := range seen {
		_, v, _ = strings.Cut(v, " ")
		d, ok := parseTimeoutForTest(v)
		if !ok || d > 200*time.Millisecond || d < 100*time.Millisecond {
			t.Errorf("upstream grpc-timeout %q: want at most the 200ms per-try timeout (and not far below)", v)
		}
	}
}

func parseTimeoutForTest(v string) (time.Duration, bool) {
	if len(v) < 2 {
		return 0, false
	}
	var n int64
	if _, err := fmt.Sscan(v[:len(v)-1], &n); err != nil {
		return 0, false
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[v[len(v)-1]]
	return time.Duration(n) * unit, unit != 0
}

// TestRetryBudgetCapsAFailureStorm: every endpoint fails and every request
// would retry four times; the budget (10% of active requests, floor 1)
// keeps the attempts near the number of requests instead of five times it.
func TestRetryBudgetCapsAFailureStorm(t *testing.T) {
	const n = 50
	// The storm is concurrent whatever the machine's speed: no attempt is
	// answered before the n first attempts have all arrived (or 5 s
	// passed), so the n requests are active together when they retry.
	all := make(chan struct{})
	var closeAll sync.Once
	var h *counting
	h = &counting{h: func(w http.ResponseWriter, r *http.Request) {
		if h.n.Load() >= n {
			closeAll.Do(func() { close(all) })
		}
		select {
		case <-all:
		case <-time.After(5 * time.Second):
		}
		time.Sleep(20 * time.Millisecond)
		unavailable(w, r)
	}}
	b1, b2 := startBackend(t, h), startBackend(t, h)
	srv := startProxy(t, retryConfig("retry: {attempts: 5, on: ['503'], backoff: {base: 1ms, max: 2ms}}",
		"retry_budget: {ratio: 0.1, min_concurrency: 1}", b1.addr, b2.addr))
	var wg sync.WaitGroup
	c := h1Client()
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = n
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(proxyURL(srv, "/"))
			if err != nil {
				t.Error(err)
				return
			}
			readAll(t, resp)
			if resp.StatusCode != 503 {
				t.Errorf("status %d, want 503", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	attempts := h.n.Load()
	exhausted := counterValue(t, srv, "upstream_retry_budget_exhausted_total", map[string]string{"cluster": "c"})
	retries := counterValue(t, srv, "upstream_retries_total", nil)
	t.Logf("%d requests: %d attempts, %v retries, %v refused by the budget", n, attempts, retries, exhausted)
	if attempts > 2*n || exhausted == 0 {
		t.Errorf("%d attempts for %d requests (no budget would allow %d), %v refusals", attempts, n, 5*n, exhausted)
	}
	if int64(retries)+n != attempts {
		t.Errorf("retries %v + %d requests != %d attempts", retries, n, attempts)
	}
}

// TestOutlierEjectionAndReturn: an endpoint that answers 500 is ejected
// after three in a row, gets nothing while ejected, comes back after the
// base ejection time, and is ejected again for twice as long. The times
// are judged from the start of the requests that caused an ejection,
// which it cannot precede: the ejection of 1 s leaves the 30 requests
// sent meanwhile thirty times the time they need on a busy machine.
func TestOutlierEjectionAndReturn(t *testing.T) {
	const base = time.Second
	bad := &counting{h: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "broken", 500) }}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	b1, b2, b3 := startBackend(t, bad), startBackend(t, ok), startBackend(t, ok)
	srv := startProxy(t, retryConfig("", fmt.Sprintf(`outlier_detection: {consecutive_5xx: 3, base_ejection_time: %v, max_ejection_percent: 50}`, base), b1.addr, b2.addr, b3.addr))
	c := h1Client()
	send := func(k int) {
		for range k {
			resp, err := c.Get(proxyURL(srv, "/"))
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
		}
	}
	ejected := func() float64 {
		return counterValue(t, srv, "upstream_ejected", map[string]string{"endpoint": b1.addr})
	}
	begin := time.Now()
	send(9) // round robin: the bad endpoint's third 500 comes with the 7th request
	if bad.n.Load() != 3 || ejected() != 1 {
		t.Fatalf("after 9 requests: %d reached the bad endpoint, ejected=%v; want 3 and 1", bad.n.Load(), ejected())
	}
	send(30)
	if el := time.Since(begin); el >= base {
		t.Fatalf("39 requests took %v, longer than the %v ejection: the machine is too slow for this test", el, base)
	}
	if bad.n.Load() != 3 {
		t.Fatalf("the ejected endpoint got %d requests", bad.n.Load()-3)
	}
	eventually(t, 5*base, "the endpoint's return", func() bool { return ejected() == 0 })
	if back := time.Since(begin); back < base {
		t.Errorf("returned %v after the requests that ejected it began, before the %v base ejection time", back, base)
	}
	begin = time.Now()
	send(9)
	if bad.n.Load() != 6 || ejected() != 1 {
		t.Fatalf("after the return: %d requests reached it, ejected=%v; want 6 and 1", bad.n.Load(), ejected())
	}
	if n := counterValue(t, srv, "upstream_ejections_total", map[string]string{"endpoint": b1.addr}); n != 2 {
		t.Errorf("ejections %v, want 2", n)
	}
	// The second ejection lasts 2 s: still out 1.5 s after the requests
	// that caused it began, if the scrape answers before 2 s.
	time.Sleep(time.Until(begin.Add(3 * base / 2)))
	out := ejected()
	if el := time.Since(begin); el >= 2*base {
		t.Fatalf("the scrape answered %v after the second ejection began, past its 2 s: the machine is too slow for this test", el)
	}
	if out != 1 {
		t.Error("the second ejection was not longer than the first")
	}
}

// TestEndpointsFileHotApply: a cluster fed by a watched file follows its
// changes; a request in flight to a removed endpoint completes, and the
// pooled connection to an endpoint that stays is kept.
func TestEndpointsFileHotApply(t *testing.T) {
	release := make(chan struct{})
	var aCount, bCount, cCount atomic.Int64
	a := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		aCount.Add(1)
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "a")
	}))
	b := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { bCount.Add(1); io.WriteString(w, "b") }))
	cb := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { cCount.Add(1); io.WriteString(w, "c") }))
	dir := t.TempDir()
	file := filepath.Join(dir, "endpoints.yaml")
	write := func(addrs ...string) {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte("endpoints: ["+strings.Join(addrs, ", ")+"]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	write(a.addr, b.addr)
	srv := startProxy(t, `admin: 127.0.0.1:0
listeners:
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
`)
	c := h1Client()
	get := func(path string) string {
		resp, err := c.Get(proxyURL(srv, path))
		if err != nil {
			t.Fatal(err)
		}
		return readAll(t, resp)
	}
	served := map[string]int{}
	for range 4 {
		served[get("/")]++
	}
	if served["a"] != 2 || served["b"] != 2 {
		t.Fatalf("before the change: %v", served)
	}
	// A request in flight on a, then a leaves and c joins. (Round robin
	// alternates: a /slow request that lands on b returns at once and the
	// next one lands on a.)
	slow := make(chan string, 1)
	go func() {
		c := h1Client()
		for range 2 {
			resp, err := c.Get(proxyURL(srv, "/slow"))
			if err != nil {
				slow <- err.Error()
				return
			}
			if body := readAll(t, resp); body != "b" {
				slow <- body
				return
			}
		}
		slow <- "never reached a"
	}()
	eventually(t, 5*time.Second, "the slow request to reach a", func() bool { return aCount.Load() == 3 })
	write(b.addr, cb.addr)
	eventually(t, 5*time.Second, "traffic to reach c", func() bool { return get("/") == "c" })
	served = map[string]int{}
	for range 10 {
		served[get("/")]++
	}
	if served["b"] != 5 || served["c"] != 5 {
		t.Errorf("after the change: %v, want b and c 5 each", served)
	}
	close(release)
	if got := <-slow; got != "a" {
		t.Errorf("the request in flight to the removed endpoint got %q, want its response", got)
	}
	if n := b.conns.Load(); n != 1 {
		t.Errorf("the endpoint that stayed saw %d connections, want its one pooled connection kept", n)
	}
	if n := counterValue(t, srv, "upstream_requests_total", map[string]string{"endpoint": a.addr}); n != 0 {
		t.Errorf("the removed endpoint still has series (%v requests)", n)
	}
	// A broken file keeps the last good set.
	if err := os.WriteFile(file, []byte("endpoints: [not an address]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := get("/"); got != "b" && got != "c" {
		t.Errorf("after a broken file: served by %q", got)
	}
}

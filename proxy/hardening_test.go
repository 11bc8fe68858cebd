package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshbench/meshbench/proxy"
)

// Tests of the proxy against hostile or broken clients. Each checks the
// exact outcome, that the proxy still serves a normal request afterwards,
// and that no goroutine outlives the test.

// countingBackend answers "ok" and counts the requests that reach it.
type countingBackend struct {
	*backend
	requests atomic.Int64
}

func startCountingBackend(t *testing.T) *countingBackend {
	t.Helper()
	cb := &countingBackend{}
	cb.backend = startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cb.requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, "ok")
	}))
	return cb
}

// hardenedConfig is simpleConfig with the listener's limits set (a YAML
// flow mapping such as "{max_connections: 2}").
func hardenedConfig(proto, tlsDir, limits string, endpoints ...string) string {
	return strings.Replace(simpleConfig(proto, tlsDir, "same", endpoints...), "  routes:\n", "  limits: "+limits+"\n  routes:\n", 1)
}

// checkNoLeak records the goroutine count now and, when the test and all
// its cleanups (the proxy's drain among them) are done, waits a bounded
// time for the count to come back near it. Call it before starting any
// server, so that its cleanup runs last.
func checkNoLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		const tolerance = 2
		deadline := time.Now().Add(10 * time.Second)
		n := runtime.NumGoroutine()
		for n > before+tolerance && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			n = runtime.NumGoroutine()
		}
		if n > before+tolerance {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines: %d before, %d after the test\n%s", before, n, buf)
		}
	})
}

// checkServes asserts that a normal HTTP/1.1 and h2c request through the
// proxy still succeed.
func checkServes(t *testing.T, srv *proxy.Server) {
	t.Helper()
	for name, c := range map[string]*http.Client{"http1": h1Client(), "h2c": h2cClient()} {
		resp, err := c.Get(proxyURL(srv, "/normal"))
		if err != nil {
			t.Fatalf("%s: a normal request failed: %v", name, err)
		}
		if body := readAll(t, resp); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("%s: a normal request got %d %q", name, resp.StatusCode, body)
		}
		c.CloseIdleConnections()
	}
}

// rawExchange writes raw on a new connection and reads one response. With
// waitClose it also reports whether the server closed the connection after
// it (waiting up to 5s to find out).
func rawExchange(t *testing.T, addr, raw string, waitClose bool) (resp *http.Response, body string, closed bool) {
	t.Helper()
	return rawExchangeOn(t, func() (net.Conn, error) { return net.Dial("tcp", addr) }, raw, waitClose)
}

// rawExchangeOn is rawExchange on a connection from dial.
func rawExchangeOn(t *testing.T, dial func() (net.Conn, error), raw string, waitClose bool) (resp *http.Response, body string, closed bool) {
	t.Helper()
	c, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the response to %q: %v", raw, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !waitClose {
		return resp, string(b), false
	}
	_, err = br.ReadByte()
	return resp, string(b), err == io.EOF
}

func TestHardeningSlowloris(t *testing.T) {
	checkNoLeak(t)
	be := startCountingBackend(t)
	srv := startProxy(t, hardenedConfig("auto", "", "{read_header_timeout: 500ms}", be.addr))
	addr := srv.Addr("out").String()

	// Slow clients: an HTTP/1.1 head, and the HTTP/2 preface, one byte at
	// a time every 50ms, never finishing.
	heads := []string{"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("x", 200), http2.ClientPreface}
	const slow = 20
	type result struct {
		elapsed time.Duration
		got     string
	}
	results := make(chan result, slow)
	for i := range slow {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer c.Close()
			start := time.Now()
			head := heads[i%2]
			for j := 0; j < len(head) && time.Since(start) < 10*time.Second; j++ {
				if _, err := c.Write([]byte{head[j]}); err != nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			b, _ := io.ReadAll(c)
			results <- result{time.Since(start), string(b)}
		}()
	}
	// Meanwhile a normal client is served.
	time.Sleep(200 * time.Millisecond)
	checkServes(t, srv)
	for range slow {
		r := <-results
		// Cut at the 500ms header timeout: well before the 10s the slow
		// heads would take (200+ bytes at 50ms) or the read deadline.
		if r.elapsed > 8*time.Second {
			t.Errorf("a slow client was not cut off (%v)", r.elapsed)
		}
		if r.got != "" && !strings.HasPrefix(r.got, "HTTP/1.1 408") {
			t.Errorf("a slow client got %q", r.got)
		}
	}
	if n := be.requests.Load(); n != 2 {
		t.Errorf("backend got %d requests, want the 2 normal ones", n)
	}
	checkServes(t, srv)
}

func TestHardeningOversizedHeaders(t *testing.T) {
	checkNoLeak(t)
	be := startCountingBackend(t)
	dir := selfSigned(t)
	srv := startProxy(t, hardenedConfig("auto", "", "{max_header_bytes: 4096}", be.addr))
	tsrv := startProxy(t, hardenedConfig("h2", dir, "{max_header_bytes: 4096}", be.addr))
	big := strings.Repeat("b", 16<<10)

	t.Run("http1", func(t *testing.T) {
		resp, _, closed := rawExchange(t, srv.Addr("out").String(), "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+big+"\r\n\r\n", true)
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge || !closed {
			t.Errorf("got %d (closed %v), want 431 and the connection closed", resp.StatusCode, closed)
		}
		// Just under the limit passes.
		resp, body, _ := rawExchange(t, srv.Addr("out").String(), "GET / HTTP/1.1\r\nHost: a\r\nX-Big: "+big[:3000]+"\r\n\r\n", false)
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("a 3000-byte header got %d %q", resp.StatusCode, body)
		}
	})
	h2 := func(t *testing.T, c *h2Conn) {
		if c.maxHeaderList == 0 || c.maxHeaderList > 8192 {
			t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE = %d, want max_header_bytes plus a little", c.maxHeaderList)
		}
		// Over the limit: the stream is answered 431.
		c.request(1, "GET", "/", true, "x-big-1", big[:2000], "x-big-2", big[:2000], "x-big-3", big[:2000])
		if st := c.status(1); st != "431" {
			t.Errorf("stream 1 got %q, want 431", st)
		}
		// The connection still carries a normal request.
		c.request(3, "GET", "/", true)
		if st := c.status(3); st != "200" {
			t.Errorf("stream 3 after the refused one got %q, want 200", st)
		}
		// A header block more than twice the limit is not even decoded:
		// the connection ends with GOAWAY PROTOCOL_ERROR.
		var many []string
		for i := range 16 {
			many = append(many, fmt.Sprintf("x-big-%d", i), big[:2000])
		}
		c.firstFragment(5, many...)
		if st := c.status(5); st != "" || c.goAway == nil || c.goAway.ErrCode != http2.ErrCodeProtocol {
			t.Errorf("stream 5 got %q, GOAWAY %v; want GOAWAY PROTOCOL_ERROR", st, c.goAway)
		}
	}
	t.Run("h2c", func(t *testing.T) { h2(t, dialH2C(t, srv.Addr("out").String())) })
	t.Run("h2", func(t *testing.T) { h2(t, dialH2TLS(t, tsrv.Addr("out").String())) })
	if n := be.requests.Load(); n != 3 {
		t.Errorf("backend got %d requests, want the 3 normal ones", n)
	}
	checkServes(t, srv)
}

// TestHardeningMalformedRequests: the framing rules hold on cleartext and
// on TLS listeners alike.
func TestHardeningMalformedRequests(t *testing.T) {
	checkNoLeak(t)
	t.Run("cleartext", func(t *testing.T) { testMalformedRequests(t, "") })
	t.Run("tls", func(t *testing.T) { testMalformedRequests(t, selfSigned(t)) })
}

func testMalformedRequests(t *testing.T, tlsDir string) {
	be := startCountingBackend(t)
	srv := startProxy(t, simpleConfig("auto", tlsDir, "same", be.addr))
	addr := srv.Addr("out").String()
	dial := func() (net.Conn, error) { return net.Dial("tcp", addr) }
	if tlsDir != "" {
		dial = func() (net.Conn, error) {
			return tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		}
	}
	cases := []struct {
		name, raw string
		status    int
		// guard marks what net/http alone accepts (plain, below, shows
		// it): the proxy's framing guard refuses it.
		guard bool
	}{
		{"garbage request line", "GARBAGE\r\n\r\n", 400, false},
		{"request line with extra field", "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400, false},
		{"unknown version", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505, false},
		{"missing host", "GET / HTTP/1.1\r\n\r\n", 400, false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, false},
		{"content-length not a number", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\nabc", 400, false},
		{"negative content-length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\nabc", 400, false},
		{"content-length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc", 400, false},
		{"two content-lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, true},
		{"content-length and transfer-encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, true},
		{"transfer-encoding and content-length", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400, true},
		{"transfer-encoding in HTTP/1.0", "POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, false},
		{"space before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n", 400, false},
		{"space in name", "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n", 400, false},
		{"no colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", 400, false},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", 400, false},
		{"control in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x01b\r\n\r\n", 400, false},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n", 400, true},
		{"bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400, true},
		{"bare CR", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", 400, false},
		{"absolute form with another host", "GET http://other/x HTTP/1.1\r\nHost: echo\r\n\r\n", 400, true},
	}
	// plain is net/http's HTTP/1.1 server on its own.
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), ReadHeaderTimeout: 5 * time.Second}
	go plain.Serve(pln)
	defer plain.Close()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if resp, _, _ := rawExchange(t, pln.Addr().String(), tc.raw, false); tc.guard != (resp.StatusCode == 200) {
				t.Errorf("net/http alone answers %d: the guard column is wrong", resp.StatusCode)
			}
			resp, body, closed := rawExchangeOn(t, dial, tc.raw, true)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d %q, want %d", resp.StatusCode, body, tc.status)
			}
			if !closed {
				t.Error("the connection stayed open after a malformed request")
			}
		})
	}
	if n := be.requests.Load(); n != 0 {
		t.Fatalf("%d malformed requests reached the backend", n)
	}

	t.Run("smuggled behind a good request", func(t *testing.T) {
		// One write, two requests: the first is served, the second (with
		// ambiguous framing) refused, and its "body" is never parsed as a
		// request of its own.
		raw := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, raw)
		br := bufio.NewReader(c)
		var got []int
		for range 3 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				break
			}
			io.Copy(io.Discard, resp.Body)
			got = append(got, resp.StatusCode)
		}
		if fmt.Sprint(got) != "[200 400]" {
			t.Errorf("responses %v, want [200 400]", got)
		}
		if n := be.requests.Load(); n != 1 {
			t.Errorf("backend got %d requests, want 1", n)
		}
	})
	t.Run("absolute form with the same host", func(t *testing.T) {
		resp, body, _ := rawExchangeOn(t, dial, "GET http://Echo/x HTTP/1.1\r\nHost: echo\r\n\r\n", false)
		if resp.StatusCode != 200 || body != "ok" {
			t.Errorf("got %d %q, want 200 ok", resp.StatusCode, body)
		}
	})
	t.Run("pipelined chunked requests", func(t *testing.T) {
		raw := "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" +
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" +
			"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
		c, err := dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		before := be.requests.Load()
		io.WriteString(c, raw)
		br := bufio.NewReader(c)
		var got []int
		for range 4 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				break
			}
			io.Copy(io.Discard, resp.Body)
			got = append(got, resp.StatusCode)
		}
		if fmt.Sprint(got) != "[200 200 200]" || be.requests.Load()-before != 3 {
			t.Errorf("responses %v, backend requests %d, want 3 served", got, be.requests.Load()-before)
		}
	})
	if tlsDir == "" {
		checkServes(t, srv)
		return
	}
	for _, h2 := range []bool{false, true} {
		resp, err := tlsClient(t, tlsDir, h2).Get("https://" + addr + "/normal")
		if err != nil {
			t.Fatalf("a normal request (h2 %v) failed: %v", h2, err)
		}
		if body := readAll(t, resp); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("a normal request (h2 %v) got %d %q", h2, resp.StatusCode, body)
		}
	}
}

// cancelBackend reports each request's arrival on started and its end on
// ended: true if the request was cut off (its context cancelled or its
// body broken), false if it completed.
func cancelBackend(t *testing.T) (b *backend, started chan string, ended chan bool) {
	started, ended = make(chan string, 8), make(chan bool, 8)
	b = startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/normal" {
			io.WriteString(w, "ok")
			return
		}
		started <- r.URL.Path
		switch r.URL.Path {
		case "/upload":
			_, err := io.Copy(io.Discard, r.Body)
			ended <- err != nil || r.Context().Err() != nil
		case "/download":
			w.Header().Set("Content-Type", "text/plain")
			for i := 0; i < 1000; i++ {
				if _, err := io.WriteString(w, "chunk\n"); err != nil {
					break
				}
				http.NewResponseController(w).Flush()
				select {
				case <-r.Context().Done():
					ended <- true
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
			ended <- false
		}
	}))
	return b, started, ended
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestHardeningAbruptResets(t *testing.T) {
	checkNoLeak(t)
	be, started, ended := cancelBackend(t)
	srv := startProxy(t, simpleConfig("auto", "", "same", be.addr))
	addr := srv.Addr("out").String()
	reset := func(c net.Conn) {
		c.(*net.TCPConn).SetLinger(0) // close sends RST
		c.Close()
	}

	t.Run("http1 mid request body", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("x", 1000))
		waitFor(t, started, "the upload to reach the backend")
		reset(c)
		if !waitFor(t, ended, "the backend request to end") {
			t.Error("the backend got a whole request body from a client that reset")
		}
	})
	t.Run("http1 mid response", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET /download HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, err := io.ReadAtLeast(c, make([]byte, 100), 100); err != nil {
			t.Fatal(err)
		}
		waitFor(t, started, "the download to reach the backend")
		reset(c)
		if !waitFor(t, ended, "the backend request to end") {
			t.Error("the backend request ran to its end after the client reset")
		}
	})
	t.Run("h2c mid request body", func(t *testing.T) {
		client := h2cClient()
		defer client.CloseIdleConnections()
		ctx, cancel := context.WithCancel(context.Background())
		pr, pw := io.Pipe()
		req, _ := http.NewRequestWithContext(ctx, "POST", proxyURL(srv, "/upload"), pr)
		errc := make(chan error, 1)
		go func() {
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		pw.Write(bytes.Repeat([]byte("x"), 1000))
		if p := waitFor(t, started, "the upload to reach the backend"); p != "/upload" {
			t.Fatalf("backend started %s", p)
		}
		cancel() // RST_STREAM(CANCEL)
		if !waitFor(t, ended, "the backend request to end") {
			t.Error("the backend got a whole request body from a stream that was reset")
		}
		if err := waitFor(t, errc, "the client"); err == nil {
			t.Error("the cancelled request succeeded")
		}
		pw.Close()
		// The same connection still carries requests.
		resp, err := client.Get(proxyURL(srv, "/normal"))
		if err != nil || readAll(t, resp) != "ok" {
			t.Errorf("a request after the reset: %v", err)
		}
	})
	t.Run("h2c mid response", func(t *testing.T) {
		client := h2cClient()
		defer client.CloseIdleConnections()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", proxyURL(srv, "/download"), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAtLeast(resp.Body, make([]byte, 100), 100); err != nil {
			t.Fatal(err)
		}
		waitFor(t, started, "the download to reach the backend")
		cancel()
		resp.Body.Close()
		if !waitFor(t, ended, "the backend request to end") {
			t.Error("the backend request ran to its end after the stream was reset")
		}
		resp, err = client.Get(proxyURL(srv, "/normal"))
		if err != nil || readAll(t, resp) != "ok" {
			t.Errorf("a request after the reset: %v", err)
		}
	})
	resp, err := h1Client().Get(proxyURL(srv, "/normal"))
	if err != nil || readAll(t, resp) != "ok" {
		t.Fatalf("a normal request after the resets: %v", err)
	}
}

func TestHardeningMaxConcurrentStreams(t *testing.T) {
	checkNoLeak(t)
	var inFlight atomic.Int64
	release := make(chan struct{})
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			inFlight.Add(1)
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		io.WriteString(w, "ok")
	}))
	dir := selfSigned(t)
	srv := startProxy(t, hardenedConfig("auto", "", "{max_concurrent_streams: 2}", be.addr))
	tsrv := startProxy(t, hardenedConfig("h2", dir, "{max_concurrent_streams: 2}", be.addr))
	var once sync.Once
	defer once.Do(func() { close(release) })

	check := func(t *testing.T, c *h2Conn) {
		if c.maxStreams != 2 {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want 2", c.maxStreams)
		}
		start := inFlight.Load()
		c.request(1, "GET", "/block", true)
		c.request(3, "GET", "/block", true)
		eventually(t, 5*time.Second, "two streams at the backend", func() bool { return inFlight.Load()-start == 2 })
		c.request(5, "GET", "/block", true)
		code, ok := c.reset(5)
		if !ok || code != http2.ErrCodeProtocol && code != http2.ErrCodeRefusedStream {
			t.Errorf("the third stream got %v (reset %v), want RST_STREAM PROTOCOL_ERROR or REFUSED_STREAM", code, ok)
		}
		if n := inFlight.Load() - start; n != 2 {
			t.Errorf("%d streams reached the backend, want 2", n)
		}
	}
	t.Run("h2c", func(t *testing.T) { check(t, dialH2C(t, srv.Addr("out").String())) })
	t.Run("h2", func(t *testing.T) { check(t, dialH2TLS(t, tsrv.Addr("out").String())) })
	once.Do(func() { close(release) })
	checkServes(t, srv)
}

func TestHardeningMaxConnections(t *testing.T) {
	checkNoLeak(t)
	be := startCountingBackend(t)
	srv := startProxy(t, hardenedConfig("auto", "", "{max_connections: 2}", be.addr))
	addr := srv.Addr("out").String()
	get := "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	readStatus := func(c net.Conn, br *bufio.Reader, d time.Duration) (int, error) {
		c.SetReadDeadline(time.Now().Add(d))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		io.WriteString(c, get)
		if st, err := readStatus(c, bufio.NewReader(c), 5*time.Second); st != 200 {
			t.Fatalf("connection %d: %d %v", len(conns), st, err)
		}
	}
	// The third connection is queued, not served, while two are open.
	c3, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conns = append(conns, c3)
	io.WriteString(c3, get)
	br3 := bufio.NewReader(c3)
	if st, err := readStatus(c3, br3, 500*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a connection beyond max_connections got %d %v, want to wait", st, err)
	}
	// Once one closes, it is served.
	conns[0].Close()
	if st, err := readStatus(c3, br3, 5*time.Second); st != 200 {
		t.Fatalf("the queued connection got %d %v after a slot freed", st, err)
	}
	if n := be.requests.Load(); n != 3 {
		t.Errorf("backend got %d requests, want 3", n)
	}
	for _, c := range conns[1:] {
		c.Close()
	}
	checkServes(t, srv)
}

func TestHardeningIdleTimeout(t *testing.T) {
	checkNoLeak(t)
	be := startCountingBackend(t)
	dir := selfSigned(t)
	srv := startProxy(t, hardenedConfig("auto", "", "{idle_timeout: 300ms}", be.addr))
	tsrv := startProxy(t, hardenedConfig("h2", dir, "{idle_timeout: 300ms}", be.addr))

	t.Run("http1", func(t *testing.T) {
		c, err := net.Dial("tcp", srv.Addr("out").String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		// The connection is idle only once the proxy has answered, which
		// is after this moment: the close cannot come 300 ms after it.
		start := time.Now()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("an idle keep-alive connection: %v, want it closed", err)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("closed %v after the request was sent, before the 300ms idle timeout", d)
		}
	})
	idleH2 := func(t *testing.T, c *h2Conn) {
		c.request(1, "GET", "/", true)
		if st := c.status(1); st != "200" {
			t.Fatalf("stream 1 got %q", st)
		}
		c.readUntil(func() bool { return c.goAway != nil })
		if c.goAway.ErrCode != http2.ErrCodeNo || c.goAway.LastStreamID != 1 {
			t.Errorf("GOAWAY %v after stream %d, want NO_ERROR after 1", c.goAway.ErrCode, c.goAway.LastStreamID)
		}
	}
	t.Run("h2c", func(t *testing.T) { idleH2(t, dialH2C(t, srv.Addr("out").String())) })
	t.Run("h2", func(t *testing.T) { idleH2(t, dialH2TLS(t, tsrv.Addr("out").String())) })
	checkServes(t, srv)
}

// h2Conn is a raw HTTP/2 client connection for sending what a well-behaved
// client would not.
type h2Conn struct {
	t             *testing.T
	c             net.Conn
	fr            *http2.Framer
	enc           *hpack.Encoder
	encBuf        bytes.Buffer
	dec           *hpack.Decoder
	maxStreams    uint32
	maxHeaderList uint32
	statuses      map[uint32]string
	fields        map[uint32][]hpack.HeaderField // every header block's fields, by stream
	resets        map[uint32]http2.ErrCode
	goAway        *http2.GoAwayFrame
}

func dialH2C(t *testing.T, addr string) *h2Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return newH2Conn(t, c)
}

func dialH2TLS(t *testing.T, addr string) *h2Conn {
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q", p)
	}
	return newH2Conn(t, c)
}

// newH2Conn sends the preface and settings and reads the server's.
func newH2Conn(t *testing.T, c net.Conn) *h2Conn {
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	h := &h2Conn{t: t, c: c, fr: http2.NewFramer(c, c), statuses: map[uint32]string{}, fields: map[uint32][]hpack.HeaderField{}, resets: map[uint32]http2.ErrCode{}}
	h.enc = hpack.NewEncoder(&h.encBuf)
	h.dec = hpack.NewDecoder(4096, nil)
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := h.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		f, err := h.fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's settings: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			sf.ForeachSetting(func(s http2.Setting) error {
				switch s.ID {
				case http2.SettingMaxConcurrentStreams:
					h.maxStreams = s.Val
				case http2.SettingMaxHeaderListSize:
					h.maxHeaderList = s.Val
				}
				return nil
			})
			if err := h.fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return h
		}
	}
	t.Fatal("no SETTINGS from the server")
	return nil
}

// request opens a stream; extra is name, value pairs. A header block
// larger than one frame goes out in CONTINUATION frames.
func (h *h2Conn) request(id uint32, method, path string, end bool, extra ...string) {
	h.encBuf.Reset()
	fields := append([]string{":method", method, ":scheme", "http", ":authority", "a", ":path", path}, extra...)
	for i := 0; i+1 < len(fields); i += 2 {
		h.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	block := h.encBuf.Bytes()
	const frag = 16 << 10
	first := block[:min(len(block), frag)]
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(block) <= frag}); err != nil {
		h.t.Fatal(err)
	}
	for rest := block[len(first):]; len(rest) > 0; {
		n := min(len(rest), frag)
		if err := h.fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
			h.t.Fatal(err)
		}
		rest = rest[n:]
	}
}

// firstFragment sends a HEADERS frame holding the first 16 KiB of a
// request's header block and nothing more: the server is expected to give
// up on the connection before it needs the rest (and sending the rest
// would have the client's socket reset, losing the GOAWAY).
func (h *h2Conn) firstFragment(id uint32, extra ...string) {
	h.encBuf.Reset()
	fields := append([]string{":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/"}, extra...)
	for i := 0; i+1 < len(fields); i += 2 {
		h.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	block := h.encBuf.Bytes()
	if len(block) <= 16<<10 {
		h.t.Fatalf("header block of %d bytes fits one frame", len(block))
	}
	if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:16<<10], EndStream: true}); err != nil {
		h.t.Fatal(err)
	}
}

// readUntil reads frames until done holds, answering pings and recording
// statuses and resets.
func (h *h2Conn) readUntil(done func() bool) {
	h.t.Helper()
	for range 1000 {
		if done() {
			return
		}
		f, err := h.fr.ReadFrame()
		if err != nil {
			h.t.Fatalf("reading frames: %v", err)
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			fields, err := h.dec.DecodeFull(f.HeaderBlockFragment())
			if err != nil {
				h.t.Fatal(err)
			}
			h.fields[f.StreamID] = append(h.fields[f.StreamID], fields...)
			for _, hf := range fields {
				if hf.Name == ":status" {
					h.statuses[f.StreamID] = hf.Value
				}
			}
		case *http2.RSTStreamFrame:
			h.resets[f.StreamID] = f.ErrCode
		case *http2.GoAwayFrame:
			h.goAway = f

		case *http2.PingFrame:
			if !f.IsAck() {
				h.fr.WritePing(true, f.Data)
			}
		}
	}
	h.t.Fatal("too many frames")
}

// ended reports whether stream id got response headers or a reset, or
// the connection a GOAWAY that ends it: one with an error, or one that
// leaves the stream unprocessed.
func (h *h2Conn) ended(id uint32) bool {
	_, ok := h.statuses[id]
	_, rst := h.resets[id]
	return ok || rst || h.goAway != nil && (h.goAway.ErrCode != http2.ErrCodeNo || h.goAway.LastStreamID < id)
}

// status waits for the response headers of stream id; it is "" if the
// stream was reset or refused by a GOAWAY.
func (h *h2Conn) status(id uint32) string {
	h.t.Helper()
	h.readUntil(func() bool { return h.ended(id) })
	return h.statuses[id]
}

// field returns the first value of the named response header (or
// trailer) of stream id, or "".
func (h *h2Conn) field(id uint32, name string) string {
	for _, f := range h.fields[id] {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// reset waits for stream id to end in RST_STREAM or a response.
func (h *h2Conn) reset(id uint32) (http2.ErrCode, bool) {
	h.t.Helper()
	h.readUntil(func() bool { return h.ended(id) })
	code, ok := h.resets[id]
	return code, ok
}

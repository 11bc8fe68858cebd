package h1client_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/h1client"
)

// rawServer accepts connections on loopback and runs serve for each; it
// counts connections.
type rawServer struct {
	addr  string
	conns atomic.Int64
}

func startRaw(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			s.conns.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				serve(c, bufio.NewReader(c))
			}()
		}
	}()
	return s
}

// serveHTTP answers every request on the connection with h through
// net/http's own parser and writer.
func serveHTTP(t *testing.T, h http.HandlerFunc) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{addr: ln.Addr().String()}
	srv := &http.Server{Handler: h, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func newReq(t *testing.T, ctx context.Context, method, addr, path string, body io.Reader) *http.Request {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func client() *h1client.Client {
	return h1client.New(h1client.Options{MaxIdlePerHost: 4})
}

func TestReuseAndFraming(t *testing.T) {
	var seen sync.Map
	s := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen.Store(r.Method, r.Header.Clone())
		w.Header().Set("Trailer", "X-Sum")
		w.Write([]byte(r.Method + ":" + string(b)))
		w.Header().Set("X-Sum", "ok")
	})
	c := client()
	for i, tc := range []struct {
		method string
		body   io.Reader
		want   string
	}{
		{"GET", nil, "GET:"},
		{"POST", strings.NewReader("fixed"), "POST:fixed"},
		{"PUT", io.MultiReader(strings.NewReader("chun"), strings.NewReader("ked")), "PUT:chunked"},
		{"POST", nil, "POST:"},
	} {
		req := newReq(t, context.Background(), tc.method, s.addr, "/p?q=1", tc.body)
		if tc.method == "PUT" {
			req.ContentLength = -1
		}
		req.Header["User-Agent"] = []string{""}
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != tc.want || resp.Trailer.Get("X-Sum") != "ok" {
			t.Errorf("%d: body %q trailer %v", i, b, resp.Trailer)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("4 sequential requests used %d connections, want 1", n)
	}
	h, _ := seen.Load("GET")
	if ua := h.(http.Header).Get("User-Agent"); ua != "" {
		t.Errorf("client added a User-Agent: %q", ua)
	}
}

func TestSkipsInterimAndHandlesHEAD(t *testing.T) {
	s := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			if req.Method == "HEAD" {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
				continue
			}
			io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	c := client()
	for _, m := range []string{"HEAD", "GET", "HEAD", "GET"} {
		resp, err := c.RoundTrip(newReq(t, context.Background(), m, s.addr, "/", nil))
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (m == "GET" && string(b) != "ok") || (m == "HEAD" && len(b) != 0) {
			t.Errorf("%s: %d %q", m, resp.StatusCode, b)
		}
	}
	if n := s.conns.Load(); n != 1 {
		t.Errorf("used %d connections, want 1", n)
	}
}

// TestRetriesStaleIdleConnection: the server closes a kept-alive connection
// right after its response, as servers with short keep-alive timeouts do;
// the idle watcher sees the close, so the next request goes out on a fresh
// connection.
func TestRetriesStaleIdleConnection(t *testing.T) {
	s := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		// close without saying so
	})
	c := client()
	for i, m := range []string{"GET", "POST", "GET"} {
		var body io.Reader
		if m == "POST" {
			body = strings.NewReader("x")
		}
		resp, err := c.RoundTrip(newReq(t, context.Background(), m, s.addr, "/", body))
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, m, err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		time.Sleep(20 * time.Millisecond) // let the close arrive
	}
	if n := s.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3", n)
	}
}

// TestReplaysOnlyBodilessRequests: a connection that fails after a request
// was sent on it, before any response byte, is retried on a new connection
// only for a request without a body.
func TestReplaysOnlyBodilessRequests(t *testing.T) {
	var requests atomic.Int64
	s := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		requests.Add(1)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		// The second request on the connection is read and dropped.
		if r, err := http.ReadRequest(br); err == nil {
			io.Copy(io.Discard, r.Body)
			requests.Add(1)
		}
	})
	c := client()
	do := func(m string, body io.Reader) error {
		resp, err := c.RoundTrip(newReq(t, context.Background(), m, s.addr, "/", body))
		if err == nil {
			io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		return err
	}
	if err := do("GET", nil); err != nil {
		t.Fatal(err)
	}
	if err := do("POST", strings.NewReader("x")); err == nil {
		t.Fatal("a request with a body was replayed on a new connection")
	}
	if n, c := requests.Load(), s.conns.Load(); n != 2 || c != 1 {
		t.Fatalf("%d requests on %d connections, want 2 on 1", n, c)
	}
	if err := do("GET", nil); err != nil {
		t.Fatal(err)
	}
	if err := do("GET", nil); err != nil {
		t.Fatalf("a bodiless request was not replayed: %v", err)
	}
	if n, c := requests.Load(), s.conns.Load(); n != 5 || c != 3 {
		t.Fatalf("%d requests on %d connections, want 5 on 3", n, c)
	}
}

func TestConnectionCloseIsHonoured(t *testing.T) {
	s := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	c := client()
	for range 3 {
		resp, err := c.RoundTrip(newReq(t, context.Background(), "GET", s.addr, "/", nil))
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if n := s.conns.Load(); n != 3 {
		t.Errorf("%d connections for 3 requests answered with Connection: close", n)
	}
}

func TestEarlyCloseDiscardsConnection(t *testing.T) {
	s := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 1<<20))
	})
	c := client()
	for range 2 {
		resp, err := c.RoundTrip(newReq(t, context.Background(), "GET", s.addr, "/", nil))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Read(make([]byte, 10))
		resp.Body.Close() // unread body: the connection cannot be reused
	}
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

func TestContextCancelsExchange(t *testing.T) {
	s := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := client().RoundTrip(newReq(t, ctx, "GET", s.addr, "/", nil))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
}

func TestMaxConnsPerHost(t *testing.T) {
	release := make(chan struct{})
	s := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	c := h1client.New(h1client.Options{MaxIdlePerHost: 4, MaxConnsPerHost: 2})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.RoundTrip(newReq(t, context.Background(), "GET", s.addr, "/", nil))
			if err == nil {
				io.ReadAll(resp.Body)
				resp.Body.Close()
			}
		}()
	}
	// Two connections open, however long the machine takes to open them;
	// the other two requests wait for one.
	for deadline := time.Now().Add(5 * time.Second); s.conns.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // room for a third connection that should not come
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections open with a cap of 2", n)
	}
	close(release)
	wg.Wait()
	if n := s.conns.Load(); n != 2 {
		t.Errorf("%d connections in all with a cap of 2", n)
	}
}

func TestRejectsHeaderInjection(t *testing.T) {
	s := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {})
	req := newReq(t, context.Background(), "GET", s.addr, "/", nil)
	req.Header["X-Bad"] = []string{"a\r\nInjected: 1"}
	if _, err := client().RoundTrip(req); err == nil {
		t.Error("a header value with CRLF was sent")
	}
}

func TestDoDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	holding := make(chan struct{})
	var plain atomic.Int64 // requests for / that reached the server
	s := serveHTTP(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(holding)
		} else {
			plain.Add(1)
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	c := h1client.New(h1client.Options{MaxIdlePerHost: 4, MaxConnsPerHost: 1})
	start := time.Now()
	_, err := c.Do(context.Background(), newReq(t, context.Background(), "GET", s.addr, "/", nil), time.Now().Add(100*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("err = %v, want a deadline error", err)
	}
	// The only connection allowed is gone; a second request holds the
	// slot, and a third waits for it: its deadline bounds the wait too,
	// and it never reaches the server.
	go func() {
		resp, err := c.Do(context.Background(), newReq(t, context.Background(), "GET", s.addr, "/hold", nil), time.Time{})
		if err == nil {
			io.ReadAll(resp.Body)
			resp.Body.Close()
		}
	}()
	select {
	case <-holding:
	case <-time.After(10 * time.Second):
		t.Fatal("the request holding the slot did not reach the server")
	}
	_, err = c.Do(context.Background(), newReq(t, context.Background(), "GET", s.addr, "/", nil), time.Now().Add(100*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("waiting for a slot: err = %v, want a deadline error", err)
	}
	if n := plain.Load(); n != 1 {
		t.Errorf("%d requests for / reached the server, want 1: the third should have waited for the slot", n)
	}
	// A hang bound: two 100 ms deadlines, and 10 s is a hundred of them.
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %v", el)
	}
}

func TestCheckRequestLine(t *testing.T) {
	for _, tc := range []struct {
		method, target, host string
		want                 error
	}{
		{"GET", "/a?b=c", "echo:80", nil},
		{"GET", "/caf\u00e9", "echo", nil},
		{"G T", "/", "echo", h1client.ErrMethod},
		{"GET /x HTTP/1.1\r\nX:", "/", "echo", h1client.ErrMethod},
		{"GET", "", "echo", h1client.ErrTarget},
		{"GET", "/a b", "echo", h1client.ErrTarget},
		{"GET", "/a\x7f", "echo", h1client.ErrTarget},
		{"GET", "/a\r\nX-Injected: 1", "echo", h1client.ErrTarget},
		{"GET", "/", "a b", h1client.ErrHost},
		{"GET", "/", "a\tb", h1client.ErrHost},
	} {
		if err := h1client.CheckRequestLine(tc.method, tc.target, tc.host); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("h1client.CheckRequestLine(%q, %q, %q) = %v, want %v", tc.method, tc.target, tc.host, err, tc.want)
		}
	}
}

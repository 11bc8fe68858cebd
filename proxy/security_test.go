package proxy_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// pathBackend stands for an upstream that resolves a path leniently, as
// file servers do: it decodes every escape, "%2F" included, and cleans the
// result. It answers "SECRET" for anything that resolves under /admin/ (or
// to the pkg.Admin gRPC service) and records the request line's path.
type pathBackend struct {
	*backend
	mu   sync.Mutex
	seen []string
}

func startPathBackend(t *testing.T) *pathBackend {
	pb := &pathBackend{}
	pb.backend = startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pb.mu.Lock()
		pb.seen = append(pb.seen, r.RequestURI)
		pb.mu.Unlock()
		p, err := url.PathUnescape(r.URL.EscapedPath())
		if err != nil {
			p = r.URL.Path
		}
		p = path.Clean(strings.ReplaceAll(p, `\`, "/"))
		secret := strings.HasPrefix(p, "/admin/") || strings.HasPrefix(p, "/pkg.Admin/")
		if r.Header.Get("Content-Type") == "application/grpc" {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Grpc-Status", "0")
			if secret {
				w.Header().Set("Grpc-Message", "SECRET")
			}
			return
		}
		if secret {
			fmt.Fprint(w, "SECRET")
			return
		}
		fmt.Fprint(w, "public:"+p)
	}))
	return pb
}

// reached returns the paths the backend was sent.
func (pb *pathBackend) reached() []string {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return append([]string(nil), pb.seen...)
}

// authzPathConfig is an inbound listener that allows GET under /public/
// and gRPC calls to pkg.Public only, in front of endpoint.
func authzPathConfig(slashes, endpoint string) string {
	return `listeners:
- name: out
  address: 127.0.0.1:0
  direction: inbound
  escaped_slashes: ` + slashes + `
  authz: {allow: [{path_prefix: /public/, methods: [GET]}, {path_prefix: /pkg.Public/, methods: [POST]}]}
  routes:
  - match: {}
    cluster: c
clusters:
- name: c
  endpoints: [` + endpoint + `]
`
}

// traversals are the requests that named /admin/secret.txt through an
// allowed prefix, and what the proxy must answer each with under
// escaped_slashes reject.
var traversals = []struct{ path, status string }{
	{"/public/../admin/secret.txt", "403"},
	{"/public/%2e%2e/admin/secret.txt", "403"},
	{"/public/%2E%2E/admin/secret.txt", "403"},
	{"/public/.%2e/admin/secret.txt", "403"},
	{"/public//../admin/secret.txt", "403"},
	{"/public/./../admin/secret.txt", "403"},
	{"/public/..%2fadmin/secret.txt", "400"},
	{"/public/..%2Fadmin/secret.txt", "400"},
	{"/public/..%5cadmin/secret.txt", "400"},
	{`/public/..\admin/secret.txt`, "400"},
}

// TestPathTraversalIsNormalisedBeforeAuthz sends each traversal raw, as
// curl --path-as-is does, over HTTP/1.1 and h2c, and as a gRPC method over
// h2c: none may reach the backend, and an allowed path is forwarded in its
// normalised form.
func TestPathTraversalIsNormalisedBeforeAuthz(t *testing.T) {
	pb := startPathBackend(t)
	srv := startProxy(t, authzPathConfig("reject", pb.addr))
	addr := srv.Addr("out").String()

	t.Run("http1", func(t *testing.T) {
		for _, tc := range traversals {
			resp, body, _ := rawExchange(t, addr, "GET "+tc.path+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false)
			if got := fmt.Sprint(resp.StatusCode); got != tc.status || strings.Contains(body, "SECRET") {
				t.Errorf("GET %s: %s %q, want %s", tc.path, got, body, tc.status)
			}
		}
	})
	t.Run("h2c", func(t *testing.T) {
		h := dialH2C(t, addr)
		for i, tc := range traversals {
			id := uint32(2*i + 1)
			h.request(id, "GET", tc.path, true)
			if got := h.status(id); got != tc.status {
				t.Errorf("GET %s: %s, want %s", tc.path, got, tc.status)
			}
		}
	})
	t.Run("grpc", func(t *testing.T) {
		h := dialH2C(t, addr)
		for i, tc := range traversals {
			id := uint32(2*i + 1)
			p := strings.Replace(strings.Replace(tc.path, "/public/", "/pkg.Public/", 1), "admin/secret.txt", "pkg.Admin/Get", 1)
			h.request(id, "POST", p, true, "content-type", "application/grpc", "te", "trailers")
			want := "7" // PERMISSION_DENIED
			if tc.status == "400" {
				want = "3" // INVALID_ARGUMENT
			}
			h.status(id)
			if got := h.field(id, "grpc-status"); got != want || h.field(id, "grpc-message") == "SECRET" {
				t.Errorf("POST %s: grpc-status %q (%q), want %s", p, got, h.field(id, "grpc-message"), want)
			}
		}
	})
	for _, p := range pb.reached() {
		t.Errorf("the backend was sent %s", p)
	}

	// What authz allows is forwarded as the policy saw it.
	resp, body, _ := rawExchange(t, addr, "GET /public/x/%2e%2e//a%2etxt HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false)
	if resp.StatusCode != 200 || body != "public:/public/a.txt" {
		t.Fatalf("GET /public/x/%%2e%%2e//a%%2etxt: %d %q", resp.StatusCode, body)
	}
	if got := pb.reached(); len(got) != 1 || got[0] != "/public/a.txt" {
		t.Fatalf("the backend was sent %q, want the normalised /public/a.txt", got)
	}
}

// TestEscapedSlashesUnescaped: with escaped_slashes unescape, "%2F" is a
// separator (and so are "%5C" and "\"), so "..%2F" is a dot segment and
// authz refuses the result.
func TestEscapedSlashesUnescaped(t *testing.T) {
	pb := startPathBackend(t)
	srv := startProxy(t, authzPathConfig("unescape", pb.addr))
	addr := srv.Addr("out").String()
	for _, p := range []string{"/public/..%2fadmin/secret.txt", "/public/..%5Cadmin/secret.txt", `/public/..\admin/secret.txt`} {
		resp, body, _ := rawExchange(t, addr, "GET "+p+" HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false)
		want := 403
		if resp.StatusCode != want || strings.Contains(body, "SECRET") {
			t.Errorf("GET %s: %d %q, want %d", p, resp.StatusCode, body, want)
		}
	}
	resp, body, _ := rawExchange(t, addr, "GET /public/a%2fb HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false)
	if resp.StatusCode != 200 || body != "public:/public/a/b" {
		t.Fatalf("GET /public/a%%2fb: %d %q", resp.StatusCode, body)
	}
}

// rawH1Backend is an HTTP/1.1 upstream written on a raw socket, so that it
// can misbehave: answer maps a request to the bytes written back (the
// response and whatever follows it) and a pause before a second write
// (after, written once pause has passed; nil for none). Each connection's
// close by the proxy is reported on closed.
type rawH1Backend struct {
	addr   string
	conns  atomic.Int64
	closed chan int64 // the number of a connection the proxy closed
	wrote  chan int64 // the number of a connection whose late bytes went out
}

func startRawH1Backend(t *testing.T, answer func(r *http.Request) (now string, pause time.Duration, after string)) *rawH1Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &rawH1Backend{addr: ln.Addr().String(), closed: make(chan int64, 16), wrote: make(chan int64, 16)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := b.conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
							b.closed <- n
						}
						return
					}
					_, _ = io.Copy(io.Discard, r.Body)
					now, pause, after := answer(r)
					if _, err := io.WriteString(c, now); err != nil {
						return
					}
					if after != "" {
						time.Sleep(pause)
						if _, err := io.WriteString(c, after); err != nil {
							return
						}
						b.wrote <- n
					}
				}
			}()
		}
	}()
	return b
}

func okResponse(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// TestUpstreamBytesBeyondAResponseAreNotReused: bytes an upstream sends
// beyond a response (a second response, a body after HEAD, 204 or 304, at
// once or while the connection is idle) must never become another
// client's response; the connection that carried them is closed.
func TestUpstreamBytesBeyondAResponseAreNotReused(t *testing.T) {
	const poison = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED"
	cases := []struct {
		name, method, path string
		now                string
		pause              time.Duration
		after              string
		status             int
	}{
		{name: "extra response at once", method: "GET", path: "/a", now: okResponse("a") + poison, status: 200},
		{name: "extra response while idle", method: "GET", path: "/a", now: okResponse("a"), pause: 50 * time.Millisecond, after: poison, status: 200},
		{name: "HEAD with a body", method: "HEAD", path: "/h", now: okResponse("hello"), status: 200},
		{name: "204 with a body", method: "GET", path: "/n", now: "HTTP/1.1 204 No Content\r\n\r\n" + poison, status: 204},
		{name: "304 with a body", method: "GET", path: "/m", now: "HTTP/1.1 304 Not Modified\r\n\r\n" + poison, status: 304},
		{name: "HEAD, body while idle", method: "HEAD", path: "/h", now: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", pause: 50 * time.Millisecond, after: "hello", status: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be := startRawH1Backend(t, func(r *http.Request) (string, time.Duration, string) {
				if r.URL.Path == tc.path {
					return tc.now, tc.pause, tc.after
				}
				return okResponse("fresh:" + r.URL.Path), 0, ""
			})
			srv := startProxy(t, simpleConfig("http1", "", "http1", be.addr))
			first := h1Client()
			req, _ := http.NewRequest(tc.method, proxyURL(srv, tc.path), nil)
			resp, err := first.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			readAll(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			}
			if tc.after != "" {
				waitFor(t, be.wrote, "the backend's late bytes")
			}
			for i := range 3 {
				resp, err := h1Client().Get(proxyURL(srv, fmt.Sprintf("/next%d", i)))
				if err != nil {
					t.Fatal(err)
				}
				if body := readAll(t, resp); resp.StatusCode != 200 || body != fmt.Sprintf("fresh:/next%d", i) {
					t.Fatalf("the next client got %d %q", resp.StatusCode, body)
				}
			}
			// The connection that carried the extra bytes is closed by the
			// proxy before any other request could read them: at once when
			// they came with the response, by the idle watcher otherwise.
			if got := waitFor(t, be.closed, "the proxy to close the poisoned connection"); got != 1 {
				t.Fatalf("connection %d closed, want 1", got)
			}
			if n := be.conns.Load(); n != 2 {
				t.Fatalf("the backend saw %d connections, want 2 (the poisoned one, then one reused by the next clients)", n)
			}
		})
	}
}

// legitLoad starts clients h2c clients, each on its own connection, asking
// addr for path until stop is closed. The function it returns waits for
// them and gives the sorted latencies of the requests that succeeded and
// the number that failed (an error, a status other than 200, or no answer
// within 3s).
func legitLoad(addr, path string, clients int, stop <-chan struct{}) func() ([]time.Duration, int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	var lat []time.Duration
	failed := 0
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h2cClient()
			c.Timeout = 3 * time.Second
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				resp, err := c.Get("http://" + addr + path)
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				mu.Lock()
				if ok {
					lat = append(lat, time.Since(start))
				} else {
					failed++
				}
				mu.Unlock()
			}
		}()
	}
	return func() ([]time.Duration, int) {
		wg.Wait()
		slices.Sort(lat)
		return lat, failed
	}
}

// p99 is the 99th percentile of sorted latencies, or 0 for none.
func p99(lat []time.Duration) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[len(lat)*99/100]
}

// TestStoppedReaderDoesNotStallTheSharedUpstream: a client that opens five
// streams to a 10 MB response and never reads (no WINDOW_UPDATE) must not
// stall the other clients whose requests share the upstream h2c
// connection.
func TestStoppedReaderDoesNotStallTheSharedUpstream(t *testing.T) {
	const big = 10 << 20
	var bigWritten atomic.Int64
	chunk := make([]byte, 32<<10)
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big" {
			_, _ = io.WriteString(w, "ok")
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(big))
		for sent := 0; sent < big; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			bigWritten.Add(int64(len(chunk)))
		}
	}))
	srv := startProxy(t, simpleConfig("h2c", "", "h2c", be.addr))
	addr := srv.Addr("out").String()

	legit := func(d time.Duration) ([]time.Duration, int) {
		stop := make(chan struct{})
		time.AfterFunc(d, func() { close(stop) })
		return legitLoad(addr, "/small", 4, stop)()
	}
	// Warm the shared upstream connection, and measure the service time
	// without the attack.
	base, failed := legit(500 * time.Millisecond)
	if failed > 0 || len(base) == 0 {
		t.Fatalf("without the stopped reader: %d ok, %d failed", len(base), failed)
	}

	h := dialH2C(t, addr)
	h.c.SetDeadline(time.Time{})
	for i := range 5 {
		h.request(uint32(2*i+1), "GET", "/big", true)
	}
	// The upstream keeps sending until the proxy's receive windows for
	// the five streams are full.
	var last int64 = -1
	eventually(t, 10*time.Second, "the upstream to stop sending the big responses", func() bool {
		time.Sleep(200 * time.Millisecond)
		n := bigWritten.Load()
		stable := n == last
		last = n
		return stable
	})
	lat, failed := legit(2 * time.Second)
	t.Logf("the stopped reader holds %d MiB sent by the upstream; legitimate requests: %d ok, %d failed, p99 %v (without it %v over %d)",
		last>>20, len(lat), failed, p99(lat), p99(base), len(base))
	if failed > 0 || len(lat) == 0 {
		t.Fatalf("beside the stopped reader %d legitimate requests failed (%d ok)", failed, len(lat))
	}
	if p := p99(lat); p > time.Second {
		t.Fatalf("beside the stopped reader legitimate p99 is %v, want under a second", p)
	}
}

// TestBrokenRequestBodyEndsTheExchange: a request body that breaks off (a
// malformed chunk size, a client that half-closes or vanishes mid-body)
// ends the exchange at once, upstream and downstream: the client that is
// still there gets a 400 (never a 200 written in the proxy's name, nor a
// 504 at the route timeout), and the upstream request is cut off.
func TestBrokenRequestBodyEndsTheExchange(t *testing.T) {
	for _, upstream := range []string{"http1", "h2c"} {
		t.Run(upstream, func(t *testing.T) {
			ended := make(chan error, 4)
			be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, err := io.Copy(io.Discard, r.Body)
				if err == nil {
					// A whole body: answer, and see whether the client is
					// still there to get it.
					_, _ = io.WriteString(w, "ok")
				}
				ended <- err
			}))
			// The route timeout (10s) is twice the clients' read deadline
			// (5s): an exchange left to time out fails the test.
			srv := startProxy(t, simpleConfig("http1", "", upstream, be.addr))
			addr := srv.Addr("out").String()
			send := func(raw string, closeWrite, vanish bool) (*http.Response, string, error) {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(c, raw); err != nil {
					t.Fatal(err)
				}
				if vanish {
					// Let the proxy start the upstream request first.
					time.Sleep(100 * time.Millisecond)
					c.Close()
					return nil, "", nil
				}
				if closeWrite {
					c.(*net.TCPConn).CloseWrite()
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					return nil, "", err
				}
				b, _ := io.ReadAll(resp.Body)
				return resp, string(b), nil
			}
			for _, tc := range []struct {
				name             string
				raw              string
				closeWrite, gone bool
			}{
				{"malformed chunk size", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n\r\n", false, false},
				{"half-close mid-body", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello", true, false},
				{"half-close mid-chunk", "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", true, false},
				{"vanished mid-body", "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello", false, true},
			} {
				resp, body, err := send(tc.raw, tc.closeWrite, tc.gone)
				switch {
				case tc.gone:
				case err != nil:
					t.Errorf("%s: no answer within 5s: %v", tc.name, err)
				case resp.StatusCode != http.StatusBadRequest:
					t.Errorf("%s: %d %q, want 400", tc.name, resp.StatusCode, body)
				}
				select {
				case err := <-ended:
					if err == nil {
						t.Errorf("%s: the upstream got a whole request", tc.name)
					}
				case <-time.After(5 * time.Second):
					t.Errorf("%s: the upstream request was still open 5s later", tc.name)
				}
			}
		})
	}
}

// TestH2PseudoHeadersAreValidatedBeforeHTTP1: an HTTP/2 request whose
// :method, :path or :authority would break an HTTP/1.1 request line or
// Host field is refused, never forwarded; a bodiless HTTP/2 request goes
// upstream without a body (no chunked framing).
func TestH2PseudoHeadersAreValidatedBeforeHTTP1(t *testing.T) {
	type seen struct {
		method, uri, host string
		te                []string
		cl                int64
	}
	got := make(chan seen, 16)
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.RequestURI, r.Host, r.TransferEncoding, r.ContentLength}
	}))
	srv := startProxy(t, simpleConfig("h2c", "", "http1", be.addr))
	h := dialH2C(t, srv.Addr("out").String())
	id := uint32(1)
	send := func(method, path, authority string) string {
		defer func() { id += 2 }()
		h.encBuf.Reset()
		for _, f := range [][2]string{{":method", method}, {":scheme", "http"}, {":authority", authority}, {":path", path}} {
			h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.encBuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		return h.status(id)
	}
	for _, tc := range []struct{ method, path, authority string }{
		{"GET", "/a b HTTP/1.1\r\nX-Injected: 1", "a"},
		{"GET", "/a b", "a"},
		{"GET", "/a\x7f", "a"},
		{"G T", "/", "a"},
		{"GET /x HTTP/1.1\r\nX:", "/", "a"},
		{"GET", "/", "a b"},
		{"GET", "/", "a\tb"},
	} {
		// Refused means a 400, or the stream reset by net/http's own
		// checks (it refuses CR, LF and DEL in any field).
		st := send(tc.method, tc.path, tc.authority)
		if _, reset := h.resets[id-2]; st != "400" && !(st == "" && reset) {
			t.Errorf(":method %q :path %q :authority %q: status %q, want 400 or a reset", tc.method, tc.path, tc.authority, st)
		}
	}
	select {
	case s := <-got:
		t.Fatalf("a malformed request reached the backend: %+v", s)
	default:
	}
	if st := send("GET", "/ok", "echo"); st != "200" {
		t.Fatalf("a good request: %q", st)
	}
	s := <-got
	if s.method != "GET" || s.uri != "/ok" || s.host != "echo" || len(s.te) != 0 || s.cl != 0 {
		t.Fatalf("the backend saw %+v, want GET /ok, Host echo, no body framing", s)
	}
}

// h2Abuse runs attack on a raw h2c connection to addr, frame after frame,
// until the server answers with a GOAWAY (or closes), up to 5s or 50,000
// calls. It returns how long the GOAWAY took, its code (0 if none came)
// and the number of calls made.
func h2Abuse(t *testing.T, addr string, attack func(h *h2Conn, i int) error) (took time.Duration, code http2.ErrCode, calls int) {
	t.Helper()
	h := dialH2C(t, addr)
	h.c.SetDeadline(time.Now().Add(10 * time.Second))
	type goAway struct {
		at   time.Time
		code http2.ErrCode
		ok   bool
	}
	ended := make(chan goAway, 1)
	go func() {
		for {
			f, err := h.fr.ReadFrame()
			if err != nil {
				ended <- goAway{at: time.Now()}
				return
			}
			if g, ok := f.(*http2.GoAwayFrame); ok {
				ended <- goAway{at: time.Now(), code: g.ErrCode, ok: true}
				return
			}
		}
	}()
	start := time.Now()
	deadline := start.Add(5 * time.Second)
	for calls = 0; calls < 50000 && time.Now().Before(deadline); calls++ {
		select {
		case g := <-ended:
			if !g.ok {
				return 0, 0, calls
			}
			return g.at.Sub(start), g.code, calls
		default:
		}
		if err := attack(h, calls); err != nil {
			break
		}
	}
	select {
	case g := <-ended:
		if g.ok {
			return g.at.Sub(start), g.code, calls
		}
	case <-time.After(2 * time.Second):
	}
	return 0, 0, calls
}

// TestH2AbuseIsAnsweredWithGoAway: rapid reset, an HPACK bomb, a SETTINGS
// flood and a PING flood each get GOAWAY ENHANCE_YOUR_CALM within a
// second, while legitimate h2c clients beside the attacker keep their
// service; few of the reset streams reach the upstream.
func TestH2AbuseIsAnsweredWithGoAway(t *testing.T) {
	var attacks atomic.Int64
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/attack" {
			attacks.Add(1)
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv := startProxy(t, simpleConfig("auto", "", "h2c", be.addr))
	addr := srv.Addr("out").String()

	bomb := strings.Repeat("b", 4000)
	cases := []struct {
		name, reason string
		attack       func(h *h2Conn, i int) error
	}{
		{"rapid reset", "rapid_reset", func(h *h2Conn, i int) error {
			id := uint32(2*i + 1)
			h.encBuf.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/attack"}} {
				h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			if err := h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: h.encBuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
				return err
			}
			return h.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}},
		{"hpack bomb", "header_list_too_long", func(h *h2Conn, i int) error {
			// After the first block the 4000-byte field is in the dynamic
			// table: each block is a few dozen bytes that decode to 80 KB.
			h.encBuf.Reset()
			for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/attack"}} {
				h.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			for range 20 {
				h.enc.WriteField(hpack.HeaderField{Name: "x-bomb", Value: bomb})
			}
			return h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: h.encBuf.Bytes(), EndStream: true, EndHeaders: true})
		}},
		{"settings flood", "settings_flood", func(h *h2Conn, i int) error { return h.fr.WriteSettings() }},
		{"ping flood", "ping_flood", func(h *h2Conn, i int) error { return h.fr.WritePing(false, [8]byte{byte(i)}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := attacks.Load()
			// Legitimate clients, each on its own connection, beside the
			// attacker.
			stop := make(chan struct{})
			wait := legitLoad(addr, "/normal", 2, stop)
			took, code, calls := h2Abuse(t, addr, tc.attack)
			time.Sleep(200 * time.Millisecond)
			close(stop)
			lat, failed := wait()
			tail := p99(lat)
			forwarded := attacks.Load() - before
			t.Logf("%s: GOAWAY %v after %v and %d frames; %d attack streams forwarded; legitimate: %d ok, %d failed, p99 %v",
				tc.name, code, took, calls, forwarded, len(lat), failed, tail)
			if code != http2.ErrCodeEnhanceYourCalm {
				t.Errorf("no GOAWAY ENHANCE_YOUR_CALM after %d frames (got %v)", calls, code)
			} else if took > time.Second {
				t.Errorf("GOAWAY came after %v, want within a second", took)
			}
			if got := counterValue(t, srv, "http2_abuse_goaway_total", map[string]string{"reason": tc.reason}); got < 1 {
				t.Errorf("http2_abuse_goaway_total{reason=%q} = %v", tc.reason, got)
			}
			if tc.reason == "rapid_reset" && forwarded*20 > int64(calls) {
				t.Errorf("%d of %d reset streams were forwarded, want at most 5%%", forwarded, calls)
			}
			if failed > 0 || len(lat) == 0 || tail > time.Second {
				t.Errorf("legitimate clients beside the attack: %d ok, %d failed, p99 %v", len(lat), failed, tail)
			}
		})
	}
}

// TestSlowRequestBodiesAreBounded: a request body that stalls ends at the
// listener's body_idle_timeout (408, the upstream request cut off), and
// the requests a stalling client holds open never take more upstream
// connections than the cluster's cap.
func TestSlowRequestBodiesAreBounded(t *testing.T) {
	// peak is the most upstream requests open at once before the first
	// body timeout (300ms) could fire: after that, a connection the proxy
	// closed may still be open at the backend while its replacement
	// already is.
	var open, peak atomic.Int64
	var start time.Time
	ended := make(chan error, 64)
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := open.Add(1)
		defer open.Add(-1)
		for p := peak.Load(); time.Since(start) < 250*time.Millisecond && n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		_, err := io.Copy(io.Discard, r.Body)
		ended <- err
	}))
	cfg := strings.Replace(simpleConfig("http1", "", "http1", be.addr), "  routes:\n", "  limits: {body_idle_timeout: 300ms}\n  routes:\n", 1) +
		"  pool: {max_conns_per_endpoint: 4}\n"
	srv := startProxy(t, cfg)
	addr := srv.Addr("out").String()

	const clients = 12
	var wg sync.WaitGroup
	statuses := make(chan int, clients)
	start = time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(8 * time.Second))
			// Headers and one byte of a 1000-byte body, then nothing.
			io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nx")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Logf("no response: %v", err)
				statuses <- 0
				return
			}
			statuses <- resp.StatusCode
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(statuses)
	got := map[int]int{}
	for st := range statuses {
		got[st]++
	}
	t.Logf("%d stalled bodies: statuses %v in %v; upstream requests open at once at most %d", clients, got, took, peak.Load())
	if got[http.StatusRequestTimeout] != clients {
		t.Errorf("statuses %v, want %d × 408; the proxy recorded 408 %v, 499 %v, 400 %v", got, clients,
			counterValue(t, srv, "response_total", map[string]string{"status_code": "408"}),
			counterValue(t, srv, "response_total", map[string]string{"status_code": "499"}),
			counterValue(t, srv, "response_total", map[string]string{"status_code": "400"}))
	}
	if p := peak.Load(); p > 4 || p == 0 {
		t.Errorf("%d upstream requests were open at once, want 1 to 4 (max_conns_per_endpoint)", p)
	}
	// Three rounds of four at 300ms each, well inside the 10s route
	// timeout that would otherwise end them.
	if took > 5*time.Second {
		t.Errorf("the stalled bodies took %v to end", took)
	}
	for range clients {
		select {
		case err := <-ended:
			if err == nil {
				t.Error("an upstream request got a whole body")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("an upstream request was not cut off")
		}
	}
}

// TestConnectionsPerSourceAreBounded: beyond max_connections_per_source,
// a source's connection is closed at once, while another source is still
// served.
func TestConnectionsPerSourceAreBounded(t *testing.T) {
	be := startCountingBackend(t)
	srv := startProxy(t, strings.Replace(simpleConfig("http1", "", "same", be.addr), "  routes:\n", "  limits: {max_connections_per_source: 3}\n  routes:\n", 1))
	addr := srv.Addr("out").String()
	dialFrom := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	serves := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		return err == nil && resp.StatusCode == 200
	}
	var held []net.Conn
	for range 3 {
		c := dialFrom("127.0.0.1")
		if !serves(c) {
			t.Fatal("a connection within the limit was not served")
		}
		held = append(held, c)
	}
	if serves(dialFrom("127.0.0.1")) {
		t.Fatal("a fourth connection from one source was served")
	}
	if !serves(dialFrom("127.0.0.2")) {
		t.Fatal("another source was refused")
	}
	eventually(t, 5*time.Second, "the refusal to be counted", func() bool {
		return counterValue(t, srv, "tcp_refused_total", nil) == 1
	})
	// A slot freed is a slot taken again.
	held[0].Close()
	eventually(t, 5*time.Second, "a freed slot to serve again", func() bool { return serves(dialFrom("127.0.0.1")) })
}

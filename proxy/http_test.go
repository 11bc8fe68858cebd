package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// echoHandler answers with a JSON description of the request it got, echoes
// the body's hash, and sets a trailer.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		w.Header().Set("Trailer", "X-Body-Sha256")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Connection", "X-Backend-Private")
		w.Header().Set("X-Backend-Private", "must not pass")
		w.Header().Set("Keep-Alive", "timeout=5")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"proto": r.Proto, "host": r.Host, "method": r.Method, "uri": r.RequestURI,
			"header": r.Header, "body_len": n,
		})
		w.Header().Set("X-Body-Sha256", fmt.Sprintf("%x", h.Sum(nil)))
	})
}

type echoed struct {
	Proto, Host, Method, URI string
	Header                   http.Header
	BodyLen                  int64 `json:"body_len"`
}

func decodeEcho(t *testing.T, resp *http.Response) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal([]byte(readAll(t, resp)), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestForwardingHeadersAndBodies(t *testing.T) {
	be := startBackend(t, echoHandler())
	tlsDir := selfSigned(t)
	plain := startProxy(t, simpleConfig("auto", "", "same", be.addr))
	secure := startProxy(t, simpleConfig("h2", tlsDir, "same", be.addr))
	for _, tc := range []struct {
		name      string
		client    *http.Client
		base      string
		wantProto string // downstream protocol of the response
		upstream  string // protocol the backend saw
		xfp       string
	}{
		{"http1", h1Client(), proxyURL(plain, ""), "HTTP/1.1", "HTTP/1.1", "http"},
		{"h2c", h2cClient(), proxyURL(plain, ""), "HTTP/2.0", "HTTP/2.0", "http"},
		{"h2-tls", tlsClient(t, tlsDir, true), "https://" + secure.Addr("out").String(), "HTTP/2.0", "HTTP/2.0", "https"},
		{"http1-tls", tlsClient(t, tlsDir, false), "https://" + secure.Addr("out").String(), "HTTP/1.1", "HTTP/1.1", "https"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
			req, _ := http.NewRequest("POST", tc.base+"/p/a%3Bth%20x?q=1&r=2", bytes.NewReader(body))
			req.Host = "echo.default"
			req.Header.Set("X-Forwarded-For", "203.0.113.7")
			req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			req.Header.Set("X-B3-Traceid", "463ac35c9f6413ad48485a3953bb6124")
			req.Header.Set("X-B3-Spanid", "a2fb4a1d1a96d312")
			req.Header.Set("B3", "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1")
			if tc.wantProto == "HTTP/1.1" { // HTTP/2 has no connection-specific fields
				req.Header.Set("Connection", "X-Hop")
				req.Header.Set("X-Hop", "private to the first hop")
				req.Header.Set("Proxy-Connection", "keep-alive")
			}
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Proto != tc.wantProto {
				t.Errorf("downstream proto = %s, want %s", resp.Proto, tc.wantProto)
			}
			e := decodeEcho(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if e.Proto != tc.upstream {
				t.Errorf("backend saw %s, want %s", e.Proto, tc.upstream)
			}
			if e.Host != "echo.default" {
				t.Errorf("authority not preserved: %q", e.Host)
			}
			if e.URI != "/p/a%3Bth%20x?q=1&r=2" {
				t.Errorf("request URI changed: %q", e.URI)
			}
			if e.BodyLen != int64(len(body)) {
				t.Errorf("backend got %d body bytes, want %d", e.BodyLen, len(body))
			}
			if want := fmt.Sprintf("%x", sha256.Sum256(body)); resp.Trailer.Get("X-Body-Sha256") != want {
				t.Errorf("trailer X-Body-Sha256 = %q, want %q (trailers: %v)", resp.Trailer.Get("X-Body-Sha256"), want, resp.Trailer)
			}
			h := e.Header
			if got := h.Get("X-Forwarded-For"); got != "203.0.113.7, 127.0.0.1" {
				t.Errorf("X-Forwarded-For = %q", got)
			}
			if got := h.Get("X-Forwarded-Proto"); got != tc.xfp {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got, tc.xfp)
			}
			if got := h.Get("X-Request-Id"); !uuidRE.MatchString(got) {
				t.Errorf("X-Request-Id = %q, want a generated UUID", got)
			}
			for _, k := range []string{"Traceparent", "X-B3-Traceid", "X-B3-Spanid", "B3"} {
				if h.Get(k) != req.Header.Get(k) {
					t.Errorf("%s not propagated: %q", k, h.Get(k))
				}
			}
			for _, k := range []string{"X-Hop", "Proxy-Connection", "Connection"} {
				if v, ok := h[k]; ok {
					t.Errorf("hop-by-hop %s forwarded: %q", k, v)
				}
			}
			hops := []string{"Keep-Alive"}
			if tc.upstream == "HTTP/1.1" { // an HTTP/2 backend cannot send Connection
				hops = append(hops, "X-Backend-Private")
			}
			for _, k := range hops {
				if v := resp.Header.Get(k); v != "" {
					t.Errorf("hop-by-hop response header %s passed: %q", k, v)
				}
			}
		})
	}
}

func TestRequestIDKeptAndHeaderEdits(t *testing.T) {
	be := startBackend(t, echoHandler())
	srv := startProxy(t, fmt.Sprintf(`listeners:
- name: out
  address: 127.0.0.1:0
  routes:
  - match: {path_prefix: /edit}
    cluster: c
    request_headers: {add: {x-mesh: "on", x-multi: "two"}, remove: [x-secret]}
  - match: {}
    cluster: c
clusters:
- name: c
  endpoints: [%s]
`, be.addr))
	req, _ := http.NewRequest("GET", proxyURL(srv, "/edit"), nil)
	req.Header.Set("X-Request-Id", "client-chosen")
	req.Header.Set("X-Secret", "s")
	req.Header.Set("X-Multi", "one")
	resp, err := h1Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	h := decodeEcho(t, resp).Header
	if got := h.Get("X-Request-Id"); got != "client-chosen" {
		t.Errorf("X-Request-Id = %q, want the client's", got)
	}
	if h.Get("X-Secret") != "" {
		t.Error("removed header forwarded")
	}
	if h.Get("X-Mesh") != "on" || strings.Join(h.Values("X-Multi"), ",") != "one,two" {
		t.Errorf("added headers: X-Mesh=%q X-Multi=%q", h.Get("X-Mesh"), h.Values("X-Multi"))
	}
	resp, err = h1Client().Get(proxyURL(srv, "/other"))
	if err != nil {
		t.Fatal(err)
	}
	if h := decodeEcho(t, resp).Header; h.Get("X-Mesh") != "" {
		t.Error("edits of another route applied")
	}
}

func TestRoutingOverSockets(t *testing.T) {
	a := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a") }))
	b := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b") }))
	srv := startProxy(t, fmt.Sprintf(`listeners:
- name: out
  address: 127.0.0.1:0
  routes:
  - match: {authority: "*.b.svc", headers: [{name: x-canary, present: true}]}
    cluster: b
  - match: {authority: "*.b.svc"}
    cluster: a
  - match: {path: /b}
    cluster: b
clusters:
- {name: a, endpoints: [%s]}
- {name: b, endpoints: [%s]}
`, a.addr, b.addr))
	do := func(host, path string, canary bool) (int, string) {
		req, _ := http.NewRequest("GET", proxyURL(srv, path), nil)
		req.Host = host
		if canary {
			req.Header.Set("X-Canary", "1")
		}
		resp, err := h1Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, readAll(t, resp)
	}
	for _, tc := range []struct {
		host, path string
		canary     bool
		code       int
		body       string
	}{
		{"x.b.svc", "/", true, 200, "b"},
		{"x.b.svc:80", "/", false, 200, "a"},
		{"other", "/b", false, 200, "b"},
		{"other", "/b/c", false, 404, "no route\n"},
	} {
		if code, body := do(tc.host, tc.path, tc.canary); code != tc.code || body != tc.body {
			t.Errorf("%s%s canary=%v: %d %q, want %d %q", tc.host, tc.path, tc.canary, code, body, tc.code, tc.body)
		}
	}
	if n := counterValue(t, srv, "response_total", map[string]string{"route": "", "status_code": "404"}); n != 1 {
		t.Errorf("404s counted: %v", n)
	}
}

func TestProtocolRestrictedListeners(t *testing.T) {
	be := startBackend(t, echoHandler())
	h1only := startProxy(t, simpleConfig("http1", "", "same", be.addr))
	h2only := startProxy(t, simpleConfig("h2c", "", "same", be.addr))
	if _, err := h2cClient().Get(proxyURL(h1only, "/")); err == nil {
		t.Error("http1 listener accepted an h2c connection")
	}
	if resp, err := h1Client().Get(proxyURL(h1only, "/")); err != nil || resp.StatusCode != 200 {
		t.Errorf("http1 listener refused HTTP/1.1: %v", err)
	} else {
		resp.Body.Close()
	}
	if _, err := h1Client().Get(proxyURL(h2only, "/")); err == nil {
		t.Error("h2c listener accepted HTTP/1.1")
	}
	resp, err := h2cClient().Get(proxyURL(h2only, "/"))
	if err != nil {
		t.Fatalf("h2c listener refused h2c: %v", err)
	}
	if e := decodeEcho(t, resp); e.Proto != "HTTP/2.0" {
		t.Errorf("backend saw %s", e.Proto)
	}
}

func TestUpstreamProtocolChoice(t *testing.T) {
	be := startBackend(t, echoHandler())
	for _, tc := range []struct {
		upstream string
		client   *http.Client
		want     string
	}{
		{"http1", h2cClient(), "HTTP/1.1"},
		{"h2c", h1Client(), "HTTP/2.0"},
		{"same", h1Client(), "HTTP/1.1"},
		{"same", h2cClient(), "HTTP/2.0"},
	} {
		srv := startProxy(t, simpleConfig("auto", "", tc.upstream, be.addr))
		resp, err := tc.client.Get(proxyURL(srv, "/"))
		if err != nil {
			t.Fatal(err)
		}
		if e := decodeEcho(t, resp); e.Proto != tc.want {
			t.Errorf("cluster protocol %s, client %s: backend saw %s, want %s", tc.upstream, resp.Proto, e.Proto, tc.want)
		}
	}
}

// TestStreamingBothWays sends a request body in chunks and reads each
// chunk's echo before sending the next: it passes only if neither direction
// is buffered by the proxy.
func TestStreamingBothWays(t *testing.T) {
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 {
			http.NewResponseController(w).EnableFullDuplex()
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		br := bufio.NewReader(r.Body)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				io.WriteString(w, "echo:"+line)
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	}))
	srv := startProxy(t, simpleConfig("auto", "", "same", be.addr))
	for name, client := range map[string]*http.Client{"http1": h1Client(), "h2c": h2cClient()} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			pr, pw := io.Pipe()
			req, _ := http.NewRequestWithContext(ctx, "POST", proxyURL(srv, "/stream"), pr)
			type result struct {
				resp *http.Response
				err  error
			}
			got := make(chan result, 1)
			go func() { r, err := client.Do(req); got <- result{r, err} }()
			// HTTP/1.1 clients send headers only with the first body bytes.
			io.WriteString(pw, "line-0\n")
			res := <-got
			if res.err != nil {
				t.Fatal(res.err)
			}
			defer res.resp.Body.Close()
			br := bufio.NewReader(res.resp.Body)
			for i := 0; i < 5; i++ {
				if i > 0 {
					fmt.Fprintf(pw, "line-%d\n", i)
				}
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("reading echo %d: %v", i, err)
				}
				if want := fmt.Sprintf("echo:line-%d\n", i); line != want {
					t.Fatalf("echo %d = %q, want %q", i, line, want)
				}
			}
			pw.Close()
			if rest, _ := io.ReadAll(br); len(rest) != 0 {
				t.Errorf("unexpected tail %q", rest)
			}
		})
	}
}

func TestUpstreamConnectionReuse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client *http.Client
	}{{"http1", h1Client()}, {"h2c", h2cClient()}} {
		t.Run(tc.name, func(t *testing.T) {
			be := startBackend(t, echoHandler())
			srv := startProxy(t, simpleConfig("auto", "", "same", be.addr))
			for i := 0; i < 50; i++ {
				resp, err := tc.client.Get(proxyURL(srv, "/"))
				if err != nil {
					t.Fatal(err)
				}
				readAll(t, resp)
			}
			if n := be.conns.Load(); n != 1 {
				t.Errorf("50 sequential requests opened %d upstream connections, want 1", n)
			}
		})
	}
}

func TestFailuresMapToStatus(t *testing.T) {
	slow := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	reset := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	srv := startProxy(t, fmt.Sprintf(`listeners:
- name: out
  address: 127.0.0.1:0
  routes:
  - {match: {path: /refused}, cluster: refused}
  - {match: {path: /slow}, cluster: slow, timeout: 200ms}
  - {match: {path: /reset}, cluster: reset}
clusters:
- {name: refused, endpoints: [%s]}
- {name: slow, endpoints: [%s]}
- {name: reset, protocol: http1, endpoints: [%s]}
`, closed, slow.addr, reset.addr))
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/refused", 503, "upstream connect error\n"},
		{"/slow", 504, "upstream request timeout\n"},
		{"/reset", 502, "upstream reset or protocol error\n"},
		{"/nowhere", 404, "no route\n"},
	} {
		start := time.Now()
		resp, err := h1Client().Get(proxyURL(srv, tc.path))
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != tc.code || body != tc.body || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: %d %q (%s), want %d %q", tc.path, resp.StatusCode, body, resp.Header.Get("Content-Type"), tc.code, tc.body)
		}
		if tc.path == "/slow" && time.Since(start) > 3*time.Second {
			t.Errorf("route timeout of 200ms took %v", time.Since(start))
		}
	}
	if n := counterValue(t, srv, "response_total", map[string]string{"cluster": "refused", "status_code": "503", "classification": "failure"}); n != 1 {
		t.Errorf("503 failure series = %v, want 1", n)
	}
}

// TestClientCancellationPropagates checks that a client that goes away
// cancels the upstream request.
func TestClientCancellationPropagates(t *testing.T) {
	cancelled := make(chan struct{}, 4)
	started := make(chan struct{}, 4)
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	}))
	srv := startProxy(t, simpleConfig("auto", "", "same", be.addr))
	for name, client := range map[string]*http.Client{"http1": h1Client(), "h2c": h2cClient()} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", proxyURL(srv, "/hang"), nil)
			errc := make(chan error, 1)
			go func() { _, err := client.Do(req); errc <- err }()
			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("request never reached the backend")
			}
			cancel()
			select {
			case <-cancelled:
			case <-time.After(5 * time.Second):
				t.Fatal("backend request was not cancelled after the client went away")
			}
			<-errc
		})
	}
	eventually(t, 5*time.Second, "client-closed responses to be recorded", func() bool {
		return counterValue(t, srv, "response_total", map[string]string{"status_code": "499"}) == 2
	})
}

// TestHashBalancingThroughProxy: with ring_hash and maglev on a header,
// every request of one user reaches the same backend, and users spread
// over all backends.
func TestHashBalancingThroughProxy(t *testing.T) {
	var addrs []string
	for i := range 3 {
		name := fmt.Sprint("b", i)
		be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) }))
		addrs = append(addrs, be.addr)
	}
	for _, policy := range []string{"ring_hash", "maglev"} {
		t.Run(policy, func(t *testing.T) {
			srv := startProxy(t, fmt.Sprintf("listeners:\n- name: out\n  address: 127.0.0.1:0\n  routes: [{cluster: c}]\nclusters:\n- name: c\n  balancer: {policy: %s, hash_header: x-user}\n  endpoints: [%s]\n",
				policy, strings.Join(addrs, ", ")))
			client := h1Client()
			seen := map[string]bool{}
			for u := range 30 {
				first := ""
				for range 5 {
					req, _ := http.NewRequest("GET", proxyURL(srv, "/"), nil)
					req.Header.Set("X-User", fmt.Sprint("user-", u))
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					got := readAll(t, resp)
					if first == "" {
						first = got
					} else if got != first {
						t.Fatalf("user-%d went to %s and %s", u, first, got)
					}
				}
				seen[first] = true
			}
			if len(seen) != 3 {
				t.Errorf("30 users reached %d of 3 backends", len(seen))
			}
		})
	}
}

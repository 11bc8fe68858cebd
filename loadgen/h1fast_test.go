package loadgen

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawServer answers each request read on a connection with the next of
// responses (cycling), written verbatim; it counts connections.
func rawServer(t *testing.T, responses ...string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int64
	var next atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					resp := responses[int(next.Add(1)-1)%len(responses)]
					if _, err := io.WriteString(c, resp); err != nil || strings.Contains(resp, "Connection: close") || strings.HasPrefix(resp, "HTTP/1.0") {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), &conns
}

func TestH1ConnParsesResponses(t *testing.T) {
	cases := []struct {
		name, resp string
		want       outcome
		conns      int64 // connections used by 3 requests
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Backend: b7\r\n\r\nhello", outcome{backend: "b7", status: "200"}, 1},
		{"chunked with trailer", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n", outcome{status: "200"}, 1},
		{"interim 103 then 503", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", outcome{status: "503", errClass: "http_503"}, 1},
		{"204 without length", "HTTP/1.1 204 No Content\r\n\r\n", outcome{status: "204"}, 1},
		{"connection close", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", outcome{status: "200"}, 3},
		{"http/1.0 body until close", "HTTP/1.0 200 OK\r\n\r\nall of it", outcome{status: "200"}, 3},
		{"malformed", "HTTP/1.1 2xx OK\r\n\r\n", outcome{errClass: "other"}, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := rawServer(t, tc.resp)
			u, _ := url.Parse("http://" + addr + "/p?q=1")
			c := newH1Conn(&httpRequestTemplate{method: "GET", url: u, header: http.Header{"X-A": {"1"}}, timeout: 2 * time.Second}, (&net.Dialer{}).DialContext)
			defer c.close()
			for i := range 3 {
				if got := c.do(context.Background()); got != tc.want {
					t.Fatalf("request %d: %+v, want %+v", i, got, tc.want)
				}
			}
			if n := conns.Load(); n != tc.conns {
				t.Errorf("%d connections, want %d", n, tc.conns)
			}
		})
	}
}

func TestH1ConnSendsTheRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	var body string
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		b, _ := io.ReadAll(req.Body)
		body = string(b)
		got <- req
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	}()
	u, _ := url.Parse("http://" + ln.Addr().String() + "/x?y=z")
	c := newH1Conn(&httpRequestTemplate{method: "POST", url: u, host: "svc.local", header: http.Header{"X-Test": {"a", "b"}}, body: []byte("payload"), timeout: 2 * time.Second}, (&net.Dialer{}).DialContext)
	defer c.close()
	if o := c.do(context.Background()); o.errClass != "" {
		t.Fatalf("%+v", o)
	}
	r := <-got
	if r.Method != "POST" || r.RequestURI != "/x?y=z" || r.Host != "svc.local" || strings.Join(r.Header.Values("X-Test"), ",") != "a,b" || body != "payload" || r.ContentLength != 7 {
		t.Errorf("server saw %s %s host %s header %v body %q", r.Method, r.RequestURI, r.Host, r.Header, body)
	}
}

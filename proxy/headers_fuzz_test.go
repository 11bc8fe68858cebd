package proxy

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzHeaders runs the proxy's header handling on arbitrary fields: the
// request header forwarded upstream, the response header copied back, and
// grpc-timeout parsing and formatting. It must never panic; hop-by-hop
// fields and the fields the Connection header names never survive (but
// "TE: trailers"); X-Forwarded-For ends with the client's address; every
// forwarded request has an X-Request-Id; and a grpc-timeout written back
// never grants more time than it was given.
func FuzzHeaders(f *testing.F) {
	f.Add("Connection: X-A, close\nX-A: 1\nKeep-Alive: timeout=5\nTe: trailers\nX-B: 2", "10.0.0.1:5555", "100m", true)
	f.Add("Connection: Te\nTe: trailers, deflate", "[::1]:80", "1S", false)
	f.Add("Connection: X-Request-Id, X-Forwarded-Proto\nX-Request-Id: abc\nX-Forwarded-Proto: https\nX-Forwarded-For: 1.2.3.4", "127.0.0.1:1", "99999999H", true)
	f.Add("Proxy-Connection: keep-alive\nUpgrade: h2c\nTransfer-Encoding: chunked\nTrailer: X-T", "host-without-port", "-1S", false)
	f.Fuzz(func(t *testing.T, fields, remote, grpcTimeout string, tls bool) {
		in := http.Header{}
		for _, line := range strings.Split(fields, "\n") {
			k, v, _ := strings.Cut(line, ":")
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			in[k] = append(in[k], strings.TrimSpace(v))
		}
		named := map[string]bool{}
		for _, v := range in["Connection"] {
			for _, tok := range strings.Split(v, ",") {
				// Empty list elements name nothing (RFC 9110, 5.6.1).
				if tok = strings.TrimSpace(tok); tok != "" {
					named[http.CanonicalHeaderKey(tok)] = true
				}
			}
		}
		h := &handler{tls: tls}
		r := &http.Request{Header: in, RemoteAddr: remote}
		d, ok := parseGRPCTimeout(grpcTimeout)
		out := h.upstreamHeader(r, &routeState{}, ok, time.Now().Add(d))

		// Fields the proxy sets itself after the client's are removed.
		own := map[string]bool{"X-Forwarded-For": true, "X-Forwarded-Proto": true, "X-Request-Id": true, "User-Agent": true, "Grpc-Timeout": true}
		for k, vv := range out {
			if k == "Te" {
				if len(vv) != 1 || vv[0] != "trailers" {
					t.Fatalf("TE forwarded as %q", vv)
				}
			} else if hopHeaders[k] {
				t.Fatalf("hop-by-hop %s forwarded: %q", k, vv)
			}
			if named[k] && !own[k] && k != "Te" {
				t.Fatalf("%s, named by Connection, forwarded: %q", k, vv)
			}
		}
		if xff := out["X-Forwarded-For"]; len(xff) != 1 || !strings.HasSuffix(xff[0], clientIP(remote)) {
			t.Fatalf("X-Forwarded-For %q does not end with the client %q", xff, clientIP(remote))
		}
		if len(out["X-Request-Id"]) == 0 || out["X-Request-Id"][0] == "" {
			t.Fatalf("no X-Request-Id in %v", out)
		}
		if xfp := out["X-Forwarded-Proto"]; len(xfp) == 0 {
			t.Fatalf("no X-Forwarded-Proto in %v", out)
		}

		resp := http.Header{}
		copyResponseHeader(resp, in)
		for k, vv := range resp {
			if hopHeaders[k] || named[k] {
				t.Fatalf("response field %s copied: %q", k, vv)
			}
		}

		if ok {
			if d < 0 {
				t.Fatalf("parseGRPCTimeout(%q) = %v", grpcTimeout, d)
			}
			back, ok2 := parseGRPCTimeout(formatGRPCTimeout(d))
			if !ok2 || back > d || d < 1<<62 && back < d-d/10_000_000-1 {
				t.Fatalf("grpc-timeout %q = %v, written as %q, reads back as %v", grpcTimeout, d, formatGRPCTimeout(d), back)
			}
		}
		if g := grpcStatusOf(in); g < -1 || g > 16 {
			t.Fatalf("grpcStatusOf = %d", g)
		}
	})
}

package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestH2OverTLSAndFlowControl: the HTTP/2 client over TLS with ALPN h2,
// with request bodies larger than the server's initial flow-control window
// and responses larger than the client's, so that both sides' WINDOW_UPDATEs
// carry the exchange; every body arrives whole.
func TestH2OverTLSAndFlowControl(t *testing.T) {
	const reqSize, respSize = 200 << 10, 9 << 20 // the windows: 64 KiB (server's) and 4 MiB (client's)
	var mu sync.Mutex
	var bad []string
	var h2 atomic.Int64
	resp := strings.Repeat("y", respSize)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if r.ProtoMajor == 2 {
			h2.Add(1)
		}
		if err != nil || len(b) != reqSize || strings.Trim(string(b), "x") != "" {
			mu.Lock()
			bad = append(bad, fmt.Sprintf("request body: %d bytes, %v", len(b), err))
			mu.Unlock()
		}
		w.Header().Set("X-Backend", "tls-1")
		io.WriteString(w, resp)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)

	r, err := Run(context.Background(), Spec{Target: srv.URL + "/", Protocol: H2, Connections: 1, Streams: 3, Requests: 12,
		BodySize: reqSize, Method: http.MethodPost, TLS: TLSOptions{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 12 || r.Errors.Total != 0 || r.Endpoints["tls-1"] != 12 || h2.Load() != 12 || len(bad) > 0 {
		t.Fatalf("h2 over TLS: %d requests, errors %v, endpoints %v, %d over HTTP/2, problems %v", r.Requests, r.Errors, r.Endpoints, h2.Load(), bad)
	}
}

// TestH2GoAway: a server that sends GOAWAY after every request (keep-alives
// off) makes the client open a new connection for the next ones; no
// request is lost.
func TestH2GoAway(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.EnableHTTP2 = true
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.SetKeepAlivesEnabled(false)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r, err := Run(context.Background(), Spec{Target: srv.URL + "/", Protocol: H2, Connections: 1, Streams: 1, Requests: 20, TLS: TLSOptions{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 20 || r.Errors.Total != 0 || conns.Load() < 2 {
		t.Fatalf("%d requests, errors %v, over %d connections; want 20 without errors over more than one", r.Requests, r.Errors, conns.Load())
	}
}

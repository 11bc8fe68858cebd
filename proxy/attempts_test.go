package proxy_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestEveryAttemptEndsOnce: whatever way an attempt ends (a response, a
// 503 retried, a body broken off by the upstream, a client that goes away,
// a connect failure), its endpoint's in-flight count comes back to zero,
// never below, and every attempt the backend saw is counted once.
func TestEveryAttemptEndsOnce(t *testing.T) {
	var seen atomic.Int64
	be := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		switch r.URL.Path {
		case "/503":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/broken":
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "half")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/slow":
			<-r.Context().Done()
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	cfg := strings.Replace(simpleConfig("auto", "", "http1", be.addr), "    timeout: 10s\n",
		"    timeout: 10s\n    retry: {attempts: 3, on: [\"503\"], backoff: {base: 1ms}}\n", 1)
	srv := startProxy(t, cfg)
	// A new client, so a new connection, per request: net/http's client
	// would send a GET again on a fresh connection after a reused one
	// closed with no byte of the response (as the broken one does).
	for _, p := range []string{"/ok", "/503", "/broken", "/ok"} {
		if resp, err := h1Client().Get(proxyURL(srv, p)); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "GET", proxyURL(srv, "/slow"), nil)
	if resp, err := h1Client().Do(req); err == nil {
		resp.Body.Close()
	}
	cancel()
	// 1 + 3 (the 503 and its two retries) + 1 + 1 + 1.
	const attempts = 7
	eventually(t, 5*time.Second, "every attempt to end and reach the backend", func() bool {
		return counterValue(t, srv, "upstream_active_requests", nil) == 0 && seen.Load() == attempts
	})
	time.Sleep(50 * time.Millisecond)
	if a := counterValue(t, srv, "upstream_active_requests", nil); a != 0 {
		t.Fatalf("upstream_active_requests = %v after every attempt ended, want 0", a)
	}
	if n := counterValue(t, srv, "upstream_requests_total", nil); n != attempts {
		t.Fatalf("upstream_requests_total = %v, the backend saw %d", n, seen.Load())
	}
}

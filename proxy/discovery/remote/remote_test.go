package remote_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/discovery"
	"github.com/meshbench/meshbench/proxy/discovery/discoverytest"
	"github.com/meshbench/meshbench/proxy/discovery/remote"
)

// sets is a discovery source for one key that delivers what a test
// pushes, and counts how often it was started.
type sets struct {
	started atomic.Int32
	fail    atomic.Pointer[error] // when set, Run fails at start with it
	mu      sync.Mutex
	subs    []chan []discovery.Endpoint
}

func (s *sets) source(remote.Key) discovery.Source { return s }

func (s *sets) Run(ctx context.Context, update func([]discovery.Endpoint)) error {
	s.started.Add(1)
	if err := s.fail.Load(); err != nil {
		return *err
	}
	ch := make(chan []discovery.Endpoint, 16)
	s.mu.Lock()
	s.subs = append(s.subs, ch)
	s.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil
		case eps := <-ch:
			update(eps)
		}
	}
}

// push delivers eps through every running Run.
func (s *sets) push(eps ...discovery.Endpoint) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.subs {
		ch <- eps
	}
}

// waitRunning waits until n Runs have subscribed.
func (s *sets) waitRunning(t *testing.T, n int) {
	t.Helper()
	discoverytest.Eventually(t, "the source's start", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.subs) >= n
	})
}

func ep(addr string, w int) discovery.Endpoint { return discovery.Endpoint{Addr: addr, Weight: w} }

// follow runs a follower against server until the test ends and returns
// what it delivers.
func follow(t *testing.T, server string, key remote.Key, wait time.Duration) *discoverytest.Recorder {
	t.Helper()
	rec := discoverytest.NewRecorder(t)
	discoverytest.Start(t, remote.Follow(remote.Config{Server: server, Key: key, Wait: wait, MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}), rec)
	return rec
}

// quiet checks that rec gets nothing for d.
func quiet(rec *discoverytest.Recorder, d time.Duration) {
	time.Sleep(d)
	rec.None()
}

// requests counts the requests a test server was sent.
var requests atomic.Int64

func newServer(t *testing.T, src *sets) (*remote.Server, *httptest.Server) {
	t.Helper()
	srv := remote.NewServer(src.source, slog.New(slog.DiscardHandler))
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return srv, hs
}

var key = remote.Key{Namespace: "shop", Service: "orders", Port: "http"}

func TestFollowDeliversChanges(t *testing.T) {
	src := &sets{}
	srv, hs := newServer(t, src)
	// A short wait: the follower's requests time out (304) several times
	// between changes, which must deliver nothing.
	updates := follow(t, hs.URL, key, 50*time.Millisecond)
	src.waitRunning(t, 1)
	quiet(updates, 150*time.Millisecond) // no set known yet: nothing, not an empty set
	src.push(ep("10.0.0.2:8080", 1), ep("10.0.0.1:8080", 3))
	updates.Next(ep("10.0.0.1:8080", 3), ep("10.0.0.2:8080", 1)) // sorted
	// Nothing changes for 500 ms: a request waits its 50 ms for a change
	// and is answered 304, about ten in all, not a request per answer.
	before := requests.Load()
	quiet(updates, 500*time.Millisecond)
	if n := requests.Load() - before; n < 3 || n > 20 {
		t.Fatalf("%d requests in 500 ms of long polls waiting 50 ms each, want about 10", n)
	}
	src.push(ep("10.0.0.1:8080", 3))
	updates.Next(ep("10.0.0.1:8080", 3))
	src.push()
	updates.Next()

	// A second proxy asking for the same key shares the source and gets
	// the current set at once.
	second := follow(t, hs.URL, key, time.Second)
	second.Next()
	if n := src.started.Load(); n != 1 || srv.Watching() != 1 {
		t.Fatalf("source started %d times, %d keys watched; want 1 and 1", n, srv.Watching())
	}
	src.push(ep("10.0.0.9:8080", 1))
	updates.Next(ep("10.0.0.9:8080", 1))
	second.Next(ep("10.0.0.9:8080", 1))
}

func TestFollowWaitsForTheServer(t *testing.T) {
	// Reserve a port, start following it while nothing listens, then
	// serve there: the follower retries until it answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	updates := follow(t, "http://"+addr, key, time.Second)
	quiet(updates, 200*time.Millisecond)

	src := &sets{}
	srv, hs := serveAt(t, addr, src)
	src.waitRunning(t, 1)
	src.push(ep("10.0.0.1:8080", 1))
	updates.Next(ep("10.0.0.1:8080", 1))

	// The server goes away: the last set stays (no update); a new server
	// with another set is followed once it answers.
	srv.Close()
	hs.Close()
	quiet(updates, 300*time.Millisecond)
	src2 := &sets{}
	serveAt(t, addr, src2)
	src2.waitRunning(t, 1)
	src2.push(ep("10.0.0.1:8080", 1)) // the same set from the new server: no update
	quiet(updates, 300*time.Millisecond)
	src2.push(ep("10.0.0.2:8080", 1))
	updates.Next(ep("10.0.0.2:8080", 1))
}

// serveAt serves src's sets on addr until the test ends (or the caller
// closes them first).
func serveAt(t *testing.T, addr string, src *sets) (*remote.Server, *http.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	srv := remote.NewServer(src.source, slog.New(slog.DiscardHandler))
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	return srv, hs
}

func TestServerFailingSource(t *testing.T) {
	src := &sets{}
	forbidden := errors.New(`listing EndpointSlices of service shop/orders: endpointslices is forbidden`)
	src.fail.Store(&forbidden)
	srv, hs := newServer(t, src)
	srv.RetryAfterFailure = 100 * time.Millisecond

	resp, err := http.Get(hs.URL + remote.Path + "?namespace=shop&service=orders&wait=1s")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "forbidden") {
		t.Fatalf("failing source: %s %q, want 502 with the source's error", resp.Status, body)
	}
	// After RetryAfterFailure the next request starts the source again;
	// once it works, the follower gets its set.
	src.fail.Store(nil)
	updates := follow(t, hs.URL, remote.Key{Namespace: "shop", Service: "orders"}, time.Second)
	src.waitRunning(t, 1)
	src.push(ep("10.0.0.1:8080", 1))
	updates.Next(ep("10.0.0.1:8080", 1))
	if n := src.started.Load(); n < 2 {
		t.Fatalf("source started %d times, want a retry after its failure", n)
	}
}

func TestServerRequests(t *testing.T) {
	src := &sets{}
	_, hs := newServer(t, src)
	for _, tc := range []struct {
		method, target string
		status         int
		body           string
	}{
		{"GET", remote.Path + "?service=orders", 400, "namespace"},
		{"GET", remote.Path + "?namespace=shop&service=Orders!", 400, "service"},
		{"GET", remote.Path + "?namespace=shop&service=orders&port=a_b", 400, "port"},
		{"GET", remote.Path + "?namespace=shop&service=orders&version=x", 400, "version"},
		{"GET", remote.Path + "?namespace=shop&service=orders&wait=10m", 400, "wait"},
		{"GET", remote.Path + "?namespace=shop&service=orders&wait=-1s", 400, "wait"},
		{"POST", remote.Path + "?namespace=shop&service=orders", 405, "GET"},
		{"GET", "/v2/endpoints", 404, ""},
		// A set not known yet: the wait elapses, 304.
		{"GET", remote.Path + "?namespace=shop&service=orders&wait=20ms", 304, ""},
	} {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.target, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s: %s %q, want %d with %q", tc.method, tc.target, resp.Status, body, tc.status, tc.body)
		}
	}
	if n := src.started.Load(); n != 1 {
		t.Fatalf("source started %d times; only the well-formed request may start it", n)
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

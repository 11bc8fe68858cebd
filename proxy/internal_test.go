package proxy

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/meshbench/meshbench/proxy/balancer"
	"github.com/meshbench/meshbench/proxy/config"
	"github.com/meshbench/meshbench/proxy/discovery"
)

func TestGRPCTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"100m", 100 * time.Millisecond, true},
		{"1S", time.Second, true},
		{"2H", 2 * time.Hour, true},
		{"5u", 5 * time.Microsecond, true},
		{"99999999n", 99999999, true},
		{"123456789m", 0, false}, // more than 8 digits
		{"10", 0, false},
		{"m", 0, false},
		{"-1S", 0, false},
		{"1x", 0, false},
	} {
		got, ok := parseGRPCTimeout(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseGRPCTimeout(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, d := range []time.Duration{1, 99 * time.Millisecond, 1500 * time.Millisecond, 3 * time.Hour, 200 * time.Hour} {
		s := formatGRPCTimeout(d)
		back, ok := parseGRPCTimeout(s)
		if !ok || back > d || back < d-d/1000 {
			t.Errorf("formatGRPCTimeout(%v) = %q, parses back to %v", d, s, back)
		}
	}
}

func TestHopHeaderRemoval(t *testing.T) {
	src := http.Header{
		"Connection": {"X-A, x-b", "close"}, "X-A": {"1"}, "X-B": {"2"}, "X-C": {"3"},
		"Keep-Alive": {"t"}, "Transfer-Encoding": {"chunked"}, "Upgrade": {"h2c"}, "Te": {"gzip"},
	}
	dst := http.Header{}
	copyResponseHeader(dst, src)
	if len(dst) != 1 || dst.Get("X-C") != "3" {
		t.Errorf("after removal: %v", dst)
	}
	if !hasToken([]string{"deflate, trailers;q=1"}, "trailers") || hasToken([]string{"gzip"}, "trailers") {
		t.Error("hasToken")
	}
}

func TestRequestID(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newRequestID()
		if len(id) != 36 || id[14] != '4' || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
}

// TestSameEndpointSetKeepsTheBalancer: an update that repeats the
// cluster's set (as a discovery source does when it starts) leaves round
// robin where it was; a different order starts a new cycle.
func TestSameEndpointSetKeepsTheBalancer(t *testing.T) {
	addrs := []string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	c, err := newCluster(&config.Cluster{Name: "c", Balancer: config.Balancer{Policy: "round_robin"}, Endpoints: addrs}, slog.New(slog.DiscardHandler), "")
	if err != nil {
		t.Fatal(err)
	}
	next := func() string {
		res, h, err := c.pick(balancer.PickInfo{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		h.active.Add(-1)
		return res.Endpoint.Addr
	}
	set := func(addrs ...string) {
		eps := make([]discovery.Endpoint, len(addrs))
		for i, a := range addrs {
			eps[i] = discovery.Endpoint{Addr: a, Weight: 1}
		}
		if err := c.setEndpoints(eps); err != nil {
			t.Fatal(err)
		}
	}
	if got := next(); got != addrs[0] {
		t.Fatalf("first pick %s, want %s", got, addrs[0])
	}
	set(addrs...)
	if got := next(); got != addrs[1] {
		t.Errorf("after the same set: %s, want round robin to go on with %s", got, addrs[1])
	}
	set(addrs[2], addrs[1], addrs[0])
	if got := next(); got != addrs[2] {
		t.Errorf("after a new order: %s, want a new cycle from %s", got, addrs[2])
	}
}
